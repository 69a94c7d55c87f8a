"""The vLLM broker: two vLLM 0.26 engines joined by a KV connector that ships with vLLM.

Per request, on the process-wide event loop:

    1. prefill engine: the prompt with max_tokens=1 (and the connector's prefill kv_transfer_params:
       NIXL's do_remote_decode request, schedulers/nixl.py). Its first token goes to the client at
       once: that is the request's first token (TTFT). The connector saves (ExampleConnector) or
       holds (NIXL) the prompt's KV.
    2. decode engine: the same prompt, max_tokens = max_new_tokens, with the kv_transfer_params
       the prefill output returned (NixlConnector returns the remote blocks; ExampleConnector
       returns none: it finds the KV by the hash of the prompt's tokens). The decode engine loads
       the KV in its first step for the request, computes only the uncached tail (the last prompt
       token, up to a block) and so samples the first token again; the client already has it from
       the prefill engine, so that repeat is dropped and decoding continues. (The same prompt,
       not prompt + first token: ExampleConnector's load path aligns the decode prompt's length,
       and a prompt one token longer than a block-aligned one would look under another hash.)

Where the KV figures of a request come from (`kv_accounting`):

    connector_stats  NIXL's own statistics of the request's transfers (schedulers/nixl.py): bytes,
                     transfer time (NIXL's post -> completion), descriptors
    connector_files  ExampleConnector (vLLM's debug connector, `example_connector.py`) writes each
                     layer's KV of the prompt's first `(len(prompt) - 1) // block_size * block_size`
                     tokens to `<shared_storage_path>/<md5 of those token ids as int64>/<layer>.safetensors`
                     during the prefill step and the decode engine reads them back; the bytes are read
                     from the safetensors headers (`safetensors.safe_open`: exactly the tensors the
                     decode engine loads) and the folder is removed once the request is done
    derived          prompt tokens x the model's KV bytes per token (NIXL transfers the statistics
                     cannot be told apart from another request's: requests in flight together)

and the times, where the connector gives none:

    kv_transfer_s  prefill output at the broker -> the decode engine's first output at the broker
                   (decode submit, decode queue, KV load, the tail's forward step), also kept as kv_handoff_s
    kv_wait_s      the decode engine's first step for the request (scheduled -> first token, engine
                   timestamps): the engine holds the request but its step is blocked loading the KV
                   (the tail's forward is part of that step)

With both pools on one GPU (`simulated`) ExampleConnector still moves the KV through storage, but
kv_transfer_s is kv_bytes / link bandwidth, labelled simulated; the measured span is kept as kv_handoff_s.
NIXL on one GPU moves the KV for real, between the two engines' caches (`nixl_same_gpu`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from context_research.config.scheduler import DEBUG_CONNECTORS
from context_research.metrics.kv_transfer import bandwidth_gb_s
from context_research.requests import GenerationRequest, GenerationResult

DEV_SHM = Path("/dev/shm")
# bytes per element of the dtypes a safetensors header names (the KV caches vLLM stores)
SAFETENSORS_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8,
                           "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
SHM_STORAGE = DEV_SHM / "context_research_kv"


def storage_dir(setting: str, fallback: str, min_free_gb: float) -> Path:
    """Where ExampleConnector keeps the KV: `setting`, or for `auto` /dev/shm when it has
    `min_free_gb` GiB free (host memory, no disk in the path), else `fallback` on disk."""
    if setting != "auto":
        return Path(setting).resolve()
    if DEV_SHM.is_dir() and shutil.disk_usage(DEV_SHM).free >= min_free_gb * 2**30:
        return SHM_STORAGE
    return Path(fallback).resolve()


def stored_tokens(prompt_len: int, block_size: int) -> int:
    """Tokens whose KV ExampleConnector stores for a prompt (its `align_to_block_size`)."""
    return (prompt_len - 1) // block_size * block_size


def _safe_hash(data: bytes) -> str:
    """vLLM 0.26's `vllm.utils.hashing.safe_hash(data, usedforsecurity=False).hexdigest()`."""
    try:
        from vllm.utils.hashing import safe_hash
    except ImportError:  # the same rule, for hosts without vLLM (md5, sha256 where FIPS forbids md5)
        try:
            return hashlib.md5(data, usedforsecurity=False).hexdigest()
        except ValueError:
            return hashlib.sha256(data).hexdigest()
    return safe_hash(data, usedforsecurity=False).hexdigest()


