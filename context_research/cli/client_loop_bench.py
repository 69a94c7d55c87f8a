"""How much of its event loop the harness's HTTP client spends per streamed chunk, on this CPU (no GPU).

    python -m context_research.cli.client_loop_bench --streams 256 --step-ms 26 --tokens 256
    python -m context_research.cli.client_loop_bench --streams 256 --profile 25     # where the loop's time goes

A stand-in server in a process of its own streams completions the way `vllm serve` does at that load:
every `--step-ms` (one decode step of the engine) one SSE chunk of vLLM 0.26's shape to each of the
`--streams` requests in flight, all in one burst, then a usage chunk and `[DONE]` after `--tokens`
tokens. It costs the client what a real server's bytes cost and nothing else (its own work runs on
another core). The client is the harness's own: `serving=openai` (OpenAIBackend, its aiohttp
session on the process-wide event loop), a closed loop of `--streams` requests (the throughput
benchmark's ClosedLoop), and the `client` collector's event-loop lag probe and CPU clocks, as a job
at concurrency 256 runs them.

It prints the loop lag p50/p99/max over the whole run and over its steady part (from the last
request's first chunk to the first request's end: no dispatch burst, no completion burst), the event
loop thread's CPU per received chunk, and the dispatch burst (first send to last send). `--profile N`
prints the N functions the loop thread spent most time in (cProfile on that thread).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
from typing import Any

CHUNK = ('{{"id":"cmpl-{rid}","object":"text_completion","created":1764720000,"model":"bench","choices":[{{'
         '"index":0,"text":"{text}","logprobs":null,"finish_reason":{finish},"stop_reason":null,"token_ids":null,'
         '"prompt_logprobs":null,"prompt_token_ids":null}}],"usage":null}}')
WORDS = [" river", " stone", " quiet", " bridge", " lantern", " orchard", " meadow", " harbor"]


# the stand-in server ---------------------------------------------------------------------------
def event(payload: str) -> bytes:
    """One SSE event as one chunk of a chunked HTTP body."""
    data = f"data: {payload}\n\n".encode()
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class Streams:
    """The requests in flight; `tick` writes each its next chunk once a step: all in one burst (`spread`
    0), or in 16 groups over that fraction of the step, as vLLM's API server, whose loop emits the
    streams' chunks one after the other, does at high concurrency."""

    def __init__(self, step_s: float, spread: float = 0.0) -> None:
        self.step_s = step_s
        self.spread = spread
        self.active: dict[int, list[Any]] = {}  # id -> [transport, tokens left, tokens, prompt tokens]
        self.next_id = 0

    def add(self, transport: asyncio.Transport, tokens: int, prompt_tokens: int) -> None:
        self.active[self.next_id] = [transport, tokens, tokens, prompt_tokens]
        self.next_id += 1

    async def tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            items = list(self.active.items())
            groups = min(16, len(items)) if self.spread > 0 and items else 1
            for group in range(groups):
                self.write(items[group::groups])
                if group < groups - 1:
                    await asyncio.sleep(self.spread * self.step_s / groups)
            await asyncio.sleep(max(0.0, started + self.step_s - loop.time()))

    def write(self, items: list) -> None:
        for rid, entry in items:
            transport, left, tokens, prompt_tokens = entry
            if rid not in self.active:
                continue
            if transport.is_closing():
                del self.active[rid]
                continue
            last = left == 1
            out = [event(CHUNK.format(rid=rid, text=WORDS[left % len(WORDS)],
                                      finish='"length"' if last else "null"))]
            entry[1] -= 1
            if last:
                usage = {"prompt_tokens": prompt_tokens, "completion_tokens": tokens,
                         "total_tokens": prompt_tokens + tokens}
                out += [event(json.dumps({"id": f"cmpl-{rid}", "object": "text_completion", "choices": [],
                                          "usage": usage})), event("[DONE]"), b"0\r\n\r\n"]
                del self.active[rid]
            transport.write(b"".join(out))


class Connection(asyncio.Protocol):
    """HTTP/1.1 with keep-alive: POST .../completions streams; GET /v1/models answers; anything else 404."""

    def __init__(self, streams: Streams) -> None:
        self.streams = streams
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, rest = self.buffer.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
            length = int(headers.get("content-length", 0))
            if len(rest) < length:
                return
            body, self.buffer = rest[:length], rest[length:]
            self.request(method, path, body)

    def reply(self, status: str, body: bytes) -> None:
        self.transport.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
                             "\r\n\r\n".encode() + body)

    def request(self, method: str, path: str, body: bytes) -> None:
        if method == "POST" and path.endswith("/completions"):
            request = json.loads(body)
            prompt = request.get("prompt")
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n")
            self.streams.add(self.transport, int(request["max_tokens"]), len(prompt) if isinstance(prompt, list) else 0)
        elif method == "GET" and path == "/v1/models":
            self.reply("200 OK", json.dumps({"object": "list", "data": [{"id": "bench"}]}).encode())
        else:
            self.reply("404 Not Found", b'{"error": "not here"}')


