"""Where the two pools of a disaggregated run go and how the KV moves between them.

`auto` is resolved from the GPUs this process can see (NVML, CUDA_VISIBLE_DEVICES honoured), before
any engine starts and without initialising CUDA here (vLLM starts its engine processes after this):

    GPUs   prefill  decode   transfer (hf)   transfer (vllm)
    >= 2   cuda:0   cuda:1   device_copy     connector
    1      cuda:0   cuda:0   simulated       simulated
    0      cpu      cpu      process         (vLLM needs a GPU)

`nixl` (vllm, chosen explicitly) puts the decode pool on cuda:1 where two GPUs are visible, else beside
the prefill pool on its GPU: NIXL then moves the KV between two engines on one GPU (`nixl_same_gpu`).
"""

from __future__ import annotations

from dataclasses import dataclass

from context_research import devices


@dataclass(frozen=True)
class Placement:
    prefill_device: str
    decode_device: str
    transfer: str  # device_copy | process | connector | nixl | simulated

    @property
    def simulated(self) -> bool:
        return self.transfer == "simulated"

    @property
    def same_device(self) -> bool:
        """Both pools on one device (their engines share its memory)."""
        return self.prefill_device == self.decode_device

    @property
    def mode(self) -> str:
        """How the KV moves, as records label it: the transfer, `nixl_same_gpu` for NIXL within one GPU."""
        return "nixl_same_gpu" if self.transfer == "nixl" and self.same_device else self.transfer


def resolve(engine: str, prefill_device: str, decode_device: str, transfer: str,
            gpus: int | None = None) -> Placement:
    """The concrete placement for a scheduler config (see the module table)."""
    if gpus is None and "auto" in (prefill_device, decode_device, transfer):
        gpus = devices.visible_gpu_count()
    if transfer == "auto":
        if gpus and gpus >= 2:
            transfer = "connector" if engine == "vllm" else "device_copy"
        elif gpus == 1:
            transfer = "simulated"
        elif engine == "vllm":
            raise RuntimeError("scheduler=disaggregated with serving=vllm needs a GPU; none is visible")
        else:
            transfer = "process"
    if prefill_device == "auto":
        prefill_device = "cuda:0" if gpus else "cpu"
    if decode_device == "auto":
        if transfer == "simulated" or (transfer == "nixl" and (gpus or 0) < 2):
            decode_device = prefill_device
        elif transfer == "process":
            decode_device = "cpu"
        else:
            decode_device = "cuda:1" if prefill_device != "cuda:1" else "cuda:0"
    if engine == "vllm" and "cpu" in (prefill_device, decode_device):
        raise RuntimeError(f"scheduler=disaggregated with serving=vllm and transfer={transfer} needs a GPU; "
                           "none is visible")
    if transfer == "simulated" and decode_device != prefill_device:
        raise RuntimeError(f"transfer=simulated shares one device, but prefill_device={prefill_device} and "
                           f"decode_device={decode_device}")
    if transfer in ("device_copy", "connector") and prefill_device == decode_device and engine == "vllm":
        raise RuntimeError(f"transfer={transfer} needs two GPUs; both pools are on {prefill_device} "
                           "(use transfer=simulated)")
    return Placement(prefill_device, decode_device, transfer)
