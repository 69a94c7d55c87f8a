"""The harness against `vllm bench serve`, on the same managed vLLM server, the same prompts, in one call.

    export PYTHONPATH=.:/tmp/site
    python -m context_research.cli.vs_vllm_bench --out results/h200/http    [config overrides]

1. `vllm serve` starts as serving=vllm_server starts it (the engine cache; the overrides compose as
   for launch.py, after model=qwen3_8b model.load_format=dummy model.tokenizer=built); its log is
   <out>/vllm_server.log.
2. The prompts, one file per point, <out>/prompts/<point>.jsonl ({"prompt": text} lines): seeded runs
   of whole-word tokens (' river') of the server's own tokenizer, so each text is exactly the point's
   prompt length in tokens when the server tokenises it (checked with the server's tokenizer
   directory before anything is sent), and no two prompts share a prefix.
3. The harness, unchanged: one `python launch.py -m` multirun, `serving=openai` on that server,
   `benchmark=throughput` (a closed loop of `concurrency` requests in flight) on the point's file
   (`benchmark.workload.source=jsonl`, no chat template), one job per point and prompt format into
   <out>/harness/ (full run records): `serving.prompt_format=text` sends each prompt as that text
   (what vllm bench sends: the comparison), `token_ids` as its token ids (the harness's own way; the
   server skips tokenising: the difference is the server's text path).
4. `vllm bench serve` from the same vLLM (`python -m vllm.entrypoints.cli.main bench serve`) on each
   point's file (`--dataset-name custom --skip-chat-template`), its result JSON (with per-request
   detail) in <out>/vllm_bench/.
5. <out>/vs_vllm_bench.csv (metric, prompt_len, concurrency, harness, vllm_bench, ratio = harness /
   vllm_bench; the harness's text prompts), <out>/harness_text_vs_token_ids.csv (the same figures of
   the harness, token ids against text), <out>/vs_vllm_bench.json (every figure, the prompt-length
   checks, the acceptance bars, the commands).

The same workload on both sides: per point the same prompt texts, output length, number of requests
and concurrency (the harness's closed loop and `--max-concurrency` both keep that many in flight and
send the next when one finishes), `ignore_eos` (`--ignore-eos`), greedy (temperature 0), no warm-up
requests inside the measurement (the server is warm: the harness's engine warm-up ran), streaming
with usage, the prefix cache emptied before each run. Throughput is output tokens over first send ->
last completion on both sides. With the same prompts the server computes the same tokens (dummy
weights, greedy), so its detokenisation and the streamed texts are the same work for both clients.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = ["serving=vllm_server", "model=qwen3_8b", "model.load_format=dummy", "model.tokenizer=built"]
VLLM_CLI = [sys.executable, "-m", "vllm.entrypoints.cli.main"]
# acceptance: |ratio - 1| <= LATENCY_TOLERANCE, throughput ratio >= MIN_THROUGHPUT_RATIO, lag p99 <= MAX_LAG_P99_MS
LATENCY_TOLERANCE = 0.02
MIN_THROUGHPUT_RATIO = 0.98
MAX_LAG_P99_MS = 1.0


# the harness's arms: `text` is compared with vllm bench (which sends text); `token_ids` gives the server's text path
PROMPT_FORMATS = ("text", "token_ids")
COMPARED_FORMAT = "text"
WORD = re.compile(r" [A-Za-z]+")


@dataclass(frozen=True)
class Point:
    name: str
    prompt_len: int
    output_len: int
    concurrency: int
    num_prompts: int


def points(short_len: int = 1024, long_len: int = 8192, latency_output_len: int = 128, load_output_len: int = 256,
           latency_prompts: int = 20, throughput_prompts: int = 256, lag_prompts: int = 512) -> list[Point]:
    """TTFT/TPOT at concurrency 1 (short and long prompts), tokens/s at 64, the client's lag at 256."""
    return [Point("c1_short", short_len, latency_output_len, 1, latency_prompts),
            Point("c1_long", long_len, latency_output_len, 1, latency_prompts),
            Point("c64", short_len, load_output_len, 64, throughput_prompts),
            Point("c256", short_len, load_output_len, 256, lag_prompts)]