async def serve(port_file: str, step_s: float, spread: float) -> None:
    streams = Streams(step_s, spread)
    server = await asyncio.get_running_loop().create_server(lambda: Connection(streams), "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    with open(port_file, "w") as out:
        out.write(str(port))
    asyncio.ensure_future(streams.tick())
    await asyncio.Event().wait()


# the client: the harness's own -----------------------------------------------------------------
def backend(url: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import context_research.config  # noqa: F401  (schemas and resolvers)
    from context_research.cli.vs_vllm_bench import REPO_ROOT
    from context_research.serving.backends.openai import OpenAIBackend

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["serving=openai", f"serving.base_url={url}",
                                                       "serving.model=bench", "model=tiny_qwen3",
                                                       "model.tokenizer=null", *overrides])
    return OpenAIBackend(OmegaConf.to_object(cfg.serving), OmegaConf.to_object(cfg.model), "/tmp")


def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    import numpy as np

    from context_research.profiling.client_health import LoopLagProbe, _loop_thread_clock
    from context_research.requests import GenerationRequest
    from context_research.serving import event_loop
    from context_research.workloads.arrivals import ClosedLoop

    engine = backend(url, args.overrides)
    engine.start()
    rng = np.random.default_rng(0)
    requests = [GenerationRequest(request_id=f"q{i}", prompt_token_ids=rng.integers(10, 8000, args.prompt_len).tolist(),
                                  max_new_tokens=args.tokens, ignore_eos=True) for i in range(args.requests)]
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()

        async def enable() -> None:  # cProfile follows the thread that enables it: the loop's
            profiler.enable()
        event_loop.run(enable())
    probe = LoopLagProbe(event_loop.loop(), args.probe_ms / 1e3)
    clock = _loop_thread_clock()
    probe.start()
    wall0, cpu0 = time.perf_counter(), time.clock_gettime(clock)
    results = ClosedLoop(args.streams).run(requests, engine)
    wall, cpu = time.perf_counter() - wall0, time.clock_gettime(clock) - cpu0
    probe.stop()
    if profiler is not None:
        async def disable() -> None:
            profiler.disable()
        event_loop.run(disable())
    engine.stop()
    errors = [r.error for r in results if r.error]
    chunks = sum(len(r.token_times) for r in results)
    dispatches = sorted(r.dispatch_time for r in results)
    steady_from = max(r.first_token_time for r in results[:args.streams])
    steady_to = min(r.last_token_time for r in results)
    lags = np.array([lag for _, lag in probe.lags]) * 1e3
    steady = np.array([lag for sent, lag in probe.lags if steady_from <= sent <= steady_to]) * 1e3
    return {"streams": args.streams, "requests": len(results), "errors": len(errors), "first_error": errors[:1],
            "chunks": chunks, "wall_s": wall, "loop_cpu_share": cpu / wall, "loop_cpu_us_per_chunk": cpu / chunks * 1e6,
            "dispatch_burst_ms": (dispatches[args.streams - 1] - dispatches[0]) * 1e3,
            "lag_p50_ms": float(np.percentile(lags, 50)), "lag_p99_ms": float(np.percentile(lags, 99)),
            "lag_max_ms": float(lags.max()), "steady_s": steady_to - steady_from,
            "steady_lag_p50_ms": float(np.percentile(steady, 50)) if steady.size else None,
            "steady_lag_p99_ms": float(np.percentile(steady, 99)) if steady.size else None,
            "profiler": profiler}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Other arguments are config overrides of serving=openai.")
    parser.add_argument("--streams", type=int, default=256, help="requests in flight (the closed loop's concurrency)")
    parser.add_argument("--requests", type=int, default=None, help="requests in all (default: --streams)")
    parser.add_argument("--tokens", type=int, default=256, help="output tokens per request")
    parser.add_argument("--prompt-len", type=int, default=1024, help="prompt token ids per request")
    parser.add_argument("--step-ms", type=float, default=26.0, help="the server's step: one chunk per stream each")
    parser.add_argument("--spread", type=float, default=0.0,
                        help="the fraction of a step over which the server writes its chunks (0: one burst)")
    parser.add_argument("--probe-ms", type=float, default=10.0, help="the lag probe's interval (the collector's)")
    parser.add_argument("--profile", type=int, default=0, help="print the N costliest functions of the loop thread")
    parser.add_argument("--serve", default=None, help=argparse.SUPPRESS)  # the stand-in server's port file
    args, overrides = parser.parse_known_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve, args.step_ms / 1e3, args.spread))
        return 0
    args.overrides = overrides
    args.requests = args.requests or args.streams
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".port") as port_file:
        server = subprocess.Popen([sys.executable, "-m", "context_research.cli.client_loop_bench", "--serve",
                                   port_file.name, "--step-ms", str(args.step_ms), "--spread", str(args.spread)])
        try:
            deadline = time.monotonic() + 30
            while not open(port_file.name).read().strip():
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the stand-in server did not start")
                time.sleep(0.05)
            figures = run(args, f"http://127.0.0.1:{open(port_file.name).read().strip()}/v1")
        finally:
            server.terminate()
            server.wait(10)
    profiler = figures.pop("profiler")
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if profiler is not None:
        import pstats

        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)
    return 0 if not figures["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