class ExampleConnectorStorage:
    """The per-request folders of vLLM's ExampleConnector under `root`."""

    def __init__(self, root: Path, block_size: int) -> None:
        self.root = Path(root)
        self.block_size = block_size

    def folder(self, prompt_ids: list[int], block_size: int | None = None) -> Path:
        """The folder the prefill engine writes this prompt's KV to (ExampleConnector's naming)."""
        tokens = stored_tokens(len(prompt_ids), block_size or self.block_size)
        data = np.asarray(prompt_ids[:tokens], dtype=np.int64).tobytes()
        return self.root / _safe_hash(data)

    def find(self, prompt_ids: list[int]) -> Path | None:
        """The prompt's folder as the engine wrote it: under the frontend's block size, else under
        another power-of-two block size (an attention backend may choose its own in the engine core)."""
        for block_size in dict.fromkeys([self.block_size, *(2 ** k for k in range(4, 11))]):
            folder = self.folder(prompt_ids, block_size)
            if folder.is_dir():
                return folder
        return None

    @staticmethod
    def stored(folder: Path) -> tuple[int, int, int]:
        """(bytes, layers, tokens) of the KV tensors in a request's folder, from each safetensors
        file's header (shapes and dtypes; the tensors themselves are not read)."""
        from safetensors import safe_open

        total, layers, tokens = 0, 0, 0
        for path in sorted(folder.glob("*.safetensors")):
            with safe_open(str(path), framework="numpy") as handle:
                for name in handle.keys():
                    view = handle.get_slice(name)
                    shape = view.get_shape()
                    total += math.prod(shape) * SAFETENSORS_DTYPE_BYTES[view.get_dtype()]
                    tokens = shape[0] if shape else 0
            layers += 1
        return total, layers, tokens

    def clear(self) -> None:
        """Remove request folders left from an earlier run (the root is ours alone)."""
        if self.root.is_dir():
            for child in self.root.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)


def connector_config(connector: str, role: str, storage: Path) -> dict[str, Any]:
    """The `kv_transfer_config` engine argument of one ExampleConnector pool (vLLM's KVTransferConfig fields)."""
    return {"kv_connector": connector, "kv_role": role,
            "kv_connector_extra_config": {"shared_storage_path": str(storage)}}