# (metric, point, the harness's summary column, vllm bench's result key)
COMPARED = (("ttft_p50_ms", "c1_short", "ttft_p50_ms", "median_ttft_ms"),
            ("tpot_p50_ms", "c1_short", "tpot_p50_ms", "median_tpot_ms"),
            ("ttft_p50_ms", "c1_long", "ttft_p50_ms", "median_ttft_ms"),
            ("tpot_p50_ms", "c1_long", "tpot_p50_ms", "median_tpot_ms"),
            ("output_tok_s", "c64", "out_tok_s", "output_throughput"),
            ("loop_lag_p99_ms", "c256", "loop_lag_p99_ms", None))


def merged(defaults: list[str], overrides: list[str]) -> list[str]:
    """`defaults` with the overrides of the same key replaced by the user's, then the user's others."""
    keys = {override.split("=", 1)[0] for override in overrides}
    return [d for d in defaults if d.split("=", 1)[0] not in keys] + list(overrides)


def harness_overrides(overrides: list[str]) -> list[str]:
    """The overrides the harness gets too: all but the server's own (serving.*), which the server got."""
    return [o for o in overrides if not o.lstrip("+~").startswith("serving")]


def word_ids(tokenizer: Any) -> list[int]:
    """The tokenizer's whole-word tokens with a leading space (' river'): each decodes to a space and
    ASCII letters and encodes back to itself alone. A byte-level BPE splits text before every space
    and letter run, so a run of them decodes to a text that encodes back to the same ids."""
    words = []
    for token_id in sorted(set(tokenizer.get_vocab().values())):
        text = tokenizer.decode([token_id])
        if WORD.fullmatch(text) and tokenizer.encode(text, add_special_tokens=False) == [token_id]:
            words.append(token_id)
    return words


def prompt_texts(tokenizer: Any, point: Point, seed: int, words: list[int] | None = None) -> list[str]:
    """`point.num_prompts` texts of exactly `point.prompt_len` tokens each as a server tokenises a
    /v1/completions prompt (the tokenizer's special tokens included): seeded by (seed, prompt_len),
    uniform over `words` (default: `word_ids(tokenizer)`); a text that does not encode back to its
    ids raises ValueError before anything is sent."""
    import numpy as np

    words = word_ids(tokenizer) if words is None else words
    if not words:
        raise ValueError("the tokenizer has no whole-word tokens with a leading space to build exact prompts from")
    rng = np.random.default_rng([seed, point.prompt_len])
    texts = []
    for index in range(point.num_prompts):
        ids = [int(i) for i in rng.choice(words, point.prompt_len)]
        text = tokenizer.decode(ids)
        encoded = list(tokenizer(text)["input_ids"])
        if encoded != ids:
            raise ValueError(f"{point.name} prompt {index}: the text encodes to {len(encoded)} tokens, not its "
                             f"{len(ids)} ids: the tokenizer does not round-trip whole words")
        texts.append(text)
    return texts


def write_prompts(directory: Path, tokenizer: Any, chosen: list[Point], seed: int) -> dict[str, Path]:
    """Each point's prompts as `<directory>/<point>.jsonl` ({"prompt": text} lines): the file both the
    harness (benchmark.workload.source=jsonl) and vllm bench (--dataset-name custom) read."""
    directory.mkdir(parents=True, exist_ok=True)
    words = word_ids(tokenizer)
    files = {}
    for point in chosen:
        path = directory / f"{point.name}.jsonl"
        path.write_text("".join(json.dumps({"prompt": text}) + "\n"
                                for text in prompt_texts(tokenizer, point, seed, words)), encoding="utf-8")
        files[point.name] = path.resolve()
    return files


def write_points(conf: Path, chosen: list[Point], prompts: dict[str, Path]) -> None:
    """The points as a config group (`+point=NAME`) on the harness's search path: lengths, concurrency,
    requests, and the point's prompt file as the workload, sent as it is (no chat template)."""
    (conf / "point").mkdir(parents=True, exist_ok=True)
    for point in chosen:
        (conf / "point" / f"{point.name}.yaml").write_text(
            "# @package _global_\n" + "".join(f"{key}: {value}\n" for key, value in asdict(point).items()
                                               if key not in ("name", "num_prompts"))
            + f"num_prompts: {point.num_prompts}\n"
            + "benchmark:\n  workload:\n    source: jsonl\n"
            + f"    path: {json.dumps(str(prompts[point.name]))}\n"
            + f"    fixed_output_len: {point.output_len}\n    chat_template: false\n")


