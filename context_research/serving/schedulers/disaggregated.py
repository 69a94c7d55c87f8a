"""Disaggregated scheduling: prefill on one pool, decode on another, a broker between them.

Every request goes prefill pool -> KV handoff -> decode pool; its first token comes from the
prefill pool (TTFT), the rest from the decode pool. The pools are two engines built from the
serving config with per-pool overrides (`pools()`): the device each runs on and, for vLLM, the KV
connector role. The broker is `hf_broker.HFBroker` (KV tensors copied between devices, sent to a
worker process, or held back for a simulated link) or `vllm_broker.VLLMBroker` (two vLLM engines
and a KV connector: vLLM's debug ExampleConnector, or NIXL's, schedulers/nixl.py). The route of
each request is in the scheduler's route log (the record's `route`, `prefill_pool`, `decode_pool`,
`prefill_device`, `decode_device` columns); each result carries its KV accounting (`kv_bytes`,
`kv_transfer_s`, `kv_wait_s`, `kv_bandwidth_gb_s`, `kv_transfer_mode`, `kv_simulated`, and for
vLLM `kv_connector`, `kv_connector_debug`, `kv_accounting`), which the kv_transfer collector sums.
"""

from __future__ import annotations

import asyncio
from functools import cached_property
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from context_research.requests import GenerationRequest, GenerationResult
from context_research.serving import event_loop
from context_research.serving.backends.base import ServingBackend
from context_research.serving.schedulers.base import DECODE, PREFILL, Scheduler
from context_research.serving.schedulers.placement import Placement, resolve

PROCESS_ENGINE = "context_research.serving.schedulers.decode_process.ProcessDecodeEngine"


