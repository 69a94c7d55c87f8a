"""Latency benchmark: requests one at a time, warm-up first, then `repeats` x `num_prompts`
measured requests, each with a distinct prompt (so no prefix cache hides the prefill)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from context_research.benchmarks.base import BenchmarkOutcome, BenchmarkTask, Observer
from context_research.metrics.schema import RooflineSection
from context_research.profiling.roofline import floors
from context_research.requests import GenerationRequest
from context_research.workloads.synthetic import synthetic_prompts, token_id_range


@dataclass
class LatencyWorkload:
    warmup: list[GenerationRequest]
    measured: list[GenerationRequest]

    @property
    def requests(self) -> list[GenerationRequest]:
        return self.warmup + self.measured


class LatencyBenchmark(BenchmarkTask):
    """Benchmark `latency` (config: LatencyBenchmarkConfig)."""

    def __init__(self, config: Any, model: Any) -> None:
        super().__init__(config, model)
        self.workload = config.workload
        self.warmup = config.warmup
        self.repeats = config.repeats
        self.check_reproducibility = config.check_reproducibility
        self.hardware = config.hardware

    def load(self, split: str = "test") -> LatencyWorkload:
        w = self.workload
        measured_count = w.num_prompts * self.repeats
        prompts = synthetic_prompts(self.warmup + measured_count, w.prompt_len,
                                    token_id_range(self.model.config_json), w.seed)

        def request(request_id: str, ids: list[int]) -> GenerationRequest:
            return GenerationRequest(request_id=request_id, prompt_token_ids=ids, max_new_tokens=w.output_len,
                                     seed=w.seed, ignore_eos=True)

        warmup = [request(f"warmup-{i}", prompts[i]) for i in range(self.warmup)]
        measured = [request(f"r{i // w.num_prompts}-p{i % w.num_prompts}", prompts[self.warmup + i])
                    for i in range(measured_count)]
        return LatencyWorkload(warmup=warmup, measured=measured)

    def evaluate(self, backend: Any, samples: LatencyWorkload, observe: Observer) -> BenchmarkOutcome:
        for request in samples.warmup:
            observe(backend.generate(request), "warmup")
        first_tokens = None
        short = 0
        for request in tqdm(samples.measured, desc=f"{self.name} {self.workload.prompt_len} tok",
                            unit="req", leave=False):
            result = backend.generate(request)
            observe(result, "measure")
            short += result.completion_tokens != request.max_new_tokens
            if first_tokens is None:
                first_tokens = result.output_token_ids
        checks: dict[str, Any] = {"full_outputs": short == 0}
        if self.check_reproducibility and samples.measured:
            again = backend.generate(samples.measured[0])
            checks["reproducible"] = again.output_token_ids == first_tokens
        outcome = BenchmarkOutcome(checks=checks)
        if self.hardware is not None:
            outcome.sections.append(RooflineSection(
                roofline_hardware=self.hardware.name,
                **floors(self.model.config_json, self.model.dtype, self.workload.prompt_len, self.workload.output_len,
                         self.hardware.hbm_bytes_per_s, self.hardware.matmul_flops_per_s)))
        return outcome
