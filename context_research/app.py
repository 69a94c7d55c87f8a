"""The Hydra task: validate -> record -> build -> run -> record.

`launch.py` hands each job's composed config to `run_job`. `validate` turns it into the typed
config of every group; each component (scheduler, engines, benchmark, collectors) is built from its
typed config by the class its `_target_` names, and called only through its contract
(serving/backends/base.py, serving/schedulers/base.py, benchmarks/base.py, profiling/base.py).
Engines come from the engine cache, so the jobs of one multirun process share them. A failing job
is recorded as failed and, in a sweep, the next job runs with a fresh engine. SIGINT/SIGTERM record
the job in progress as interrupted and stop the sweep; `resume=true` skips the jobs already
completed under the same config (records/resume.py). A job owns its directory while it runs
(records/owner.py): a second launch into it is refused, and one whose record cannot be written
(disk full) stops the launch; both end it with one line (cli/errors.py).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from context_research.cli.errors import FAILED, USER_ERROR, JobFailed, LaunchAborted, os_failure
from context_research.cli.gpu_placement import place_job
from context_research.cli.interruption import describe_stop, raise_if_stopped, stop_deferred, stop_signals_raise
from context_research.config import validate
from context_research.metrics import engine_steps
from context_research.metrics.measurement_warnings import measurement_warnings
from context_research.metrics.schema import LatencySection, RooflineSection, RunSection, Summary
from context_research.profiling.base import MetricCollector
from context_research.records import owner, resume
from context_research.records.environment import recorded_environment
from context_research.records.run_record import REQUESTS_PARTIAL, RunRecord
from context_research.serving import engine_cache
from context_research.serving.backends.base import ServingBackend
from context_research.serving.schedulers.base import Scheduler
from context_research.workloads.synthetic import workload_hash

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parent.parent


def build(config: Any, **context: Any) -> Any:
    """A component from its typed config: the class `config._target_` names, given the config."""
    return get_class(config._target_)(config, **context)


def with_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """A typed config with some fields replaced (dicts merged), checked again by its schema."""
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(config), overrides))


def build_engines(typed: dict[str, Any], scheduler: Scheduler) -> tuple[dict[str, ServingBackend], float]:
    """Start (or reuse) one engine per scheduler pool: the job's serving config with the scheduler's
    overrides for that pool (its device, KV connector role, ...). Returns them and the seconds spent
    starting new ones."""
    model, cache_dir = typed["model"], typed["paths"].cache_dir
    wanted: dict[str, Callable[[], ServingBackend]] = {}
    for pool, overrides in scheduler.pools().items():
        serving = with_overrides(typed["serving"], overrides)
        key = engine_cache.engine_key(dataclasses.asdict(serving), dataclasses.asdict(model), pool)
        wanted[key] = lambda serving=serving: build(serving, model=model, cache_dir=cache_dir)
    engines, start_s = engine_cache.acquire(wanted)
    return dict(zip(scheduler.pools(), engines.values())), start_s


def request_table(collectors: dict[str, MetricCollector], scheduler: Scheduler) -> pd.DataFrame:
    """requests.parquet: the per-request rows a collector keeps, with each request's route from the
    scheduler's route log."""
    frames = [frame for frame in (c.requests() for c in collectors.values()) if frame is not None and len(frame)]
    if not frames:
        return pd.DataFrame()
    (rows,) = frames  # one collector keeps the rows (the latency collector)
    routes = scheduler.route_table()
    if not len(routes):
        return rows
    return rows.merge(routes, on="request_id", how="left")


