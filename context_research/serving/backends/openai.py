"""Engine `openai`: an async HTTP client of any OpenAI-compatible server (vLLM, SGLang, TGI, transformers
serve, a deployment the harness does not run), measured as a client sees it.

One aiohttp session per engine, opened on the process-wide event loop (serving/event_loop.py) and
kept for the engine's life, so connections are reused across requests and jobs (no connection limit
unless `max_connections`). Every request is streamed (`stream: true`, `stream_options.include_usage`)
to `/v1/completions` (a prompt in token ids goes as a list of ints; text as the model's tokenizer
gives it, or as given where the model has none) or `/v1/chat/completions` (text, the server's chat
template applied). Requests are spread round-robin over `endpoints`.

Timing: dispatch is stamped before the request is serialised and sent; each read of the response
body is stamped the moment its bytes arrive, before they are parsed, and every server-sent event in
those bytes that carries output tokens gets that time (`CompletionStream`). TTFT, ITL and TPOT then
follow from `GenerationResult.from_outputs` as for every engine: ITL is the gap between chunks, TPOT
uses the output token count (the streamed token ids where the server sends them, vLLM's
`return_token_ids`; else the server's usage). Where the usage says how many prompt tokens the server
found in its prefix cache (`prompt_tokens_details.cached_tokens`: vLLM with `--enable-prompt-tokens-details`,
which leaves it out when there were none) the row carries it as `num_cached_tokens`, as in process.

Failures are results, never exceptions: an HTTP error status (its code and the server's message),
a refused connection, a timeout (connect, between chunks, total), an error event inside the stream
or a stream cut before its last chunk each give `GenerationResult.failed` with one line. The wait
between chunks (`chunk_timeout_s`) is kept by one lazy timer per request (`ChunkWatch`), not by
aiohttp's `sock_read`, which re-arms a timer on every read (cli/client_loop_bench.py measures the
loop's time per chunk).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time
from typing import Any

from context_research.requests import GenerationRequest, GenerationResult
from context_research.serving import event_loop
from context_research.serving.backends.base import ServingBackend

log = logging.getLogger(__name__)
ERROR_CHARS = 300  # of a server's error message kept in a result
PATHS = {"completions": "/completions", "chat": "/chat/completions"}


def server_root(url: str) -> str:
    """A base URL without its API version (`http://host:8000/v1` -> `http://host:8000`): where /health,
    /metrics, /version and /reset_prefix_cache live."""
    url = url.rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


def one_line(text: str, limit: int = ERROR_CHARS) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."


def server_message(body: str) -> str:
    """The message of an error body, as OpenAI-style servers write it: {"error": {"message": ...}},
    {"error": "..."}, {"message": ...} (vLLM), {"detail": ...} (FastAPI, transformers serve); else the text."""
    try:
        data = json.loads(body)
    except ValueError:
        return one_line(body) or "(empty body)"
    if isinstance(data, dict):
        for key in ("error", "message", "detail"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value
            if value:
                return one_line(value if isinstance(value, str) else json.dumps(value))
    return one_line(body)


async def http_error(response: Any) -> str:
    """One line for a response that is not 200: `HTTP 500 Internal Server Error: <the server's message>`."""
    try:
        body = await response.text()
    except Exception as error:  # the body itself failed: its reason instead
        body = f"(body unreadable: {type(error).__name__})"
    return f"HTTP {response.status} {response.reason or ''}".rstrip() + f": {server_message(body)}"


class CompletionStream:
    """The server-sent events of one streamed completion, fed as the body's bytes arrive.

    A chunk carries output tokens when it has token ids (vLLM's `return_token_ids`), else when its
    text (chat: the delta's content) is not empty, or is empty without a finish_reason (a token whose
    text is not complete yet: vLLM streams those). A chat delta that names the role carries none. A
    final chunk with a finish_reason and no text counts as a token only where the usage says a token
    is still unaccounted for (vLLM's last token can be such a chunk; transformers serve's closing
    chunk, with the usage, is not)."""

    def __init__(self, api: str) -> None:
        self.chat = api == "chat"
        self.buffer = b""
        self.times: list[float] = []  # one per chunk that carries tokens
        self.token_ids: list[int] = []
        self.ids_streamed = False
        self.text: list[str] = []
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.finish_only_time: float | None = None
        self.done = False  # [DONE] seen
        self.error: str | None = None
        self.events = 0

    def feed(self, data: bytes, now: float) -> None:
        """Bytes of the body that arrived at `now`: every complete event in them is read now."""
        buffer = self.buffer + data
        if b"\r" in buffer:  # CRLF or CR line ends (a CR at the very end may be half of a CRLF)
            hold = b"\r" if buffer.endswith(b"\r") else b""
            buffer = buffer[:len(buffer) - len(hold)].replace(b"\r\n", b"\n").replace(b"\r", b"\n") + hold
        *events, self.buffer = buffer.split(b"\n\n")
        for event in events:
            self._event(event, now)

    def _event(self, raw: bytes, now: float) -> None:
        if raw.startswith(b"data: ") and b"\n" not in raw:  # one data line: every chunk vLLM streams
            payload = raw[6:]
        else:
            data = [line[5:].removeprefix(b" ") for line in raw.split(b"\n") if line.startswith(b"data:")]
            if not data:
                return  # a comment (keep-alive) or another field
            payload = b"\n".join(data)
        if payload.strip() == b"[DONE]":
            self.done = True
            return
        try:
            chunk = json.loads(payload.decode())  # str: json skips guessing the bytes' encoding
        except ValueError:
            self.error = self.error or f"a chunk that is not JSON: {one_line(payload.decode(errors='replace'), 80)}"
            return
        self.events += 1
        if not isinstance(chunk, dict):
            return
        if chunk.get("error") and not chunk.get("choices"):
            error = chunk["error"]
            self.error = self.error or one_line(error.get("message", error) if isinstance(error, dict) else error)
            return
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) == 0:
                self._choice(choice, now)

    def _choice(self, choice: dict[str, Any], now: float) -> None:
        if self.chat:
            delta = choice.get("delta") or {}
            text = delta.get("content") or delta.get("reasoning_content") or ""
            names_role = "role" in delta
        else:
            text, names_role = choice.get("text") or "", False
        ids = choice.get("token_ids")
        finish = choice.get("finish_reason")
        if ids is not None:
            self.ids_streamed = True
            carries = bool(ids)
        else:
            carries = bool(text) or (finish is None and not names_role)
        if carries:
            self.times.append(now)
            self.token_ids.extend(ids or ())
        elif finish is not None:
            self.finish_only_time = now
        if text:
            self.text.append(text)
        if finish is not None:
            self.finish_reason = finish

    def result(self, request: GenerationRequest, dispatch: float, prompt_ids: list[int] | None, tokenizer: Any,
               metadata: dict[str, Any]) -> GenerationResult:
        """The finished request, or a failed one where the stream says it did not finish."""
        if self.error:
            return GenerationResult.failed(request, f"the server reported an error in the stream: {self.error}",
                                           dispatch)
        if self.finish_reason is None and not self.done:
            return GenerationResult.failed(request, f"the stream ended before its last chunk (no finish_reason; "
                                                    f"{len(self.times)} token chunks received)", dispatch)
        usage = self.usage or {}
        usage_completion = usage.get("completion_tokens")
        times = list(self.times)
        if (not self.ids_streamed and self.finish_only_time is not None and usage_completion is not None
                and len(times) < usage_completion):
            times.append(self.finish_only_time)
        if not times:
            return GenerationResult.failed(request, "the stream carried no output token", dispatch)
        text = "".join(self.text)
        if self.ids_streamed:
            token_ids, count, source = list(self.token_ids), len(self.token_ids), "server"
        else:
            token_ids = list(tokenizer.encode(text, add_special_tokens=False)) if tokenizer is not None else []
            count = usage_completion if usage_completion is not None else len(times)
            source = "retokenized" if tokenizer is not None else "none"
        prompt_tokens = usage.get("prompt_tokens")
        if prompt_tokens is None:
            prompt_tokens = len(prompt_ids) if prompt_ids is not None else 0
        details = {**metadata, "finish_reason": self.finish_reason, "token_chunks": len(times),
                   "output_ids_source": source, "usage_prompt_tokens": usage.get("prompt_tokens"),
                   "usage_completion_tokens": usage_completion}
        if prompt_ids is not None:
            details["prompt_tokens_sent"] = len(prompt_ids)
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        if cached is not None:  # the prefix-cache hits the server counted (vLLM: --enable-prompt-tokens-details)
            details["num_cached_tokens"] = cached
        if self.ids_streamed and usage_completion is not None:
            details["usage_mismatch"] = usage_completion != count
        result = GenerationResult.from_outputs(request, prompt_tokens, token_ids, times, dispatch, text=text,
                                               metadata=details)
        result.completion_tokens = count
        return result


class ChunkWatch:
    """`serving.chunk_timeout_s` for the request running in the current task: the longest wait for the
    next bytes of its response (the first bytes include the server's queue and prefill). Lazy: the
    reader stamps `last` as bytes arrive, and one timer checks it once per `timeout_s`, re-arming for
    what is left or cancelling the task (`expired` then says why). aiohttp's `sock_read` re-arms a
    timer on every read instead: a timer made and cancelled per streamed chunk on the event loop."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.task = asyncio.current_task()
        self.last = time.perf_counter()
        self.expired = False
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_later(timeout_s, self._check)

    def _check(self) -> None:
        idle = time.perf_counter() - self.last
        if idle >= self.timeout_s:
            self.expired = True
            self.task.cancel()
        else:
            self._handle = self._loop.call_later(self.timeout_s - idle, self._check)

    def close(self) -> None:
        self._handle.cancel()


class OpenAIBackend(ServingBackend):
    """Engine `openai` (config: OpenAIServingConfig); the base of the managed servers (backends/managed.py)."""

    is_http_client = True  # the client-health collector warns when the client limits the run

    def __init__(self, config: Any, model: Any, cache_dir: str) -> None:
        super().__init__(config, model, cache_dir)
        self.urls: list[str] = []
        self.served_model: str | None = config.model
        self.session = None
        self.server_info: list[dict[str, Any]] = []
        self._turn = itertools.count()
        self._mismatch_logged = False
        self._kv_capacity: tuple[int | None] | None = None

    # where the server is ---------------------------------------------------------------------
    def api_urls(self) -> list[str]:
        """The base URLs requests go to (managed servers: their own, once started)."""
        return self.config.urls

    def metrics_urls(self) -> list[str]:
        """Where the `server` collector scrapes Prometheus text (none where metrics_path is null)."""
        path = self.config.metrics_path
        return [server_root(url) + path for url in self.urls] if path else []

    def client_tokenizer(self) -> Any:
        """The tokenizer prompts are encoded and decoded with: the model's (model_source.load_tokenizer)."""
        from context_research.serving.model_source import load_tokenizer

        return load_tokenizer(self.model_config)

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self.urls = [url.rstrip("/") for url in self.api_urls()]
        self.tokenizer = self.client_tokenizer()
        event_loop.run(self._open_session())
        try:
            if self.served_model is None:
                self.served_model = event_loop.run(self._first_model())
            self.server_info = event_loop.run(self._describe_servers())
        except BaseException:
            self._close_session()
            raise

    async def _open_session(self) -> None:
        import aiohttp

        config = self.config
        headers = {}
        if config.api_key_env:  # the key stays in the session's headers, never in a record or a log
            headers["Authorization"] = f"Bearer {os.environ[config.api_key_env]}"
        connector = aiohttp.TCPConnector(limit=config.max_connections, limit_per_host=config.max_connections,
                                         keepalive_timeout=60)
        # between chunks: ChunkWatch (aiohttp's sock_read would re-arm a timer on every read)
        timeout = aiohttp.ClientTimeout(total=config.request_timeout_s, connect=config.connect_timeout_s)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers)

    def stop(self) -> None:
        self._close_session()

    def _close_session(self) -> None:
        if self.session is not None:
            event_loop.run(self.session.close())
            self.session = None

    async def _get_json(self, url: str) -> tuple[Any, str | None]:
        """GET `url` as JSON; (data, None), or (None, why not) in one line."""
        import aiohttp

        try:
            async with self.session.get(url) as response:
                if response.status != 200:
                    return None, await http_error(response)
                return await response.json(content_type=None), None
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
            return None, f"{type(error).__name__}: {one_line(error)}"

    async def _first_model(self) -> str:
        url = self.urls[0] + "/models"
        data, error = await self._get_json(url)
        models = [entry.get("id") for entry in (data or {}).get("data") or [] if isinstance(entry, dict)]
        if error or not models:
            raise RuntimeError(f"serving.model is null and GET {url} gave no model to use: {error or data!r}; "
                               "set serving.model=NAME")
        return models[0]

    async def _describe_servers(self) -> list[dict[str, Any]]:
        """Per endpoint: the server's version (/version, where it has one) and its models (/v1/models)."""
        described = []
        for url in self.urls:
            entry: dict[str, Any] = {"url": url}
            version, error = await self._get_json(server_root(url) + "/version")
            if isinstance(version, dict) and version.get("version"):
                entry["version"] = version["version"]
            else:
                entry["version_unavailable"] = error or f"unexpected body {version!r}"
            models, error = await self._get_json(url + "/models")
            if models is not None:
                entry["models"] = [{key: card.get(key) for key in ("id", "max_model_len", "owned_by") if key in card}
                                   for card in models.get("data") or [] if isinstance(card, dict)]
            else:
                entry["models_unavailable"] = error
            described.append(entry)
        return described

    def warmup(self) -> None:
        """One short request through the measured path; a failure (a wrong model name, say) stops the job here."""
        result = self.generate(GenerationRequest(request_id="engine-warmup", prompt_token_ids=[5] * 16,
                                                 max_new_tokens=4, ignore_eos=True))
        if result.error is not None:
            raise RuntimeError(f"serving={self.name}: the warm-up request to {self.urls} failed: {result.error}")

    def describe(self) -> dict[str, Any]:
        config = self.config
        return {"engine": self.name, "api": config.api, "model": self.served_model, "endpoints": list(self.urls),
                "servers": self.server_info, "prompt_format": config.prompt_format,
                "ignore_eos_field": config.ignore_eos_field, "return_token_ids": config.return_token_ids,
                "api_key_env": config.api_key_env, "kv_capacity_tokens": self.kv_capacity_tokens(),
                "timeouts_s": {"connect": config.connect_timeout_s, "between_chunks": config.chunk_timeout_s,
                               "total": config.request_timeout_s}}

    def reset_prefix_cache(self) -> None:
        """POST /reset_prefix_cache on every endpoint, where `serving.reset_prefix_cache` asks for it."""
        if not self.config.reset_prefix_cache:
            return
        for url in self.urls:
            error = event_loop.run(self._post(server_root(url) + "/reset_prefix_cache"))
            if error is not None:
                raise RuntimeError(f"serving.reset_prefix_cache=true but {server_root(url)} could not empty its "
                                   f"prefix cache: {error} (vLLM serves it with VLLM_SERVER_DEV_MODE=1)")

    async def _post(self, url: str) -> str | None:
        import aiohttp

        try:
            async with self.session.post(url) as response:
                return None if response.status == 200 else await http_error(response)
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            return f"{type(error).__name__}: {one_line(error)}"

    def kv_capacity_tokens(self) -> int | None:
        """KV tokens the servers hold together, from vLLM's `vllm:cache_config_info` (num_gpu_blocks x
        block_size) on /metrics; None where a server does not say."""
        from context_research.profiling.server_metrics import kv_capacity_tokens, scrape

        if self._kv_capacity is None:
            capacities = []
            for url in self.metrics_urls():
                text, _ = scrape(url)
                capacities.append(kv_capacity_tokens(text) if text is not None else None)
            known = bool(capacities) and None not in capacities
            self._kv_capacity = (sum(capacities) if known else None,)  # fixed for the servers' life: read once
        return self._kv_capacity[0]

    # requests --------------------------------------------------------------------------------
    def _decode(self, ids: list[int], why: str) -> str:
        if self.tokenizer is None:
            raise ValueError(f"{why} needs the model's tokenizer to turn token ids into text: set model.tokenizer "
                             "(a directory, or built) or model.path")
        return self.tokenizer.decode(ids)

    def request_body(self, request: GenerationRequest) -> tuple[dict[str, Any], list[int] | None]:
        """The JSON body of one request, and the prompt's token ids where the harness knows them."""
        config = self.config
        body: dict[str, Any] = {"model": self.served_model, "stream": True, "stream_options": {"include_usage": True},
                                "temperature": request.temperature, "top_p": request.top_p}
        if request.seed is not None and request.temperature > 0:  # greedy decoding draws nothing to seed
            body["seed"] = request.seed
        ids = None
        if config.api == "completions":
            body["max_tokens"] = request.max_new_tokens
            if request.prompt_token_ids is None and self.tokenizer is None:
                body["prompt"] = request.prompt  # text and no tokenizer to encode it: the server's tokenization
            else:
                ids = self.prompt_ids(request)  # as every engine encodes it (the chat template for text)
                body["prompt"] = self._decode(ids, "serving.prompt_format=text") if config.prompt_format == "text" \
                    else ids
        else:  # the server renders its chat template: only its usage knows the prompt's length
            body["max_completion_tokens"] = request.max_new_tokens
            text = request.prompt if request.prompt is not None else self._decode(request.prompt_token_ids,
                                                                                   "serving.api=chat")
            body["messages"] = [{"role": "user", "content": text}]
            if self.model_config.chat_template_kwargs:
                body["chat_template_kwargs"] = dict(self.model_config.chat_template_kwargs)
        if request.ignore_eos:
            body.update(ignore_eos_fields(config.ignore_eos_field, request.max_new_tokens))
        if config.return_token_ids:
            body["return_token_ids"] = True
        body.update(dict(config.extra_body))
        return body, ids

    async def generate_async(self, request: GenerationRequest) -> GenerationResult:
        import aiohttp

        url = self.urls[next(self._turn) % len(self.urls)]
        try:
            body, prompt_ids = self.request_body(request)
        except ValueError as error:
            return GenerationResult.failed(request, error)
        stream = CompletionStream(self.config.api)
        dispatch = time.perf_counter()
        watch = ChunkWatch(self.config.chunk_timeout_s)
        try:
            async with self.session.post(url + PATHS[self.config.api], json=body) as response:
                if response.status != 200:
                    return GenerationResult.failed(request, await http_error(response), dispatch)
                if not response.content_type.startswith("text/event-stream"):
                    return GenerationResult.failed(request, f"expected a text/event-stream response, got "
                                                            f"{response.content_type}", dispatch)
                async for data in response.content.iter_any():
                    now = time.perf_counter()
                    watch.last = now
                    stream.feed(data, now)
        except asyncio.CancelledError:
            if not watch.expired:
                raise
            watch.task.uncancel()  # the cancellation was the watch's own, not the caller's
            return GenerationResult.failed(request, f"timeout: no bytes for serving.chunk_timeout_s="
                                                    f"{self.config.chunk_timeout_s:g} s ({len(stream.times)} token "
                                                    "chunks received)", dispatch)
        except aiohttp.ServerTimeoutError as error:  # connect
            return GenerationResult.failed(request, f"timeout: {one_line(error)}", dispatch)
        except asyncio.TimeoutError:
            return GenerationResult.failed(request, f"timeout: the request took over serving.request_timeout_s="
                                                    f"{self.config.request_timeout_s:g} s", dispatch)
        except aiohttp.ClientPayloadError as error:
            return GenerationResult.failed(request, f"the stream was cut ({len(stream.times)} token chunks "
                                                    f"received): {one_line(error)}", dispatch)
        except aiohttp.ClientError as error:
            return GenerationResult.failed(request, f"{type(error).__name__}: {one_line(error)}", dispatch)
        finally:
            watch.close()
        result = stream.result(request, dispatch, prompt_ids, self.tokenizer, {"endpoint": url})
        if result.metadata.get("usage_mismatch") and not self._mismatch_logged:
            self._mismatch_logged = True
            log.warning("%s: %d token ids streamed but the usage says %s completion tokens (request %s)", url,
                        result.completion_tokens, result.metadata["usage_completion_tokens"], request.request_id)
        return result


def ignore_eos_fields(field_name: str, max_new_tokens: int) -> dict[str, Any]:
    """The body fields that make a server generate all `max_new_tokens` (`serving.ignore_eos_field`)."""
    if field_name == "ignore_eos":
        return {"ignore_eos": True}
    if field_name == "min_tokens":
        return {"min_tokens": max_new_tokens}
    if field_name == "generation_config":  # transformers serve: a GenerationConfig as a JSON string
        return {"generation_config": json.dumps({"max_new_tokens": max_new_tokens, "min_new_tokens": max_new_tokens})}
    return {}
