"""A small real OpenAI-compatible HTTP server for the client's tests (aiohttp.web on a thread of its own).

It streams completions the way vLLM does (SSE chunks of one token each, with `token_ids` when the
request asks `return_token_ids`, a usage chunk, `data: [DONE]`), serves /v1/models, /version,
/health and vLLM-named Prometheus series on /metrics that count what it served, and misbehaves on
the requests `script` names: an HTTP 500 with a JSON error, a stream cut after one chunk, a stall
(after the first chunk, or before any byte).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from typing import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

MODEL = "scripted-model"
FIRST_TOKEN_ID = 1000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ScriptedServer:
    """`script(index, body)` -> "ok" | "500" | "drop" | "stall" | "stall_first" for the index-th completion request."""

    def __init__(self, script: Callable[[int, dict], str] = lambda index, body: "ok", delay_s: float = 0.002,
                 api_key: str | None = None, metrics: bool = True) -> None:
        self.script = script
        self.delay_s = delay_s
        self.api_key = api_key
        self.port = free_port()
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.resets = 0
        self.registry = CollectorRegistry()
        labels = ["model_name", "engine"]
        self.queries = Counter("vllm:prefix_cache_queries", "q", labels, registry=self.registry).labels(MODEL, "0")
        self.hits = Counter("vllm:prefix_cache_hits", "h", labels, registry=self.registry).labels(MODEL, "0")
        self.generated = Counter("vllm:generation_tokens", "g", labels, registry=self.registry).labels(MODEL, "0")
        self.prompted = Counter("vllm:prompt_tokens", "p", labels, registry=self.registry).labels(MODEL, "0")
        self.preempted = Counter("vllm:num_preemptions", "n", labels, registry=self.registry).labels(MODEL, "0")
        self.running = Gauge("vllm:num_requests_running", "r", labels, registry=self.registry).labels(MODEL, "0")
        self.kv_usage = Gauge("vllm:kv_cache_usage_perc", "k", labels, registry=self.registry).labels(MODEL, "0")
        self.queue_time = Histogram("vllm:request_queue_time_seconds", "t", labels, registry=self.registry,
                                    buckets=[0.001, 0.01, 0.1, 1.0]).labels(MODEL, "0")
        Gauge("vllm:cache_config_info", "c", ["block_size", "num_gpu_blocks"],
              registry=self.registry).labels("16", "64").set(1)
        self.metrics = metrics
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "ScriptedServer":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/chat/completions", self.completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/version", self.version)
        app.router.add_get("/health", self.health)
        app.router.add_post("/reset_prefix_cache", self.reset)
        if self.metrics:
            app.router.add_get("/metrics", self.prometheus)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model", "max_model_len": 4096}]})

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "scripted-1.0"})

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="")

    async def reset(self, request: web.Request) -> web.Response:
        self.resets += 1
        return web.Response(text="")

    async def prometheus(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), content_type="text/plain")

    def chunk(self, body: dict, index: int, finish: str | None) -> bytes:
        token = FIRST_TOKEN_ID + index
        if "messages" in body:
            choice = {"index": 0, "delta": {"content": f" t{index}"}, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": f" t{index}", "finish_reason": finish}
        if body.get("return_token_ids"):
            choice["token_ids"] = [token]
        return b"data: " + json.dumps({"id": "c", "object": "text_completion", "choices": [choice]}).encode() + b"\n\n"

    async def completions(self, request: web.Request) -> web.StreamResponse:
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": {"message": "invalid API key", "code": 401}}, status=401)
        body = await request.json()
        index = len(self.bodies)
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        action = self.script(index, body)
        if action == "500":
            return web.json_response({"object": "error", "message": "scripted failure", "code": 500}, status=500)
        prompt = body.get("prompt") if "prompt" in body else body["messages"][0]["content"]
        prompt_tokens = len(prompt) if isinstance(prompt, list) else len(prompt.split())
        self.queries.inc(prompt_tokens)
        self.prompted.inc(prompt_tokens)
        self.queue_time.observe(0.005)
        self.running.inc()
        self.kv_usage.set(0.25)
        if action == "stall_first":  # no bytes at all (headers neither), past the client's chunk timeout
            await asyncio.sleep(2)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        tokens = int(body.get("max_tokens") or body.get("max_completion_tokens"))
        try:
            for index_in_stream in range(tokens):
                await asyncio.sleep(self.delay_s)
                if action == "stall" and index_in_stream == 1:
                    await asyncio.sleep(2)  # past the client's chunk timeout in the tests
                finish = "length" if index_in_stream == tokens - 1 else None
                await response.write(self.chunk(body, index_in_stream, finish))
                self.generated.inc()
                if action == "drop":  # the connection closes in the middle of the chunked body
                    request.transport.close()
                    return response
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": tokens,
                     "total_tokens": prompt_tokens + tokens}
            await response.write(b"data: " + json.dumps({"id": "c", "choices": [], "usage": usage}).encode() + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        finally:
            self.running.dec()
            self.kv_usage.set(0.0)
        return response
