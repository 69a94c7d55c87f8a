"""The Hydra task: validate -> record -> instantiate -> run -> record.

`launch.py` hands each job's composed config to `run_job`. Everything is built from `_target_`
with `hydra.utils.instantiate`; engines come from the engine cache so the jobs of one multirun
process share them. A failing job is recorded as failed and, in a sweep, the next job runs with a
fresh engine. SIGINT/SIGTERM record the job in progress as interrupted and stop the sweep;
`resume=true` skips the jobs already completed under the same config (records/resume.py).
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from context_research.config import validate
from context_research.cli.errors import JobFailed
from context_research.cli.gpu_placement import place_job
from context_research.cli.interruption import describe_stop, stop_deferred, stop_signals_raise
from context_research.records import resume
from context_research.records.environment import recorded_environment
from context_research.records.run_record import REQUESTS_PARTIAL, RunRecord
from context_research.serving import engine_cache
from context_research.workloads.synthetic import workload_hash

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parent.parent


def pool_serving(cfg: DictConfig, overrides: dict[str, Any]) -> DictConfig:
    """A pool's serving config: the job's, with the scheduler's overrides for that pool (which may
    add engine arguments, e.g. extra_engine_args.kv_transfer_config)."""
    with open_dict(cfg):
        return OmegaConf.merge(cfg.serving, overrides)


def build_engines(cfg: DictConfig, scheduler: Any) -> tuple[dict[str, Any], float]:
    """Start (or reuse) one engine per scheduler pool; return them and the seconds spent starting."""
    wanted = {}
    for pool, overrides in scheduler.pools().items():
        serving = pool_serving(cfg, overrides)
        key = engine_cache.engine_key(OmegaConf.to_container(serving, resolve=True),
                                      OmegaConf.to_container(cfg.model, resolve=True), pool)

        def build(serving=serving):
            return instantiate(serving, model=cfg.model, cache_dir=cfg.paths.cache_dir, _convert_="object")

        wanted[key] = build
    engines, start_s = engine_cache.acquire(wanted)
    return dict(zip(scheduler.pools(), engines.values())), start_s


def engine_step_summary(record: RunRecord, engines: dict[str, Any], steps_before: dict[str, int]) -> dict[str, Any]:
    """Per-step engine samples taken during this job (vLLM's stat logger), written to
    timeseries/engine.parquet; summarised as peak KV usage, peak queue and preemptions."""
    frames = [pd.DataFrame(e.step_log()[steps_before[pool]:]).assign(pool=pool)
              for pool, e in engines.items() if pool in steps_before]
    frames = [f for f in frames if len(f)]
    if not frames:
        return {}
    steps = pd.concat(frames, ignore_index=True)
    record.write_timeseries("engine", steps)
    figures: dict[str, Any] = {"engine_steps": int(len(steps))}
    for column, key in (("kv_cache_usage", "kv_cache_usage_peak"), ("num_running", "num_running_peak"),
                        ("num_waiting", "num_waiting_peak")):
        if column in steps:
            figures[key] = float(steps[column].max())
    if "num_preempted" in steps:
        figures["num_preemptions"] = int(steps["num_preempted"].sum())
    return figures


def print_summary(name: str, summary: dict[str, Any]) -> None:
    """The short table printed at the end of each job."""
    rows = []
    for metric in ("ttft", "tpot", "itl", "e2e", "queue_wait"):
        if f"{metric}_p50_ms" in summary:
            rows.append({"metric": f"{metric} (ms)", **{s: summary.get(f"{metric}_{s}_ms")
                                                        for s in ("mean", "p50", "p90", "p95", "p99")}})
    table = pd.DataFrame(rows).set_index("metric").round(3).to_string() if rows else "(no latency figures)"
    extra = {k: summary[k] for k in ("n_requests", "n_errors", "req_s", "out_tok_s", "passed") if k in summary}
    print(f"\n[{name}] {extra}\n{table}\n", flush=True)


def measure(cfg: DictConfig, record: RunRecord) -> dict[str, Any]:
    """Build everything from the config, run the benchmark, write requests, timeseries and summary."""
    scheduler = instantiate(cfg.scheduler)
    benchmark = instantiate(cfg.benchmark, model=cfg.model, _convert_="object")
    collectors = {name: instantiate(node) for name, node in cfg.collectors.items()}
    samples = benchmark.load("test")
    if hasattr(samples, "requests"):
        record.update(workload_hash=workload_hash(samples.requests))

    engines, engine_start_s = build_engines(cfg, scheduler)
    scheduler.bind(engines)
    for engine in engines.values():
        if hasattr(engine, "reset_prefix_cache"):
            engine.reset_prefix_cache()
    record.update(engine_key=",".join(e.engine_key for e in engines.values()),
                  engines={pool: e.describe() for pool, e in engines.items()})

    steps_before = {pool: len(e.step_log()) for pool, e in engines.items() if hasattr(e, "step_log")}
    origin = time.perf_counter()
    for collector in collectors.values():
        if hasattr(collector, "set_origin"):
            collector.set_origin(origin)
        if hasattr(collector, "bind_engines"):
            collector.bind_engines(engines)
        collector.start()

    def observe(result, phase: str) -> None:
        for collector in collectors.values():
            if hasattr(collector, "observe"):
                collector.observe(result, phase)

    try:
        outcome = benchmark.evaluate(scheduler, samples, observe)
    except BaseException:  # keep the requests finished so far, as partial
        requests = collectors["latency"].frame() if "latency" in collectors else pd.DataFrame()
        if len(requests):
            with stop_deferred():
                record.write_requests(requests, REQUESTS_PARTIAL)
        raise
    finally:
        for collector in collectors.values():
            collector.stop()
        if hasattr(scheduler, "close"):  # a broker's workers; the engines stay cached
            scheduler.close()
    measure_s = time.perf_counter() - origin

    requests = collectors["latency"].frame() if "latency" in collectors else pd.DataFrame()
    if len(requests):
        record.write_requests(requests)
    summary: dict[str, Any] = {"name": cfg.name, "benchmark": benchmark.name, "scheduler": scheduler.name,
                               "engine": cfg.serving.engine, "model": cfg.model.name,
                               "engine_start_s": engine_start_s, "measure_s": measure_s}
    for name, collector in collectors.items():
        summary.update(collector.snapshot())
        frame = collector.timeseries() if hasattr(collector, "timeseries") else None
        if frame is not None:
            record.write_timeseries(name, frame)
    summary.update({k: v for k, v in outcome.items() if k != "checks"})
    for metric in ("ttft", "tpot"):
        if summary.get(f"{metric}_floor_ms") and f"{metric}_p50_ms" in summary:
            summary[f"{metric}_over_floor"] = summary[f"{metric}_p50_ms"] / summary[f"{metric}_floor_ms"]
    summary.update(engine_step_summary(record, engines, steps_before))
    for collector in collectors.values():  # figures that combine other collectors' (memory: NVML)
        if hasattr(collector, "derive"):
            summary.update(collector.derive(summary))
    checks = outcome.get("checks", {})
    summary["checks"] = checks
    summary["passed"] = bool(summary.get("n_errors", 0) == 0 and all(checks.values()))
    record.write_summary(summary)
    return summary


@stop_signals_raise()
def run_job(cfg: DictConfig) -> dict[str, Any]:
    """One Hydra job: returns its summary; a failure is recorded (and raised outside sweeps).

    With resume=true a job whose directory holds a completed record of the same config is
    skipped; otherwise an earlier attempt there is kept under attempts/. A stop signal records
    the job as interrupted, frees its engine and propagates, so the sweep stops.
    """
    validate(cfg)  # ConfigError before anything is built or recorded
    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    earlier = resume.earlier_manifest(job_dir)
    if cfg.resume and resume.is_done(earlier, cfg):
        print(f"[{cfg.name}] skipped (resume): {job_dir.name} completed by {earlier['run_id']}", flush=True)
        return resume.stored_summary(job_dir)
    if earlier:
        with stop_deferred():
            resume.archive_attempt(job_dir, earlier)
    record = RunRecord.create(job_dir, cfg, list(hydra_cfg.overrides.task), REPO_ROOT)
    try:
        gpu = place_job(hydra_cfg.launcher._target_, OmegaConf.to_container(cfg.serving, resolve=True))
        if gpu is not None:
            record.update(placed_gpu=gpu, environment=recorded_environment())
        summary = measure(cfg, record)
    except (KeyboardInterrupt, SystemExit) as stop:
        with stop_deferred():  # a second signal waits until the record is written and the engine freed
            record.set_aside_partial()
            record.finish("interrupted", error=describe_stop(stop))
            where = "sweep" if hydra_cfg.mode == RunMode.MULTIRUN else "run"
            log.error("job %s: %s; to finish, rerun the same command with resume=true hydra.%s.dir=%s",
                      job_dir.name, record.manifest["error"], where, hydra_cfg[where].dir)
            engine_cache.release_all()
        raise
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
        log.error("job failed: %s\n%s", message, traceback.format_exc())
        record.set_aside_partial()
        record.finish("failed", error=message)
        engine_cache.release_all()  # the next job gets a fresh engine
        if hydra_cfg.mode == RunMode.RUN:
            raise JobFailed(f"{message} (record: {record.job_dir})") from error
        return {"status": "failed", "error": message}
    record.finish("completed")
    print_summary(cfg.name, summary)
    return summary
