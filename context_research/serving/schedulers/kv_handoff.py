"""Moving an HF prompt's KV cache (a transformers `DynamicCache`) from the prefill pool to the decode pool.

A `DynamicCache` holds, per layer, a key and a value tensor of shape [batch, kv_heads, tokens,
head_dim]; those tensors are what moves, and their bytes (numel x element size) are what is counted.

`copy_cache` moves them to another device in place of the originals: one destination block for
the whole cache (one allocation) and one contiguous copy per tensor into it (a layer's keys or
values: 64 MiB each for a 32K-token Qwen3-8B prompt; GPU to GPU over NVLink where peer access
exists), timed from the moment both devices are idle to the moment both have finished (CUDA
synchronised on both sides), so the time is "first byte sent -> last byte usable on the decode
side"; CUDA events on the source stream give the copy engine's own time alongside. `hold_back` is the simulated transfer: nothing
moves, the decode side waits bytes / bandwidth.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from context_research.metrics.kv_transfer import bandwidth_gb_s


@dataclass
class Transfer:
    """One handoff's KV movement, times on the harness clock (perf_counter seconds)."""

    kv_bytes: int
    start: float  # first byte sent
    end: float  # last byte usable on the decode side
    mode: str  # device_copy | process | simulated
    source: str
    destination: str
    copy_engine_s: float | None = None  # CUDA events on the source stream (device_copy on GPUs)

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def metadata(self) -> dict[str, Any]:
        """The per-request KV figures (requests.parquet columns)."""
        figures = {"kv_bytes": int(self.kv_bytes), "kv_transfer_s": self.seconds,
                   "kv_bandwidth_gb_s": bandwidth_gb_s(self.kv_bytes, self.seconds),
                   "kv_transfer_mode": self.mode, "kv_simulated": self.mode == "simulated",
                   "kv_source": self.source, "kv_destination": self.destination}
        if self.copy_engine_s is not None:
            figures["kv_copy_engine_s"] = self.copy_engine_s
        return figures


def cache_layers(cache: Any) -> list[Any]:
    """The per-layer key/value holders of a transformers 5.x `DynamicCache`."""
    layers = getattr(cache, "layers", None)
    if not layers or not all(hasattr(layer, "keys") and hasattr(layer, "values") for layer in layers):
        raise TypeError(f"{type(cache).__name__}: expected a transformers 5.x DynamicCache with "
                        "layers[i].keys/.values")
    return list(layers)


def cache_tensors(cache: Any) -> list[Any]:
    """Every KV tensor of the cache in layer order: keys of layer 0, values of layer 0, keys of layer 1, ..."""
    return [tensor for layer in cache_layers(cache) for tensor in (layer.keys, layer.values)]


def tensor_bytes(tensors: list[Any]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _synchronize(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def copy_cache(cache: Any, destination: Any) -> Transfer:
    """Copy every KV tensor of `cache` to `destination` and put the copies in the cache in place of
    the originals (the source memory is freed when they are dropped)."""
    import torch

    destination = torch.device(destination)
    layers = cache_layers(cache)
    source = layers[0].keys.device
    events = None
    if source.type == "cuda":
        events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
    tensors = cache_tensors(cache)
    if len({t.dtype for t in tensors}) != 1:
        raise TypeError("KV tensors of one cache must share a dtype")
    _synchronize(source)
    _synchronize(destination)
    start = time.perf_counter()
    # one destination block for the whole cache (one allocation), filled tensor by tensor
    block = torch.empty(sum(t.numel() for t in tensors), dtype=tensors[0].dtype, device=destination)
    if events:
        events[0].record(torch.cuda.current_stream(source))
    moved, offset = [], 0
    for tensor in tensors:
        target = block[offset:offset + tensor.numel()].view(tensor.shape)
        target.copy_(tensor, non_blocking=True)
        moved.append(target)
        offset += tensor.numel()
    if events:
        events[1].record(torch.cuda.current_stream(source))
    _synchronize(source)
    _synchronize(destination)
    end = time.perf_counter()
    for layer, keys, values in zip(layers, moved[0::2], moved[1::2]):
        layer.keys, layer.values = keys, values
        if hasattr(layer, "device"):
            layer.device = destination
    copy_engine_s = events[0].elapsed_time(events[1]) / 1e3 if events else None
    return Transfer(kv_bytes=tensor_bytes(cache_tensors(cache)), start=start, end=end, mode="device_copy",
                    source=str(source), destination=str(destination), copy_engine_s=copy_engine_s)


def hold_back(cache: Any, link_bandwidth_gb_s: float) -> Transfer:
    """Simulated transfer: the KV stays where it is; the handoff takes bytes / link bandwidth."""
    kv_bytes = tensor_bytes(cache_tensors(cache))
    device = str(cache_layers(cache)[0].keys.device)
    start = time.perf_counter()
    time.sleep(kv_bytes / (link_bandwidth_gb_s * 1e9))
    return Transfer(kv_bytes=kv_bytes, start=start, end=time.perf_counter(), mode="simulated",
                    source=device, destination=device)