def harness_command(url: str, model: str, chosen: list[Point], conf: Path, out: Path,
                    overrides: list[str]) -> list[str]:
    """`launch.py -m`: one throughput job per point and prompt format, serving=openai on the server at `url`."""
    models = merged([o for o in DEFAULTS if not o.startswith("serving")], harness_overrides(overrides))
    return [sys.executable, "launch.py", "-m", "+point=" + ",".join(p.name for p in chosen),
            "serving.prompt_format=" + ",".join(PROMPT_FORMATS), "benchmark=throughput",
            "serving=openai", f"serving.base_url={url}", f"serving.model={model}", "serving.reset_prefix_cache=true",
            "serving.return_token_ids=false", *models, f"hydra.searchpath=['file://{conf}']", f"hydra.sweep.dir={out}",
            "hydra.sweep.subdir=${hydra.job.num}", "name=vs_vllm_bench"]  # job folders 0..7: the URL has slashes


def bench_command(root_url: str, model: str, tokenizer: str, point: Point, prompts: Path, result_dir: Path,
                  seed: int) -> list[str]:
    """vllm bench serve on the point's prompt file, sent as it is (a custom dataset, no chat template)."""
    return [*VLLM_CLI, "bench", "serve", "--backend", "openai", "--base-url", root_url, "--endpoint", "/v1/completions",
            "--model", model, "--tokenizer", tokenizer, "--dataset-name", "custom", "--dataset-path", str(prompts),
            "--custom-output-len", str(point.output_len), "--skip-chat-template", "--disable-shuffle",
            "--num-prompts", str(point.num_prompts),
            "--max-concurrency", str(point.concurrency), "--request-rate", "inf", "--ignore-eos", "--temperature", "0",
            "--num-warmups", "0", "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99",
            "--seed", str(seed), "--disable-tqdm", "--save-result", "--save-detailed", "--result-dir", str(result_dir),
            "--result-filename", f"{point.name}.json"]