class VLLMBroker:
    """Prefill on one vLLM engine, decode on another (see the module doc). `storage`: ExampleConnector's
    folders; `ledger`: NIXL's statistics (schedulers/nixl.py); neither: derived figures."""

    UCX_READS = 3  # attempts per job to read the UCX transports (each flushes both engines' logs)

    def __init__(self, prefill_engine: Any, decode_engine: Any, label: Callable[[GenerationResult], GenerationResult],
                 on_decode: Callable[[str], Any], kv_bytes_per_token: int, connector: str, transfer_mode: str,
                 storage: ExampleConnectorStorage | None = None, ledger: Any = None, simulated: bool = False,
                 link_bandwidth_gb_s: float = 400.0, prefill_kv_transfer_params: dict[str, Any] | None = None) -> None:
        self.prefill_engine = prefill_engine
        self.decode_engine = decode_engine
        self.storage = storage
        self.ledger = ledger
        self.label = label
        self.on_decode = on_decode
        self.simulated = simulated
        self.link_bandwidth_gb_s = link_bandwidth_gb_s
        self.kv_bytes_per_token = kv_bytes_per_token
        self.connector = connector
        self.transfer_mode = transfer_mode
        self.prefill_kv_transfer_params = dict(prefill_kv_transfer_params or {})
        self.ucx: Any = None  # nixl.UCXLanes once read
        self.ucx_reads = 0

    async def generate_async(self, request: GenerationRequest) -> GenerationResult:
        engine = self.prefill_engine
        ids = engine.prompt_ids(request)
        metadata = dict(request.metadata)
        if self.prefill_kv_transfer_params and request.max_new_tokens > 1:  # one token: no KV to hand over
            metadata["kv_transfer_params"] = dict(self.prefill_kv_transfer_params)
        first = await engine.generate_async(dataclasses.replace(
            request, request_id=f"{request.request_id}-prefill", prompt=None, prompt_token_ids=ids, max_new_tokens=1,
            metadata=metadata))
        if engine.finished(request, first.output_token_ids):
            self._discard(ids)
            return self.label(self._merge(request, ids, first, None))
        self.on_decode(request.request_id)
        decode_metadata = {key: value for key, value in request.metadata.items() if key != "kv_transfer_params"}
        if first.metadata.get("kv_transfer_params") is not None:
            decode_metadata["kv_transfer_params"] = first.metadata["kv_transfer_params"]
        if self.ledger is not None:
            self.ledger.open(request.request_id, first.last_token_time)
        try:
            rest = await self.decode_engine.generate_async(dataclasses.replace(
                request, request_id=f"{request.request_id}-decode", prompt=None, prompt_token_ids=ids,
                metadata=decode_metadata))
            if self.ledger is not None:
                self.ledger.close(request.request_id, rest.last_token_time)
            result = self._merge(request, ids, first, rest)
            result.metadata.update(self._accounting(request.request_id, ids, first, rest))
        finally:
            if self.ledger is not None:
                self.ledger.settle(request.request_id)
            self._discard(ids)
        if self.ledger is not None:
            result.metadata.update(await self._ucx_labels())
        return self.label(result)

    def close(self) -> None:
        """Remove whatever the connector left in its storage (requests that failed mid-way)."""
        if self.storage is not None:
            self.storage.clear()

    def _discard(self, ids: list[int]) -> None:
        folder = self.storage.find(ids) if self.storage is not None else None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    async def _ucx_labels(self) -> dict[str, Any]:
        """The UCX transports of the KV (nixl.ucx_transports), read once found, else up to UCX_READS times."""
        from context_research.serving.schedulers import nixl

        if self.ucx_reads < self.UCX_READS and (self.ucx is None or self.ucx.transports is None):
            self.ucx_reads += 1
            engines = (self.prefill_engine, self.decode_engine)
            for engine in engines:  # UCX writes its log through stdio and flushes it only on errors
                await engine.worker_call(nixl.FLUSH)
            self.ucx = nixl.ucx_transports(folder for engine in engines if (folder := nixl.ucx_log_folder(engine)))
        return self.ucx.labels()

    def _kv_figures(self, request_id: str, ids: list[int], handoff_s: float) -> dict[str, Any]:
        """kv_bytes, kv_transfer_s and kv_accounting (module doc), with what else the source gives."""
        if self.storage is not None:
            folder = self.storage.find(ids)
            if folder is None:  # nothing stored: the decode engine had no KV to load
                return {"kv_bytes": float("nan"), "kv_transfer_s": handoff_s,
                        "kv_accounting": "connector_files_missing"}
            kv_bytes, layers, tokens = self.storage.stored(folder)
            return {"kv_bytes": kv_bytes, "kv_layers": layers, "kv_tokens": tokens, "kv_transfer_s": handoff_s,
                    "kv_accounting": "connector_files"}
        if self.ledger is not None:
            from context_research.serving.schedulers.nixl import accounting_from_stats

            totals = self.ledger.figures(request_id)
            if totals is not None:
                return accounting_from_stats(totals)
        return {"kv_bytes": len(ids) * self.kv_bytes_per_token, "kv_tokens": len(ids), "kv_transfer_s": handoff_s,
                "kv_accounting": "derived"}

    def _accounting(self, request_id: str, ids: list[int], first: GenerationResult,
                    rest: GenerationResult) -> dict[str, Any]:
        handoff_s = rest.first_token_time - first.last_token_time
        figures: dict[str, Any] = {"kv_handoff_s": handoff_s,
                                   "kv_wait_s": rest.metadata.get("prefill_ms", float("nan")) / 1e3,
                                   "decode_cached_tokens": rest.metadata.get("num_cached_tokens", 0),
                                   "kv_connector": self.connector,
                                   "kv_connector_debug": self.connector in DEBUG_CONNECTORS}
        figures.update(self._kv_figures(request_id, ids, handoff_s))
        if self.simulated:
            figures["kv_transfer_s"] = figures["kv_bytes"] / (self.link_bandwidth_gb_s * 1e9)
        figures.update(kv_simulated=self.simulated, kv_transfer_mode=self.transfer_mode,
                       kv_bandwidth_gb_s=bandwidth_gb_s(figures["kv_bytes"], figures["kv_transfer_s"]))
        return figures

    def _merge(self, request: GenerationRequest, ids: list[int], first: GenerationResult,
               rest: GenerationResult | None) -> GenerationResult:
        """The client's view: the first token from the prefill engine, the rest from the decode
        engine, whose own first token (the prefill's, sampled again) is dropped with its arrival
        time when it came alone in its streamed output."""
        tokens = first.output_token_ids + (rest.output_token_ids[1:] if rest else [])
        later_times = []
        if rest is not None:
            one_per_output = len(rest.token_times) == len(rest.output_token_ids)
            later_times = rest.token_times[1:] if one_per_output else rest.token_times
        times = first.token_times[:1] + later_times
        tokenizer = self.prefill_engine.tokenizer
        text = tokenizer.decode(tokens, skip_special_tokens=True) if tokenizer is not None else ""
        metadata = {key: value for key, value in first.metadata.items()
                    if key not in ("decode_ms", "kv_transfer_params", "finish_reason")}
        if rest is not None:
            metadata.update(finish_reason=rest.metadata.get("finish_reason"),
                            decode_engine_queue_ms=rest.metadata.get("engine_queue_ms"),
                            decode_first_step_ms=rest.metadata.get("prefill_ms"),
                            decode_ms=rest.metadata.get("decode_ms"))
        else:
            metadata["finish_reason"] = first.metadata.get("finish_reason")
        return GenerationResult.from_outputs(request, len(ids), tokens, times, first.dispatch_time, text=text,
                                             metadata=metadata)
