"""The decode pool as a worker process: its own HFBackend, KV over torch.distributed gloo.

`ProcessDecodeEngine` is the decode pool's engine when `transfer=process`. It takes the hf
engine's config, starts a worker process (spawned) that builds an HFBackend from the same
model config and seed (the same weights as the prefill engine's), and joins it in a two-rank gloo
process group (rank 0 here, rank 1 there; rendezvous through a file, nothing leaves the host).
Besides handoffs it serves whole requests like any engine (`generate_async`: the worker runs them).

A handoff sends the request and a header (tensor shapes, dtype, first token and its time) over a
control queue, then every KV tensor over gloo (`send`, one tensor per layer's keys or values). In
the worker a receiver thread announces the request to the decoder thread, receives the tensors into
a new DynamicCache and marks it usable; the decoder takes handoffs in order when free, waits for
the KV, decodes and sends the result back. Times are `time.perf_counter()`, which on Linux is the
system-wide monotonic clock, so both processes stamp one timeline:

    kv_transfer_s = KV usable in the worker - first send here
    kv_wait_s     = decoder free and holding the request -> its KV usable (0 if it was already)
    kv_bytes      = bytes sent (numel x element size); the worker checks it received as many

The worker dies with the process that started it, even one killed outright (SIGKILL), which runs
no cleanup: see `die_with_parent`.
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import logging
import multiprocessing
import os
import queue
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from datetime import timedelta
from typing import Any

from context_research.metrics.kv_transfer import bandwidth_gb_s
from context_research.requests import GenerationRequest, GenerationResult
from context_research.serving.backends.base import ServingBackend
from context_research.serving.schedulers.kv_handoff import cache_tensors, tensor_bytes

log = logging.getLogger(__name__)
START_TIMEOUT_S = 600.0
KV_TAG = 0
PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_POLL_S = 1.0


def die_with_parent(parent_pid: int) -> None:
    """End this worker when `parent_pid` ends, even killed outright. On Linux the kernel sends
    SIGKILL the moment the parent goes (prctl PR_SET_PDEATHSIG, which fires when the parent's thread
    that started the worker ends: the job's own thread, which outlives the engine); everywhere, a
    watchdog thread exits once the worker has another parent, which also covers a parent that died
    before the prctl call."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _process_group(store_path: str, rank: int):
    import torch.distributed as dist

    return dist.ProcessGroupGloo(dist.FileStore(store_path, 2), rank, 2, timedelta(seconds=START_TIMEOUT_S))


def _receive(engine: Any, group: Any, header: dict[str, Any]) -> tuple[Any, int]:
    """Receive the KV tensors of one handoff into a DynamicCache usable by `engine`."""
    import torch
    from transformers import DynamicCache

    tensors = [torch.empty(shape, dtype=header["dtype"], device=engine.device) for shape in header["shapes"]]
    for tensor in tensors:
        group.recv([tensor], 0, KV_TAG).wait()
    cache = DynamicCache(config=engine.model.config)
    for layer, (keys, values) in enumerate(zip(tensors[0::2], tensors[1::2])):
        cache.update(keys, values, layer)
    return cache, tensor_bytes(tensors)


def _decoder(engine: Any, handoffs: queue.Queue, results: Any) -> None:
    """Worker thread: decode each handed-over request once its KV is usable."""
    import torch

    from context_research.serving.backends.hf import PrefillState

    while True:
        item = handoffs.get()
        if item is None:
            return
        ticket, request, header, received, box = item
        if header is None:  # a whole request, not a handoff
            try:
                results.put(("result", ticket, engine.generate(request), None))
            except Exception as error:  # noqa: BLE001 - reported to the parent, the worker goes on
                results.put(("error", ticket, f"{type(error).__name__}: {error}", None))
            continue
        ready = time.perf_counter()
        received.wait()
        try:
            if "error" in box:
                raise box["error"]
            state = PrefillState(cache=box["cache"], next_token=torch.tensor([[header["first_token"]]]),
                                 prompt_tokens=header["prompt_tokens"])
            result = engine.decode_from(request, state, header["first_time"], header["dispatch_time"])
            results.put(("result", ticket, result, {"kv_ready": box["ready"], "kv_wait_s": max(0.0, box["ready"] - ready),
                                                    "kv_bytes_received": box["bytes"]}))
        except Exception as error:  # noqa: BLE001 - reported to the parent, the worker goes on
            results.put(("error", ticket, f"{type(error).__name__}: {error}", None))


def serve(config: Any, model: Any, cache_dir: str, store_path: str, inbox: Any, results: Any,
          parent_pid: int) -> None:
    """Worker process main: build the engine, join the process group, receive and decode until told to stop."""
    die_with_parent(parent_pid)
    from context_research.serving.backends.hf import HFBackend

    group = _process_group(store_path, 1)
    engine = HFBackend(config, model, cache_dir)
    engine.start()
    results.put(("ready", None, engine.describe(), {"pid": os.getpid()}))
    handoffs: queue.Queue = queue.Queue()
    decoder = threading.Thread(target=_decoder, args=(engine, handoffs, results), name="decoder", daemon=True)
    decoder.start()
    while True:
        message = inbox.get()
        if message is None:
            handoffs.put(None)
            decoder.join()
            return
        kind, ticket, payload = message
        if kind == "call":  # an engine method without arguments, or an attribute (warm-up, memory figures)
            value = getattr(engine, payload)
            results.put(("answer", ticket, value() if callable(value) else value, None))
            continue
        if kind == "generate":
            handoffs.put((ticket, payload, None, None, None))
            continue
        request, header = payload
        received = threading.Event()
        box: dict[str, Any] = {}
        handoffs.put((ticket, request, header, received, box))
        try:
            box["cache"], box["bytes"] = _receive(engine, group, header)
        except Exception as error:  # noqa: BLE001 - the request fails in the decoder thread
            box["error"] = error
        box["ready"] = time.perf_counter()
        received.set()


class ProcessDecodeEngine(ServingBackend):
    """Engine `hf` of the decode pool, running in a worker process (see the module doc). Takes the
    hf engine's config; the worker builds `HFBackend(config, model, cache_dir)`."""

    _tickets = itertools.count()

    def __init__(self, config: Any, model: Any, cache_dir: str) -> None:
        super().__init__(config, model, cache_dir)
        self.device = config.device if config.device != "auto" else "cpu"
        self._process = None
        self._group = None
        self._inbox = None
        self._results = None
        self._listener: threading.Thread | None = None
        self._pending: dict[int, tuple[Future, Any]] = {}
        self._send_lock = threading.Lock()
        self._describe: dict[str, Any] = {}
        self._store_dir: tempfile.TemporaryDirectory | None = None

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._store_dir = tempfile.TemporaryDirectory(prefix="decode-pool-")
        store_path = os.path.join(self._store_dir.name, "store")
        self._inbox, self._results = context.Queue(), context.Queue()
        self._process = context.Process(target=serve, args=(self.config, self.model_config, self.cache_dir, store_path,
                                                            self._inbox, self._results, os.getpid()),
                                        name="decode-pool", daemon=True)
        self._process.start()
        self._group = _process_group(store_path, 0)
        kind, _, description, extra = self._results.get(timeout=START_TIMEOUT_S)
        if kind != "ready":
            raise RuntimeError(f"decode worker failed to start: {description}")
        self._describe = {**description, "process": extra["pid"], "kv_link": "torch.distributed gloo"}
        self._listener = threading.Thread(target=self._listen, name="decode-pool-results", daemon=True)
        self._listener.start()

    def stop(self) -> None:
        if self._process is None:
            return
        self._inbox.put(None)
        self._process.join(timeout=60)
        if self._process.is_alive():
            self._process.terminate()
        self._results.put(("closed", None, None, None))
        self._listener.join()
        self._process = self._group = None
        self._store_dir.cleanup()

    def _ask(self, kind: str, payload: Any = None) -> Future:
        """Send the worker one message; the future gets its answer."""
        future: Future = Future()
        ticket = next(self._tickets)
        self._pending[ticket] = (future, None)
        self._inbox.put((kind, ticket, payload))
        return future

    def _call(self, name: str) -> Any:
        """The worker engine's method `name` called (or its attribute read), and its answer."""
        return self._ask("call", name).result(timeout=START_TIMEOUT_S)

    def warmup(self) -> None:
        self._call("warmup")
        self.memory_phases = self._call("memory_phases")

    def memory_report(self) -> dict[str, Any]:
        """The worker engine's memory figures (its own copy of the weights and the KV it decodes from)."""
        return self._call("memory_report")

    def reset_memory_peaks(self) -> None:
        self._call("reset_memory_peaks")

    def describe(self) -> dict[str, Any]:
        return dict(self._describe)

    async def generate_async(self, request: GenerationRequest) -> GenerationResult:
        """A whole request, run by the worker's engine."""
        return await asyncio.wrap_future(self._ask("generate", request))

    # handoffs --------------------------------------------------------------------------------
    def handoff(self, request: GenerationRequest, state: Any, first_time: float, dispatch_time: float) -> Future:
        """Send the request and its KV to the worker; the future gets the decoded result."""
        tensors = [t.contiguous() for t in cache_tensors(state.cache)]
        header = {"shapes": [tuple(t.shape) for t in tensors], "dtype": tensors[0].dtype,
                  "first_token": int(state.next_token.item()), "prompt_tokens": state.prompt_tokens,
                  "first_time": first_time, "dispatch_time": dispatch_time}
        future: Future = Future()
        ticket = next(self._tickets)
        with self._send_lock:
            start = time.perf_counter()
            self._pending[ticket] = (future, {"start": start, "kv_bytes": tensor_bytes(tensors)})
            self._inbox.put(("handoff", ticket, (request, header)))
            for tensor in tensors:
                self._group.send([tensor], 1, KV_TAG).wait()
        return future

    def _listen(self) -> None:
        """Listener thread: hand each message from the worker to the future waiting for it."""
        while True:
            kind, ticket, payload, extra = self._results.get()
            if kind == "closed":
                return
            future, sent = self._pending.pop(ticket)
            if kind == "error":
                future.set_exception(RuntimeError(f"decode worker: {payload}"))
            elif kind == "answer":
                future.set_result(payload)
            elif sent is None:  # a whole request
                future.set_result(payload)
            else:
                result = payload
                if extra["kv_bytes_received"] != sent["kv_bytes"]:
                    future.set_exception(RuntimeError(f"KV handoff: sent {sent['kv_bytes']} bytes, the worker "
                                                      f"received {extra['kv_bytes_received']}"))
                    continue
                seconds = extra["kv_ready"] - sent["start"]
                result.metadata.update(
                    kv_bytes=sent["kv_bytes"], kv_transfer_s=seconds, kv_wait_s=extra["kv_wait_s"],
                    kv_bandwidth_gb_s=bandwidth_gb_s(sent["kv_bytes"], seconds),
                    kv_transfer_mode="process", kv_simulated=False, kv_source="cpu (prefill process)",
                    kv_destination=f"{self.device} (decode process {self._describe.get('process')})")
                future.set_result(result)