class DisaggregatedScheduler(Scheduler):
    """Scheduler `disaggregated` (config: DisaggregatedSchedulerConfig)."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        # plain containers: they travel in vLLM's SamplingParams.extra_args
        extra = OmegaConf.to_container(OmegaConf.create(dict(config.prefill_kv_transfer_params)))
        if config.engine == "vllm" and config.transfer == "nixl":
            from context_research.serving.schedulers.nixl import prefill_kv_transfer_params

            extra = prefill_kv_transfer_params(extra)
        self.prefill_kv_transfer_params = extra
        self.broker: Any = None

    # pools -----------------------------------------------------------------------------------
    @cached_property
    def placement(self) -> Placement:
        return resolve(self.config.engine, self.config.prefill_device, self.config.decode_device, self.config.transfer)

    @cached_property
    def storage_root(self) -> Path:
        """The KV connector's shared storage (vLLM ExampleConnector), chosen once per scheduler."""
        from context_research.serving.schedulers.vllm_broker import storage_dir

        return storage_dir(self.config.kv_storage_dir, self.config.kv_storage_fallback_dir,
                           self.config.kv_storage_min_free_gb)

    def pool_device(self, pool: str) -> str:
        return self.placement.prefill_device if pool == PREFILL else self.placement.decode_device

    def pools(self) -> dict[str, dict[str, Any]]:
        """Engine-argument overrides of the prefill and the decode pool."""
        placement = self.placement
        prefill: dict[str, Any] = {"device": placement.prefill_device}
        decode: dict[str, Any] = {"device": placement.decode_device}
        if self.config.engine == "hf":
            if placement.transfer == "process":
                decode["_target_"] = PROCESS_ENGINE
            return {PREFILL: prefill, DECODE: decode}
        connector = self.config.kv_connector
        if placement.transfer == "nixl":
            from context_research.serving.schedulers import nixl

            for pool in (prefill, decode):  # kv_both on each side; the worker extension flushes UCX's log
                pool["extra_engine_args"] = {"kv_transfer_config": nixl.connector_config(connector),
                                             "worker_extension_cls": nixl.NIXL_WORKER_EXTENSION}
        else:
            from context_research.serving.schedulers.vllm_broker import connector_config

            # one whole prompt per prefill step: ExampleConnector saves a request's KV in its first step
            prefill["enable_chunked_prefill"] = False
            prefill["extra_engine_args"] = {"kv_transfer_config": connector_config(connector, "kv_producer",
                                                                                   self.storage_root)}
            decode["extra_engine_args"] = {"kv_transfer_config": connector_config(connector, "kv_consumer",
                                                                                  self.storage_root)}
        if placement.same_device:
            shared = self.config.shared_device_memory_utilization
            prefill["gpu_memory_utilization"] = decode["gpu_memory_utilization"] = shared
        return {PREFILL: prefill, DECODE: decode}

    def bind(self, engines: dict[str, ServingBackend]) -> None:
        self.close()
        super().bind(engines)
        prefill, decode = engines[PREFILL], engines[DECODE]
        if self.config.engine == "hf":
            from context_research.serving.schedulers.hf_broker import HFBroker, LocalDecodePool

            transfer = self.placement.transfer
            pool = decode if transfer == "process" else LocalDecodePool(decode, transfer,
                                                                        self.config.link_bandwidth_gb_s)
            self.broker = HFBroker(prefill, pool, label=self._label, on_decode=self.route_decode)
            return
        from context_research.profiling.roofline import footprint
        from context_research.serving.schedulers.vllm_broker import ExampleConnectorStorage, VLLMBroker

        storage = ledger = None
        if self.placement.transfer == "nixl":
            from context_research.serving.schedulers.nixl import ConnectorLedger

            ledger = ConnectorLedger([prefill, decode])
        else:
            storage = ExampleConnectorStorage(self.storage_root, prefill.describe().get("block_size") or 16)
            storage.clear()
        model, kv_dtype = prefill.model_config, prefill.config.kv_cache_dtype
        per_token = footprint(model.config_json, model.dtype, None if kv_dtype == "auto" else kv_dtype).kv_bytes_per_token
        self.broker = VLLMBroker(prefill, decode, label=self._label, on_decode=self.route_decode,
                                 kv_bytes_per_token=per_token, connector=self.config.kv_connector,
                                 transfer_mode=self.placement.mode, storage=storage, ledger=ledger,
                                 simulated=self.placement.simulated,
                                 link_bandwidth_gb_s=self.config.link_bandwidth_gb_s,
                                 prefill_kv_transfer_params=self.prefill_kv_transfer_params)

    def close(self) -> None:
        """Stop the broker's workers (the engines stay cached for the next job)."""
        if self.broker is not None:
            self.broker.close()
        self.broker = None

    # routing ---------------------------------------------------------------------------------
    def route_prefill(self, request: GenerationRequest) -> str:
        return self._route(request.request_id, "prefill", PREFILL)

    def route_decode(self, request_id: str) -> str:
        return self._route(request_id, "decode", DECODE)

    def _label(self, result: GenerationResult) -> GenerationResult:
        """How the KV moved, on every result (a request done after its first token moved none)."""
        result.metadata.setdefault("kv_transfer_mode", self.placement.mode)
        result.metadata["kv_simulated"] = self.placement.simulated
        return result

    # requests --------------------------------------------------------------------------------
    async def generate_async(self, request: GenerationRequest) -> GenerationResult:
        """Streamed, many in flight: await on the process-wide loop (`serving.event_loop`)."""
        self.route_prefill(request)
        if self.config.engine == "hf":
            return await asyncio.wrap_future(self.broker.submit(request))
        return await self.broker.generate_async(request)

    def generate(self, request: GenerationRequest) -> GenerationResult:
        if self.config.engine == "hf":
            self.route_prefill(request)
            return self.broker.submit(request).result()
        return event_loop.run(self.generate_async(request))

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """All at once: every request queued for the prefill pool together; results in order."""
        async def all_requests():
            return await asyncio.gather(*(self.generate_async(r) for r in requests))

        return event_loop.run(all_requests())
