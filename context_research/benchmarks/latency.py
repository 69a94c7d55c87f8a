"""Latency benchmark: requests one at a time, warm-up first, then `repeats` x `num_prompts`
measured requests, each with a distinct prompt (so no prefix cache hides the prefill). The summary
carries the roofline floors on the job's hardware (profiling/roofline.py): `ttft_floor_ms`,
`tpot_floor_ms`, `roofline_hardware`, `roofline_peaks` (datasheet or measured), and
`roofline_reason` where a floor is null (no GPU, or a ceiling the hardware profile lacks)."""

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

    alike_requests = True  # one prompt length, one request at a time

    def __init__(self, config: Any, model: Any) -> None:
        super().__init__(config, model)
        self.workload = config.workload
        self.warmup = config.warmup
        self.repeats = config.repeats
        self.check_reproducibility = config.check_reproducibility
        self.hardware = config.hardware
        self.kv_cache_dtype = config.kv_cache_dtype

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
            outcome.sections.append(RooflineSection(**self.roofline()))
        return outcome

    def roofline(self) -> dict[str, Any]:
        """TTFT and TPOT floors on the job's hardware (`auto`: the first visible GPU), from the
        datasheet or, with hardware.calibrate=true, from this GPU's measured ceilings (recorded as
        `calibrated_*`). The prefill floor uses the FP8 rate for FP8 weights, else the BF16 rate.
        Another card's profile on this GPU emulates its memory only (hardware/budget.py): the floors
        are then this GPU's, and the card's are `projected_*`."""
        from context_research.hardware.budget import roofline_profiles
        from context_research.hardware.calibration import calibrated, roofline_peaks

        hardware, projected = roofline_profiles(self.hardware)
        measurement = calibrated() if hardware.is_gpu and hardware.calibrate else None
        peaks = roofline_peaks(hardware, measurement)
        quantization, dtype = self.model.quantization, self.model.dtype
        reasons = [peaks.reason] if peaks.reason else []
        matmul, rate = matmul_ceiling(peaks.fp8_flops_per_s, peaks.bf16_flops_per_s, quantization, dtype)
        if hardware.is_gpu:
            if rate is None:
                reasons.append(f"no {dtype} matmul ceiling: the TTFT floor is for 16-bit or FP8 weights")
            elif matmul is None and peaks.source == "datasheet":
                reasons.append(f"{hardware.name} has no {rate} matmul ceiling in its profile "
                               "(hardware.calibrate=true measures it)")
            if peaks.hbm_bytes_per_s is None and peaks.source == "datasheet":
                reasons.append(f"{hardware.name} has no memory bandwidth in its profile")
        kv_dtype = None if self.kv_cache_dtype == "auto" else self.kv_cache_dtype
        figures = floors(self.model.config_json, dtype, self.workload.prompt_len, self.workload.output_len,
                         peaks.hbm_bytes_per_s, matmul, kv_dtype, quantization)
        figures.update(roofline_hardware=hardware.name, roofline_peaks=peaks.source)
        if reasons and (figures["ttft_floor_ms"] is None or figures["tpot_floor_ms"] is None):
            figures["roofline_reason"] = "; ".join(reasons)
        if measurement is not None and "error" not in measurement:
            figures.update({f"calibrated_{key}": measurement[key]
                            for key in ("hbm_bytes_per_s", "bf16_flops_per_s", "fp8_flops_per_s")})
            figures["calibrated_device"] = measurement["device"]
        if projected is not None:
            card_matmul, _ = matmul_ceiling(projected.fp8_flops_per_s, projected.bf16_flops_per_s, quantization, dtype)
            card = floors(self.model.config_json, dtype, self.workload.prompt_len, self.workload.output_len,
                          projected.hbm_bytes_per_s, card_matmul, kv_dtype, quantization)
            figures.update(projected_hardware=projected.name, projected_ttft_floor_ms=card["ttft_floor_ms"],
                           projected_tpot_floor_ms=card["tpot_floor_ms"])
        return figures


def matmul_ceiling(fp8_flops_per_s: float | None, bf16_flops_per_s: float | None, quantization: str | None,
                   dtype: str) -> tuple[float | None, str | None]:
    """The matmul rate a prefill runs at, and its name: FP8 for FP8 weights, BF16 for 16-bit ones,
    none (None, None) for other dtypes."""
    if quantization == "fp8":
        return fp8_flops_per_s, "FP8"
    if dtype in ("bfloat16", "float16"):
        return bf16_flops_per_s, "BF16"
    return None, None