def engine_step_frame(engines: dict[str, ServingBackend], steps_before: dict[str, int]) -> pd.DataFrame:
    """The engines' step samples taken during this job, one frame with each sample's pool."""
    frames = [pd.DataFrame(engine.step_log()[steps_before[pool]:]).assign(pool=pool) for pool, engine in engines.items()]
    frames = [frame for frame in frames if len(frame)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def print_summary(name: str, summary: Summary) -> None:
    """The short table printed at the end of each job."""
    latency = summary.get(LatencySection)
    rows = []
    for metric in ("ttft", "tpot", "itl", "e2e", "queue_wait"):
        distribution = latency.distributions.get(metric) if latency else None
        if distribution is not None:
            rows.append({"metric": f"{metric} (ms)", "mean": distribution.mean, **distribution.percentiles})
    table = pd.DataFrame(rows).set_index("metric").round(3).to_string() if rows else "(no latency figures)"
    columns = summary.columns()
    extra = {k: columns[k] for k in ("n_requests", "n_errors", "req_s", "out_tok_s", "prefix_cache_hit_rate", "passed")
             if columns.get(k) is not None}
    warnings = "".join(f"warning: {warning}\n" for warning in summary.run.warnings)
    print(f"\n[{name}] {extra}\n{table}\n{warnings}", flush=True)


def measure(cfg: DictConfig, typed: dict[str, Any], record: RunRecord) -> Summary:
    """Build everything from the typed config, run the benchmark, write requests, timeseries and summary."""
    scheduler: Scheduler = build(typed["scheduler"])
    benchmark = build(typed["benchmark"], model=typed["model"])
    collectors: dict[str, MetricCollector] = {name: build(config) for name, config in typed["collectors"].items()}
    samples = benchmark.load("test")
    record.update(workload_hash=workload_hash(samples.requests))

    engines, engine_start_s = build_engines(typed, scheduler)
    scheduler.bind(engines)
    for engine in engines.values():
        engine.reset_prefix_cache()
    record.update(engine_key=",".join(e.engine_key for e in engines.values()),
                  engines={pool: e.describe() for pool, e in engines.items()})

    steps_before = {pool: len(e.step_log()) for pool, e in engines.items()}
    origin = time.perf_counter()
    for collector in collectors.values():
        collector.set_origin(origin)
        collector.bind_engines(engines)
        collector.start()

    def observe(result, phase: str) -> None:
        for collector in collectors.values():
            collector.observe(result, phase)

    try:
        outcome = benchmark.evaluate(scheduler, samples, observe)
    except BaseException:  # keep the requests finished so far, as partial
        requests = request_table(collectors, scheduler)
        if len(requests):
            with stop_deferred():
                try:
                    record.write_requests(requests, REQUESTS_PARTIAL)
                except OSError as error:  # the disk, say: never in place of why the run ended
                    log.error("the requests finished so far were not kept: %s", os_failure(error))
        raise
    finally:
        for collector in collectors.values():
            collector.stop()
        scheduler.close()  # a broker's workers; the engines stay cached
    measure_s = time.perf_counter() - origin

    requests = request_table(collectors, scheduler)
    if len(requests):
        record.write_requests(requests)
    summary = Summary().add(RunSection(name=cfg.name, benchmark=benchmark.name, scheduler=scheduler.name,
                                       engine=typed["serving"].engine, model=typed["model"].name,
                                       engine_start_s=engine_start_s, measure_s=measure_s))
    for name, collector in collectors.items():
        summary.add(*collector.snapshot())
        frame = collector.timeseries()
        if frame is not None:
            record.write_timeseries(name, frame)
    summary.add(*outcome.sections)
    steps = engine_step_frame(engines, steps_before)
    if len(steps):
        record.write_timeseries("engine", steps)
        summary.add(engine_steps.summarize(steps))
    roofline = summary.get(RooflineSection)
    if roofline is not None:
        summary.add(roofline.with_ratios(summary.get(LatencySection)))
    for collector in collectors.values():  # figures that combine other collectors' (memory: NVML)
        summary.add(*collector.derive(summary))
    latency = summary.get(LatencySection)
    errors = latency.n_errors if latency is not None and latency.n_errors is not None else 0
    summary.run.checks = dict(outcome.checks)
    summary.run.passed = bool(errors == 0 and all(outcome.checks.values()))
    summary.run.warnings = measurement_warnings(summary, benchmark.alike_requests)
    record.write_summary(summary.to_json())
    return summary


def import_torch_whole() -> None:
    """Import torch with stop signals held back. A stop that lands inside the first `import torch`
    leaves its C extension half initialised, and the next import of torch (an engine's cleanup) or
    the interpreter's exit then crashes the process (SIGSEGV) instead of stopping it; held back, the
    stop is raised once the import is done, like any other."""
    with stop_deferred():
        import torch  # noqa: F401


@stop_signals_raise()
def run_job(cfg: DictConfig) -> None:
    """One Hydra job; a failure is recorded (and raised outside sweeps).

    The job owns its directory while it runs (a live owner's directory is refused). With
    resume=true a job whose directory holds a whole completed record of the same config is
    skipped; otherwise an earlier attempt there is kept under attempts/. A stop signal records
    the job as interrupted, frees its engine and propagates, so the sweep stops; a process that
    was stopped starts no further job.
    """
    raise_if_stopped()
    typed = validate(cfg)  # ConfigError before anything is built or recorded
    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        ownership = owner.claim(job_dir)
    except owner.DirectoryInUse as error:
        raise LaunchAborted(str(error), USER_ERROR) from None
    except OSError as error:
        raise LaunchAborted(f"cannot open the run record: {os_failure(error)}", USER_ERROR) from None
    with ownership:
        _run_owned_job(cfg, typed, hydra_cfg, job_dir)


def _run_owned_job(cfg: DictConfig, typed: dict[str, Any], hydra_cfg: DictConfig, job_dir: Path) -> None:
    """run_job, once the job owns `job_dir`."""
    try:
        earlier = resume.earlier_attempt(job_dir)
        if earlier is not None:
            why = resume.not_done_because(job_dir, earlier, cfg)
            if cfg.resume and why is None:
                print(f"[{cfg.name}] skipped (resume): {job_dir.name} completed by {earlier.run_id}", flush=True)
                return
            if cfg.resume:
                log.warning("job %s runs again: %s", job_dir.name, why)
            with stop_deferred():
                resume.archive_attempt(job_dir, earlier)
        record = RunRecord.create(job_dir, cfg, list(hydra_cfg.overrides.task), REPO_ROOT,
                                  OmegaConf.to_container(hydra_cfg.runtime.choices))
    except OSError as error:
        raise LaunchAborted(f"cannot write the run record: {os_failure(error)}", FAILED) from None
    try:
        import_torch_whole()
        gpu = place_job(hydra_cfg.launcher._target_, dataclasses.asdict(typed["serving"]))
        if gpu is not None:
            record.update(placed_gpu=gpu, environment=recorded_environment())
        summary = measure(cfg, typed, record)
        record.finish("completed")  # disk full here: recorded as a failure like any other
    except (KeyboardInterrupt, SystemExit) as stop:
        _record_stop(record, stop, hydra_cfg)
        raise
    except Exception as error:
        _record_failure(record, error, hydra_cfg)
        return
    print_summary(cfg.name, summary)


def _quietly(step: str, action: Callable[[], Any]) -> None:
    """Run a cleanup step of a stopped job; an error in it is logged and never replaces the stop."""
    try:
        action()
    except Exception:  # noqa: BLE001 - logged; the stop goes on
        log.exception("while stopping: %s failed", step)


def _record_stop(record: RunRecord, stop: BaseException, hydra_cfg: DictConfig) -> None:
    """Record a stopped job as interrupted and free its engines."""
    with stop_deferred():  # a second signal waits until the record is written and the engine freed
        _quietly("setting its figures aside", record.set_aside_partial)
        _quietly("recording it as interrupted", lambda: record.finish("interrupted", error=describe_stop(stop)))
        multirun = hydra_cfg.mode == RunMode.MULTIRUN
        log.error("job %s: %s; to finish, rerun the same command with resume=true hydra.%s.dir=%s",
                  record.job_dir.name, describe_stop(stop), "sweep" if multirun else "run",
                  hydra_cfg.sweep.dir if multirun else record.job_dir)
        _quietly("stopping its engines", engine_cache.release_all)


def _record_failure(record: RunRecord, error: Exception, hydra_cfg: DictConfig) -> None:
    """Record a failed job (its figures set aside) and free its engines, so the next job gets fresh
    ones; raise JobFailed for a single run. A record that cannot be written stops the launch."""
    message = f"{type(error).__name__}: {error}"
    log.error("job failed: %s\n%s", message, traceback.format_exc())
    with stop_deferred():  # a stop meanwhile waits until the failure is recorded and the engines freed
        try:
            record.set_aside_partial()
            record.finish("failed", error=message)
        except OSError as unwritable:
            raise LaunchAborted(f"job {record.job_dir.name} failed ({message}) and its record could not be "
                                f"written: {os_failure(unwritable)}", FAILED) from None
        finally:
            engine_cache.release_all()
    if hydra_cfg.mode == RunMode.RUN:
        raise JobFailed(f"{message} (record: {record.job_dir})") from error
