"""The HF broker: a prefill queue, a handoff queue and one worker per pool.

    submit(request) -> prefill queue -> prefill worker: prompt -> KV cache + first token (prefill engine)
                    -> handoff: the decode pool learns of the request (handoff queue), then the KV moves
                    -> decode worker: takes the next handoff when free, waits for its KV, decodes

The decode pool is either `LocalDecodePool` (an engine in this process on the decode device; the
KV is copied there, or held back for a simulated link) or `ProcessDecodeEngine` (an engine in a
worker process; the KV goes over torch.distributed gloo). Both return a future per handoff whose
result carries the KV figures in its metadata:

    kv_bytes       bytes of the KV tensors that moved (from the tensors themselves)
    kv_transfer_s  first byte sent -> last byte usable on the decode side
    kv_wait_s      decode worker free and holding the request, but blocked until its KV was usable
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

from context_research.requests import GenerationRequest, GenerationResult
from context_research.serving.schedulers.kv_handoff import Transfer, copy_cache, hold_back


def _settle(target: Future, source: Future, finish: Callable[[GenerationResult], GenerationResult]) -> None:
    """Complete `target` from `source` (a result passed through `finish`, or the exception)."""
    error = source.exception()
    if error is not None:
        target.set_exception(error)
    else:
        try:
            target.set_result(finish(source.result()))
        except Exception as failure:  # noqa: BLE001 - the caller gets it through its future
            target.set_exception(failure)


class LocalDecodePool:
    """The decode pool in this process: `engine` (an HFBackend on the decode device) and a worker
    thread that decodes one handed-over request at a time, in arrival order."""

    def __init__(self, engine: Any, transfer: str, link_bandwidth_gb_s: float) -> None:
        if transfer not in ("device_copy", "simulated"):
            raise ValueError(f"transfer={transfer!r}: a local decode pool takes device_copy or simulated")
        self.engine = engine
        self.transfer = transfer
        self.link_bandwidth_gb_s = link_bandwidth_gb_s
        self._handoffs: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._decode_loop, name="decode-pool", daemon=True)
        self._worker.start()

    def handoff(self, request: GenerationRequest, state: Any, first_time: float, dispatch_time: float) -> Future:
        """Announce the request to the decode worker, then move its KV (in the caller's thread,
        the prefill worker: the prefill pool drives the copy)."""
        future: Future = Future()
        moved = threading.Event()
        box: dict[str, Any] = {}
        self._handoffs.put((request, state, first_time, dispatch_time, moved, box, future))
        try:
            if self.transfer == "device_copy":
                box["transfer"] = copy_cache(state.cache, self.engine.device)
            else:
                box["transfer"] = hold_back(state.cache, self.link_bandwidth_gb_s)
        except Exception as error:  # noqa: BLE001 - handed to the decode worker, then the caller
            box["error"] = error
        moved.set()
        return future

    def _decode_loop(self) -> None:
        while True:
            item = self._handoffs.get()
            if item is None:
                return
            request, state, first_time, dispatch_time, moved, box, future = item
            ready = time.perf_counter()  # the worker is free and holds the request
            moved.wait()
            try:
                if "error" in box:
                    raise box["error"]
                transfer: Transfer = box["transfer"]
                result = self.engine.decode_from(request, state, first_time, dispatch_time)
                result.metadata.update(transfer.metadata(), kv_wait_s=max(0.0, transfer.end - ready))
                future.set_result(result)
            except Exception as error:  # noqa: BLE001 - the request fails, the pool goes on
                future.set_exception(error)

    def close(self) -> None:
        self._handoffs.put(None)
        self._worker.join()


class HFBroker:
    """Queue-based handoff between an HF prefill engine and a decode pool (see the module doc)."""

    def __init__(self, prefill_engine: Any, decode_pool: Any, label: Callable[[GenerationResult], GenerationResult],
                 on_decode: Callable[[str], Any]) -> None:
        self.prefill_engine = prefill_engine
        self.decode_pool = decode_pool
        self.label = label  # adds the route to a finished result
        self.on_decode = on_decode  # the scheduler's route_decode
        self._requests: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._prefill_loop, name="prefill-pool", daemon=True)
        self._worker.start()

    def submit(self, request: GenerationRequest) -> Future:
        future: Future = Future()
        self._requests.put((request, future))
        return future

    def _prefill_loop(self) -> None:
        engine = self.prefill_engine
        while True:
            item = self._requests.get()
            if item is None:
                return
            request, future = item
            try:
                ids = engine.prompt_ids(request)
                dispatch = time.perf_counter()
                state, first_time = engine.prefill_state(request, ids)
                if engine.finished(request, [int(state.next_token.item())]):  # nothing left to decode: no handoff
                    future.set_result(self.label(engine.decode_from(request, state, first_time, dispatch)))
                    continue
                self.on_decode(request.request_id)
                decoded = self.decode_pool.handoff(request, state, first_time, dispatch)
                decoded.add_done_callback(lambda done, future=future: _settle(future, done, self.label))
            except Exception as error:  # noqa: BLE001 - the request fails, the pool goes on
                future.set_exception(error)

    def close(self) -> None:
        """Stop the prefill worker after the queued requests, then the local decode worker."""
        self._requests.put(None)
        self._worker.join()
        if isinstance(self.decode_pool, LocalDecodePool):
            self.decode_pool.close()
