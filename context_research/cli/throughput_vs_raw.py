"""What the harness costs on vLLM: one offline batch through the harness and through plain vLLM.

    python -m context_research.cli.throughput_vs_raw model=qwen3_8b model.load_format=dummy \\
        serving=vllm --output results/h200/e2/throughput_vs_raw.json

The engine is built the way `launch.py` builds it (same config groups, validation and engine
cache), with `serving.interface=offline` so it holds a `vllm.LLM`. Then, `--repeats` times, the
same `--num-requests` synthetic requests (`--prompt-len` in, `--output-len` out, greedy, EOS
ignored) go through `scheduler.generate_batch` (routing, result conversion, per-request
timelines) and through `LLM.generate` on that same `LLM` object (`backend.llm`) with the same
token prompts and the sampling parameters the backend builds, alternating which goes first. The
prefix cache is reset before every pass, so neither side reuses the other's prefill. Output tokens per second of each side is its output tokens over its wall time; the
figures are the medians over the repeats and ratio = harness / raw (acceptance: >= 0.97).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

from context_research.requests import GenerationRequest

REPO_ROOT = Path(__file__).resolve().parents[2]
MIN_RATIO = 0.97


def batch_requests(model: Any, count: int, prompt_len: int, output_len: int, seed: int) -> list[GenerationRequest]:
    """`count` distinct synthetic prompts of exactly `prompt_len` tokens, `output_len` out, greedy."""
    from context_research.workloads.synthetic import synthetic_prompts, token_id_range

    prompts = synthetic_prompts(count, prompt_len, token_id_range(model.config_json), seed)
    return [GenerationRequest(request_id=f"b{i}", prompt_token_ids=ids, max_new_tokens=output_len, seed=seed,
                              ignore_eos=True) for i, ids in enumerate(prompts)]


def raw_generate(backend: Any, requests: list[GenerationRequest]) -> Callable[[], int]:
    """Plain vLLM: `LLM.generate` on the backend's `vllm.LLM` with token prompts and the sampling
    parameters the backend would use; returns a pass that gives its output tokens."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from context_research.serving.backends.vllm import sampling_arguments

    detokenize = backend.tokenizer is not None
    prompts = [TokensPrompt(prompt_token_ids=r.prompt_token_ids) for r in requests]
    params = [SamplingParams(**sampling_arguments(r, detokenize)) for r in requests]

    def run() -> int:
        outputs = backend.llm.generate(prompts, params, use_tqdm=False)
        return sum(len(output.outputs[0].token_ids) for output in outputs)

    return run


def harness_generate(scheduler: Any, requests: list[GenerationRequest]) -> Callable[[], int]:
    """The harness: `scheduler.generate_batch`; returns a pass that gives its output tokens."""
    def run() -> int:
        results = scheduler.generate_batch(requests)
        failed = [r.error for r in results if r.error is not None]
        if failed:
            raise RuntimeError(f"{len(failed)} harness requests failed, first: {failed[0]}")
        return sum(r.completion_tokens for r in results)

    return run


def compare(harness: Callable[[], int], raw: Callable[[], int], reset: Callable[[], Any],
            repeats: int) -> dict[str, Any]:
    """Alternate the two sides `repeats` times; tokens/s of every pass, medians and their ratio."""
    trials = []
    for trial in range(repeats):
        sides = [("harness", harness), ("raw", raw)]
        for side, run in sides if trial % 2 == 0 else sides[::-1]:
            reset()
            start = time.perf_counter()
            tokens = run()
            seconds = time.perf_counter() - start
            trials.append({"trial": trial, "side": side, "output_tokens": tokens, "seconds": seconds,
                           "tok_s": tokens / seconds})
    harness_tok_s = statistics.median(t["tok_s"] for t in trials if t["side"] == "harness")
    raw_tok_s = statistics.median(t["tok_s"] for t in trials if t["side"] == "raw")
    ratio = harness_tok_s / raw_tok_s
    return {"harness_tok_s": harness_tok_s, "raw_tok_s": raw_tok_s, "ratio": ratio,
            "passed": ratio >= MIN_RATIO, "min_ratio": MIN_RATIO, "trials": trials}


def run(overrides: list[str], output: Path, num_requests: int, prompt_len: int, output_len: int,
        repeats: int) -> dict[str, Any]:
    """Compose the config, start the engine, compare, write `output`; returns what was written."""
    from hydra import compose, initialize_config_dir

    import context_research.config  # noqa: F401  (schemas and resolvers)
    from context_research.app import build, build_engines
    from context_research.config import ConfigError, validate
    from context_research.records.atomic import write_json_atomic
    from context_research.records.environment import git_state, gpu_inventory, package_versions
    from context_research.serving import engine_cache

    lengths = [f"prompt_len={prompt_len}", f"output_len={output_len}"]
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*lengths, *overrides])
    if cfg.serving.engine != "vllm":
        raise ConfigError("serving", cfg.serving.engine, "vllm (the raw side is vllm.LLM.generate)")
    cfg.serving.interface = "offline"  # the engine holds the vllm.LLM both sides use
    typed = validate(cfg)
    model = typed["model"]
    scheduler = build(typed["scheduler"])
    engines, start_s = build_engines(typed, scheduler)
    try:
        scheduler.bind(engines)
        (backend,) = engines.values()
        requests = batch_requests(model, num_requests, prompt_len, output_len, cfg.seed)
        warm = requests[:min(8, len(requests))]
        harness_generate(scheduler, warm)()  # kernels and allocator pools ready on both paths
        raw_generate(backend, warm)()
        figures = compare(harness_generate(scheduler, requests), raw_generate(backend, requests),
                          backend.reset_prefix_cache, repeats)
        payload = {**figures, "num_requests": num_requests, "prompt_len": prompt_len, "output_len": output_len,
                   "repeats": repeats, "model": cfg.model.name, "overrides": overrides,
                   "engine_key": backend.engine_key, "engine": backend.describe(), "engine_start_s": start_s,
                   "git": git_state(REPO_ROOT), "packages": package_versions(), "gpu": gpu_inventory()}
    finally:
        engine_cache.release_all()
    write_json_atomic(output, payload)
    return payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Other arguments are config overrides, as for launch.py.")
    parser.add_argument("--output", type=Path, default=Path("throughput_vs_raw.json"))
    parser.add_argument("--num-requests", type=int, default=256)
    parser.add_argument("--prompt-len", type=int, default=1024)
    parser.add_argument("--output-len", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args, overrides = parser.parse_known_args(argv)
    from context_research.cli.errors import exit_on_user_error

    with exit_on_user_error():
        payload = run(overrides, args.output, args.num_requests, args.prompt_len, args.output_len, args.repeats)
    print(f"harness {payload['harness_tok_s']:.1f} tok/s, raw {payload['raw_tok_s']:.1f} tok/s, "
          f"ratio {payload['ratio']:.3f} -> {args.output}")
    return 0 if payload["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
