"""Disaggregated scheduling: prefill on one pool, decode on another, a broker between them.

Every request goes prefill pool -> KV handoff -> decode pool; its first token comes from the
prefill pool (TTFT), the rest from the decode pool. The pools are two engines built from the
serving config with per-pool overrides (`pools()`): the device each runs on and, for vLLM, the KV
connector role. The broker is `hf_broker.HFBroker` (KV tensors copied between devices, sent to a
worker process, or held back for a simulated link) or `vllm_broker.VLLMBroker` (two vLLM engines
and a KV connector). Each result carries its route (`route`, `prefill_pool`, `decode_pool`, the
devices) and the KV accounting (`kv_bytes`, `kv_transfer_s`, `kv_wait_s`, `kv_bandwidth_gb_s`,
`kv_transfer_mode`, `kv_simulated`) that the kv_transfer collector sums.

Same surface as the aggregated scheduler: `generate` (one request), `generate_async` (many in
flight, on the process-wide loop of `serving.event_loop`), `generate_batch` (all at once).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from context_research.serving import event_loop
from context_research.requests import GenerationRequest, GenerationResult
from context_research.serving.backends.base import ServingBackend
from context_research.serving.schedulers.placement import Placement, resolve

PREFILL = "prefill"
DECODE = "decode"
PROCESS_ENGINE = "context_research.serving.schedulers.decode_process.ProcessDecodeEngine"


class DisaggregatedScheduler:
    def __init__(self, engine: str = "hf", name: str = "disaggregated", prefill_device: str = "auto",
                 decode_device: str = "auto", transfer: str = "auto", link_bandwidth_gb_s: float = 400.0,
                 shared_device_memory_utilization: float = 0.42, connector: str = "ExampleConnector",
                 kv_storage_dir: str = "auto", kv_storage_fallback_dir: str = ".cache/context_research/kv_connector",
                 kv_storage_min_free_gb: float = 32.0,
                 prefill_kv_transfer_params: dict[str, Any] | None = None) -> None:
        self.name = name
        self.engine = engine
        self.settings = {"prefill_device": prefill_device, "decode_device": decode_device, "transfer": transfer}
        self.link_bandwidth_gb_s = link_bandwidth_gb_s
        self.shared_device_memory_utilization = shared_device_memory_utilization
        self.connector = connector
        self.kv_storage = (kv_storage_dir, kv_storage_fallback_dir, kv_storage_min_free_gb)
        # plain containers: they travel in vLLM's SamplingParams.extra_args
        self.prefill_kv_transfer_params = OmegaConf.to_container(OmegaConf.create(dict(prefill_kv_transfer_params or {})))
        self.engines: dict[str, ServingBackend] = {}
        self.broker: Any = None
        self._placement: Placement | None = None
        self._storage_root: Path | None = None
        self._log: list[dict[str, Any]] = []
        self._log_lock = threading.Lock()

    # pools -----------------------------------------------------------------------------------
    @property
    def placement(self) -> Placement:
        if self._placement is None:
            self._placement = resolve(self.engine, **self.settings)
        return self._placement

    def storage_root(self) -> Path:
        """The KV connector's shared storage (vLLM ExampleConnector), chosen once per scheduler."""
        from context_research.serving.schedulers.vllm_broker import storage_dir

        if self._storage_root is None:
            self._storage_root = storage_dir(*self.kv_storage)
        return self._storage_root

    def pools(self) -> dict[str, dict[str, Any]]:
        """Engine-argument overrides of the prefill and the decode pool."""
        placement = self.placement
        prefill: dict[str, Any] = {"device": placement.prefill_device}
        decode: dict[str, Any] = {"device": placement.decode_device}
        if self.engine == "hf":
            if placement.transfer == "process":
                decode["_target_"] = PROCESS_ENGINE
            return {PREFILL: prefill, DECODE: decode}
        from context_research.serving.schedulers.vllm_broker import connector_config

        storage = self.storage_root()
        # one whole prompt per prefill step: the connector saves a request's KV in its first step
        prefill["enable_chunked_prefill"] = False
        prefill["extra_engine_args"] = {"kv_transfer_config": connector_config(self.connector, "kv_producer", storage)}
        decode["extra_engine_args"] = {"kv_transfer_config": connector_config(self.connector, "kv_consumer", storage)}
        if placement.simulated:
            prefill["gpu_memory_utilization"] = decode["gpu_memory_utilization"] = self.shared_device_memory_utilization
        return {PREFILL: prefill, DECODE: decode}

    def bind(self, engines: dict[str, ServingBackend]) -> None:
        self.close()
        self.engines = engines
        prefill, decode = engines[PREFILL], engines[DECODE]
        if self.engine == "hf":
            from context_research.serving.schedulers.hf_broker import HFBroker, LocalDecodePool

            transfer = self.placement.transfer
            pool = decode if transfer == "process" else LocalDecodePool(decode, transfer, self.link_bandwidth_gb_s)
            self.broker = HFBroker(prefill, pool, label=self._label, on_decode=self.route_decode)
            return
        from context_research.profiling.roofline import footprint
        from context_research.serving.schedulers.vllm_broker import ExampleConnectorStorage, VLLMBroker

        storage = None
        if self.connector == "ExampleConnector":
            storage = ExampleConnectorStorage(self.storage_root(), prefill.describe().get("block_size") or 16)
            storage.clear()
        model = prefill.model_config
        kv_dtype = prefill.settings.get("kv_cache_dtype", "auto")
        per_token = footprint(model.config_json, model.dtype, None if kv_dtype == "auto" else kv_dtype).kv_bytes_per_token
        self.broker = VLLMBroker(prefill, decode, storage, label=self._label, on_decode=self.route_decode,
                                 simulated=self.placement.simulated, link_bandwidth_gb_s=self.link_bandwidth_gb_s,
                                 kv_bytes_per_token=per_token,
                                 prefill_kv_transfer_params=self.prefill_kv_transfer_params)

    def close(self) -> None:
        """Stop the broker's workers (the engines stay cached for the next job)."""
        if self.broker is not None and hasattr(self.broker, "close"):
            self.broker.close()
        self.broker = None

    # routing ---------------------------------------------------------------------------------
    def _record(self, request_id: str, phase: str, pool: str) -> str:
        device = self.placement.prefill_device if pool == PREFILL else self.placement.decode_device
        with self._log_lock:
            self._log.append({"request_id": request_id, "phase": phase, "pool": pool, "device": device,
                              "t": time.perf_counter()})
        return pool

    def route_prefill(self, request: GenerationRequest) -> str:
        return self._record(request.request_id, "prefill", PREFILL)

    def route_decode(self, request_id: str) -> str:
        return self._record(request_id, "decode", DECODE)

    def route_log(self) -> list[dict[str, Any]]:
        with self._log_lock:
            return list(self._log)

    def _label(self, result: GenerationResult) -> GenerationResult:
        handed_over = "kv_bytes" in result.metadata
        placement = self.placement
        result.metadata.update(
            route=f"{PREFILL}->{DECODE}" if handed_over else PREFILL, prefill_pool=PREFILL,
            decode_pool=DECODE if handed_over else PREFILL, prefill_device=placement.prefill_device,
            decode_device=placement.decode_device if handed_over else placement.prefill_device,
            kv_transfer_mode=result.metadata.get("kv_transfer_mode", placement.transfer),
            kv_simulated=placement.simulated)
        return result

    # requests --------------------------------------------------------------------------------
    async def generate_async(self, request: GenerationRequest) -> GenerationResult:
        """Streamed, many in flight: await on the process-wide loop (`serving.event_loop`)."""
        self.route_prefill(request)
        if self.engine == "hf":
            return await asyncio.wrap_future(self.broker.submit(request))
        return await self.broker.generate_async(request)

    def generate(self, request: GenerationRequest) -> GenerationResult:
        if self.engine == "hf":
            self.route_prefill(request)
            return self.broker.submit(request).result()
        return event_loop.run(self.generate_async(request))

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """All at once: every request queued for the prefill pool together; results in order."""
        async def all_requests():
            return await asyncio.gather(*(self.generate_async(r) for r in requests))

        return event_loop.run(all_requests())