def harness_figures(sweep: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Per point and prompt format, the job's summary columns (and its status), from the multirun's
    records, with the prompt lengths the server counted (its usage: `usage_prompt_tokens`)."""
    from context_research.metrics.schema import Summary

    figures: dict[str, dict[str, dict[str, Any]]] = {}
    for manifest_path in sorted(sweep.glob("*/manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        chosen = dict(o.split("=", 1) for o in manifest["overrides"] if "=" in o)
        point, prompt_format = chosen["+point"], chosen.get("serving.prompt_format", COMPARED_FORMAT)
        summary_path = manifest_path.parent / "summary.json"
        columns = Summary.from_json(json.loads(summary_path.read_text())).columns() if summary_path.is_file() else {}
        scalars = {k: v for k, v in columns.items() if isinstance(v, (int, float, str, bool)) or v is None}
        requests_path = manifest_path.parent / "requests.parquet"
        if requests_path.is_file():
            requests = pd.read_parquet(requests_path)
            if "usage_prompt_tokens" in requests:
                scalars["server_prompt_lens"] = sorted({int(v) for v in requests["usage_prompt_tokens"].dropna()})
        figures.setdefault(point, {})[prompt_format] = {"status": manifest["status"], "error": manifest.get("error"),
                                                        "job": str(manifest_path.parent), **scalars}
    return figures


def comparison(harness: dict[str, dict], bench: dict[str, dict], chosen: list[Point]) -> pd.DataFrame:
    """vs_vllm_bench.csv: the harness's text prompts (`harness[point]["text"]`) against vllm bench's."""
    by_name = {p.name: p for p in chosen}
    rows = []
    for metric, name, ours, theirs in COMPARED:
        point = by_name[name]
        mine = harness.get(name, {}).get(COMPARED_FORMAT, {}).get(ours)
        other = bench.get(name, {}).get(theirs) if theirs else None
        ratio = mine / other if mine is not None and other else None
        rows.append({"metric": metric, "prompt_len": point.prompt_len, "concurrency": point.concurrency,
                     "harness": mine, "vllm_bench": other, "ratio": ratio})
    return pd.DataFrame(rows)


def text_path(harness: dict[str, dict], chosen: list[Point]) -> pd.DataFrame:
    """harness_text_vs_token_ids.csv: the same prompts sent as token ids and as text by the harness
    (ratio = text / token_ids): what the server's tokenisation path adds."""
    by_name = {p.name: p for p in chosen}
    rows = []
    for metric, name, ours, _ in COMPARED:
        point = by_name[name]
        arms = harness.get(name, {})
        ids, text = arms.get("token_ids", {}).get(ours), arms.get("text", {}).get(ours)
        rows.append({"metric": metric, "prompt_len": point.prompt_len, "concurrency": point.concurrency,
                     "token_ids": ids, "text": text, "ratio": text / ids if text is not None and ids else None})
    return pd.DataFrame(rows)


def prompt_checks(harness: dict[str, dict], bench_lens: dict[str, list[int]], chosen: list[Point]) -> dict:
    """Per point, whether every prompt was the point's length: as the server counted it for each of the
    harness's arms (its usage) and as vllm bench counted it (its input_lens)."""
    checks = {}
    for point in chosen:
        lens = {fmt: figures.get("server_prompt_lens") for fmt, figures in harness.get(point.name, {}).items()}
        lens["vllm_bench"] = sorted(set(bench_lens.get(point.name, [])))
        checks[point.name] = {"prompt_len": point.prompt_len, "lens": lens,
                              "exact": all(value == [point.prompt_len] for value in lens.values())}
    return checks


def verdict(row: pd.Series) -> bool | None:
    """The acceptance bar of a comparison row (None where a side is missing)."""
    if row["metric"] == "loop_lag_p99_ms":
        return None if row["harness"] is None or math.isnan(row["harness"]) else bool(row["harness"] <= MAX_LAG_P99_MS)
    if row["ratio"] is None or math.isnan(row["ratio"]):
        return None
    if row["metric"] == "output_tok_s":
        return bool(row["ratio"] >= MIN_THROUGHPUT_RATIO)
    return bool(abs(row["ratio"] - 1) <= LATENCY_TOLERANCE)


def run(overrides: list[str], out: Path, chosen: list[Point], bench_timeout_s: float) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir

    import context_research.config  # noqa: F401  (schemas and resolvers)
    from context_research.app import build, build_engines
    from context_research.config import ConfigError, validate
    from context_research.records.atomic import write_json_atomic
    from context_research.records.environment import git_state, gpu_inventory, package_versions
    from transformers import AutoTokenizer

    from context_research.serving import engine_cache
    from context_research.serving.backends.openai import server_root

    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=merged([*DEFAULTS, f"serving.log_dir={out}"], overrides))
    if cfg.serving.engine != "vllm_server":
        raise ConfigError("serving", cfg.serving.engine, "vllm_server (both clients measure one managed vLLM server)")
    typed = validate(cfg)
    scheduler = build(typed["scheduler"])
    started = time.perf_counter()
    engines, _ = build_engines(typed, scheduler)
    try:
        (backend,) = engines.values()
        server_start_s = time.perf_counter() - started
        url, model = backend.urls[0], backend.served_model
        described = backend.describe()
        if not backend.engine_args.get("tokenizer"):
            raise ConfigError("model.tokenizer", None, "built or a tokenizer directory (both clients send text, "
                                                       "which the server tokenises)")
        tokenizer_dir = str(Path(backend.engine_args["tokenizer"]).resolve())  # the directory the server reads
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
        prompts = write_prompts(out / "prompts", tokenizer, chosen, cfg.seed)
        conf = out / "harness_points"
        write_points(conf, chosen, prompts)
        harness_cmd = harness_command(url, model, chosen, conf, out / "harness", overrides)
        print(f"[vs_vllm_bench] server up at {url} in {server_start_s:.0f} s; the harness: {' '.join(harness_cmd)}",
              flush=True)
        t0 = time.perf_counter()
        harness_run = subprocess.run(harness_cmd, cwd=REPO_ROOT)
        harness_s = time.perf_counter() - t0
        harness = harness_figures(out / "harness")
        bench, bench_cmds, bench_s, bench_lens = {}, {}, {}, {}
        for point in chosen:
            backend.reset_prefix_cache()  # the harness sent these prompts already
            command = bench_command(server_root(url), model, tokenizer_dir, point, prompts[point.name],
                                    out / "vllm_bench", cfg.seed)
            bench_cmds[point.name] = command
            print(f"[vs_vllm_bench] vllm bench serve, {point.name}: {' '.join(command)}", flush=True)
            t0 = time.perf_counter()
            done = subprocess.run(command, cwd=REPO_ROOT, timeout=bench_timeout_s)
            bench_s[point.name] = time.perf_counter() - t0
            result = out / "vllm_bench" / f"{point.name}.json"
            if done.returncode == 0 and result.is_file():
                data = json.loads(result.read_text())
                bench[point.name] = {k: v for k, v in data.items() if not isinstance(v, list)}
                bench_lens[point.name] = [int(n) for n in data.get("input_lens") or []]
            else:
                bench[point.name] = {"error": f"exit code {done.returncode}"}
    finally:
        engine_cache.release_all()
    table = comparison(harness, bench, chosen)
    table["passed"] = table.apply(verdict, axis=1)
    table.drop(columns=["passed"]).to_csv(out / "vs_vllm_bench.csv", index=False)
    formats = text_path(harness, chosen)
    formats.to_csv(out / "harness_text_vs_token_ids.csv", index=False)
    payload = {"points": [asdict(p) for p in chosen], "comparison": table.to_dict("records"),
               "harness_text_vs_token_ids": formats.to_dict("records"),
               "prompts": {name: str(path) for name, path in prompts.items()},
               "prompt_checks": prompt_checks(harness, bench_lens, chosen),
               "bars": {"latency_tolerance": LATENCY_TOLERANCE, "min_throughput_ratio": MIN_THROUGHPUT_RATIO,
                        "max_loop_lag_p99_ms": MAX_LAG_P99_MS},
               "harness": harness, "vllm_bench": bench, "harness_returncode": harness_run.returncode,
               "commands": {"harness": harness_cmd, "vllm_bench": bench_cmds},
               "seconds": {"server_start": server_start_s, "harness": harness_s, "vllm_bench": bench_s},
               "overrides": overrides, "server": described, "git": git_state(REPO_ROOT),
               "packages": package_versions(), "gpu": gpu_inventory()}
    write_json_atomic(out / "vs_vllm_bench.json", payload)
    return payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Other arguments are config overrides, as for launch.py.")
    parser.add_argument("--out", type=Path, default=Path("results/h200/http"))
    parser.add_argument("--short-len", type=int, default=1024, help="prompt tokens (concurrency 1, 64, 256)")
    parser.add_argument("--long-len", type=int, default=8192, help="prompt tokens (concurrency 1)")
    parser.add_argument("--latency-output-len", type=int, default=128, help="output tokens at concurrency 1")
    parser.add_argument("--load-output-len", type=int, default=256, help="output tokens at concurrency 64 and 256")
    parser.add_argument("--latency-prompts", type=int, default=20, help="requests at concurrency 1")
    parser.add_argument("--throughput-prompts", type=int, default=256, help="requests at concurrency 64")
    parser.add_argument("--lag-prompts", type=int, default=512, help="requests at concurrency 256")
    parser.add_argument("--bench-timeout-s", type=float, default=300)
    args, overrides = parser.parse_known_args(argv)
    from context_research.cli.errors import exit_on_user_error

    chosen = points(args.short_len, args.long_len, args.latency_output_len, args.load_output_len,
                    args.latency_prompts, args.throughput_prompts, args.lag_prompts)
    with exit_on_user_error():
        payload = run(overrides, args.out, chosen, args.bench_timeout_s)
    table = pd.DataFrame(payload["comparison"])
    print(table.to_string(index=False))
    print("the harness, the same prompts as token ids and as text:")
    print(pd.DataFrame(payload["harness_text_vs_token_ids"]).to_string(index=False))
    inexact = [name for name, check in payload["prompt_checks"].items() if not check["exact"]]
    if inexact:
        print(f"prompt lengths not exact at {', '.join(inexact)}: see prompt_checks in vs_vllm_bench.json")
    print(f"-> {args.out / 'vs_vllm_bench.csv'}, {args.out / 'harness_text_vs_token_ids.csv'}, "
          f"{args.out / 'vs_vllm_bench.json'}")
    return 0 if payload["harness_returncode"] == 0 and all(table["passed"].fillna(False)) and not inexact else 1


if __name__ == "__main__":
    sys.exit(main())
