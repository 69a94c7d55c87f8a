"""Scheduler schemas: how requests are routed over engine pools."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict

from context_research.config.errors import require, require_choice

SCHEDULERS = ("aggregated", "disaggregated")


@dataclass
class AggregatedSchedulerConfig:
    """Prefill and decode on one pool (one engine)."""

    _target_: str = "context_research.serving.schedulers.aggregated.AggregatedScheduler"
    name: str = "aggregated"

    def __post_init__(self) -> None:
        require_choice("name", self.name, SCHEDULERS)


ENGINE_TRANSFERS = {"hf": ("auto", "device_copy", "process", "simulated"),
                    "vllm": ("auto", "connector", "nixl", "simulated")}
POOL_DEVICE = re.compile(r"^(auto|cpu|cuda:\d+)$")
# vLLM 0.26's KV connectors the vllm pools can be joined by: ExampleConnector (vLLM's debug connector:
# safetensors files through shared storage) and NIXL's (NixlConnector = NixlPullConnector: the decode
# engine reads the blocks; NixlPushConnector: the prefill engine writes them)
NIXL_CONNECTORS = ("NixlConnector", "NixlPullConnector", "NixlPushConnector")
CONNECTORS = ("auto", "ExampleConnector", *NIXL_CONNECTORS)
DEBUG_CONNECTORS = ("ExampleConnector",)


@dataclass
class DisaggregatedSchedulerConfig:
    """A prefill pool and a decode pool (separate engines) joined by a broker: the prefill pool
    computes the prompt's KV cache and first token, the KV moves, the decode pool continues.

    `transfer` says how the KV moves: `device_copy` (hf: tensor copies between the pools' devices,
    cuda:0 -> cuda:1 over NVLink), `process` (hf: the decode pool is a worker process with its own
    copy of the model; KV over torch.distributed gloo), `connector` (vllm: a KV connector that
    ships with vLLM, `connector`), `nixl` (vllm: NIXL's connector, GPU memory to GPU memory over UCX;
    on one GPU both pools share it, labelled nixl_same_gpu), `simulated` (both pools on one device;
    the KV is held back for bytes / `link_bandwidth_gb_s`, and every record says simulated). `auto`:
    two GPUs -> cuda:0 and cuda:1 with device_copy/connector; one GPU -> both on cuda:0, simulated;
    no GPU -> cpu, process (hf)."""

    _target_: str = "context_research.serving.schedulers.disaggregated.DisaggregatedScheduler"
    name: str = "disaggregated"
    engine: str = "hf"  # the serving engine (interpolated from serving.engine)
    prefill_device: str = "auto"
    decode_device: str = "auto"
    transfer: str = "auto"
    link_bandwidth_gb_s: float = 400.0  # simulated transfers only (GB/s, 1e9 bytes)
    # vllm: GPU memory share of each engine when both pools share one GPU (simulated, nixl on one GPU)
    shared_device_memory_utilization: float = 0.42
    # vllm: the KV connector (CONNECTORS); auto = NixlConnector for transfer=nixl, else ExampleConnector
    connector: str = "auto"
    # ExampleConnector's shared storage: auto = /dev/shm/context_research_kv when /dev/shm has
    # `kv_storage_min_free_gb` free, else `kv_storage_fallback_dir` (on disk)
    kv_storage_dir: str = "auto"
    kv_storage_fallback_dir: str = ".cache/context_research/kv_connector"
    kv_storage_min_free_gb: float = 32.0
    # kv_transfer_params sent with every prefill request, over the connector's own protocol (NIXL's
    # do_remote_decode request, schedulers/nixl.py); the decode request carries what the prefill returns
    prefill_kv_transfer_params: Dict[str, Any] = field(default_factory=dict)

    @property
    def kv_connector(self) -> str:
        """The connector `connector` names (auto resolved from `transfer`)."""
        if self.connector != "auto":
            return self.connector
        return NIXL_CONNECTORS[0] if self.transfer == "nixl" else "ExampleConnector"

    def __post_init__(self) -> None:
        require_choice("name", self.name, SCHEDULERS)
        require_choice("engine", self.engine, tuple(ENGINE_TRANSFERS))
        require_choice("transfer", self.transfer, ENGINE_TRANSFERS[self.engine])
        for key in ("prefill_device", "decode_device"):
            value = getattr(self, key)
            require(bool(POOL_DEVICE.match(value)), key, value, "auto, cpu or cuda:N")
        if self.engine == "vllm":
            for key in ("prefill_device", "decode_device"):
                value = getattr(self, key)
                require(value != "cpu", key, value, "auto or cuda:N (vLLM pools run on GPUs)")
        if self.transfer == "device_copy" and self.prefill_device.startswith("cuda"):
            require(self.prefill_device != self.decode_device, "decode_device", self.decode_device,
                    f"a GPU other than prefill_device ({self.prefill_device}) for device_copy; "
                    "use transfer=simulated to share one GPU")
        if self.transfer == "process":
            require(self.decode_device in ("auto", "cpu"), "decode_device", self.decode_device,
                    "cpu or auto for transfer=process (the decode worker process runs on the CPU)")
        require(self.link_bandwidth_gb_s > 0, "link_bandwidth_gb_s", self.link_bandwidth_gb_s, "GB/s > 0")
        require(0 < self.shared_device_memory_utilization <= 0.5, "shared_device_memory_utilization",
                self.shared_device_memory_utilization, "a fraction in (0, 0.5] (two engines share the GPU)")
        require_choice("connector", self.connector, CONNECTORS)
        if self.transfer == "nixl":
            require(self.connector in ("auto", *NIXL_CONNECTORS), "connector", self.connector,
                    f"auto or one of {', '.join(NIXL_CONNECTORS)} for transfer=nixl")
        else:
            require(self.connector not in NIXL_CONNECTORS, "transfer", self.transfer,
                    f"nixl for connector={self.connector}")
        require(self.kv_storage_min_free_gb >= 0, "kv_storage_min_free_gb", self.kv_storage_min_free_gb,
                "GiB >= 0")
