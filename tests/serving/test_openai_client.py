"""serving=openai against a real HTTP server written for the tests (tests/serving/scripted_server.py):
the request it sends, the timeline it records, and each failure as a failed request, never a crash."""

from __future__ import annotations

import math

import pytest

from context_research.requests import GenerationRequest
from context_research.serving.backends.openai import CompletionStream, OpenAIBackend, ignore_eos_fields, server_message
from tests.conftest import typed
from tests.serving.scripted_server import FIRST_TOKEN_ID, MODEL, ScriptedServer, free_port


def openai_engine(tmp_path, urls: list[str], *overrides: str) -> OpenAIBackend:
    endpoint = [f"serving.base_url={urls[0]}"] if len(urls) == 1 else \
        ["serving.base_url=null", f"serving.endpoints=[{','.join(urls)}]"]
    overrides = ["serving=openai", *endpoint, *overrides]
    return OpenAIBackend(typed(overrides, "serving"), typed(overrides, "model"), str(tmp_path))


def token_request(request_id: str = "r", tokens: int = 5, **fields) -> GenerationRequest:
    return GenerationRequest(request_id=request_id, prompt_token_ids=list(range(10, 42)), max_new_tokens=tokens,
                             ignore_eos=True, seed=7, **fields)


@pytest.fixture
def started(tmp_path):
    engines = []

    def start(urls, *overrides):
        engine = openai_engine(tmp_path, urls, *overrides)
        engine.start()
        engines.append(engine)
        return engine

    yield start
    for engine in engines:
        engine.stop()


def test_a_streamed_completion_sends_token_ids_and_times_every_token_chunk(started):
    with ScriptedServer(delay_s=0.02) as server:
        engine = started([server.url], "serving.return_token_ids=true")
        result = engine.generate(token_request(tokens=5))
        body = server.bodies[-1]
    assert result.error is None
    # the request: token ids as a list of ints, streamed with usage, the sampling fields mapped
    assert body["prompt"] == list(range(10, 42)) and body["model"] == MODEL and body["max_tokens"] == 5
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["ignore_eos"] is True and body["temperature"] == 0.0 and body["top_p"] == 1.0
    assert "seed" not in body  # greedy: nothing to seed
    assert body["return_token_ids"] is True
    # the result: the server's ids, one arrival per chunk, the server's usage
    assert result.output_token_ids == [FIRST_TOKEN_ID + i for i in range(5)] and result.completion_tokens == 5
    assert len(result.token_times) == 5 and result.token_times == sorted(result.token_times)
    assert result.ttft_ms >= 15  # the first chunk comes after one delay
    assert all(gap >= 0.015 for gap in (b - a for a, b in zip(result.token_times, result.token_times[1:])))
    assert result.tpot_ms == pytest.approx((result.token_times[-1] - result.token_times[0]) * 1e3 / 4)
    assert result.prompt_tokens == 32 and result.text == " t0 t1 t2 t3 t4"
    assert result.metadata["usage_mismatch"] is False and result.metadata["output_ids_source"] == "server"
    assert result.metadata["endpoint"] == server.url and result.metadata["finish_reason"] == "length"


def test_a_sampled_request_sends_its_temperature_top_p_and_seed(started):
    with ScriptedServer() as server:
        started([server.url]).generate(token_request(temperature=0.7, top_p=0.9))
        body = server.bodies[-1]
    assert (body["temperature"], body["top_p"], body["seed"]) == (0.7, 0.9, 7)


def test_without_token_ids_the_count_is_the_servers_usage(started):
    with ScriptedServer() as server:
        engine = started([server.url])
        result = engine.generate(token_request(tokens=6))
        assert "return_token_ids" not in server.bodies[-1]
    assert result.completion_tokens == 6 and len(result.token_times) == 6
    assert result.output_token_ids == [] and result.metadata["output_ids_source"] == "none"


def test_an_http_500_is_a_failed_request_with_the_status_and_the_servers_message(started):
    with ScriptedServer(script=lambda index, body: "500" if index == 1 else "ok") as server:
        engine = started([server.url])
        first, failed, after = (engine.generate(token_request(f"r{i}")) for i in range(3))
    assert first.error is None and after.error is None
    assert failed.error == "HTTP 500 Internal Server Error: scripted failure"
    assert failed.completion_tokens == 0 and math.isnan(failed.ttft_ms)


def test_a_refused_connection_is_a_failed_request(tmp_path):
    engine = openai_engine(tmp_path, [f"http://127.0.0.1:{free_port()}/v1"], "serving.model=anything")
    engine.start()  # the server's description records why it is unavailable; nothing raises
    try:
        result = engine.generate(token_request())
        assert result.error.startswith("ClientConnectorError: Cannot connect to host 127.0.0.1")
        assert "version_unavailable" in engine.describe()["servers"][0]
        with pytest.raises(RuntimeError, match="warm-up request .* failed: ClientConnectorError"):
            engine.warmup()  # a job stops here, with one line
    finally:
        engine.stop()


def test_a_stream_cut_in_the_middle_is_a_failed_request(started):
    with ScriptedServer(script=lambda index, body: "drop") as server:
        result = started([server.url]).generate(token_request(tokens=8))
    assert result.error.startswith("the stream was cut (1 token chunks received)")


def test_no_bytes_for_chunk_timeout_s_is_a_failed_request(started):
    with ScriptedServer(script=lambda index, body: "stall" if index == 0 else "stall_first" if index == 1 else "ok",
                        delay_s=0.2) as server:
        engine = started([server.url], "serving.chunk_timeout_s=0.5")
        between, before_any = engine.generate(token_request("a", tokens=4)), engine.generate(token_request("b"))
        # chunks 0.2 s apart: never 0.5 s without bytes, though the stream lasts longer than that
        steady = engine.generate(token_request("c", tokens=6))
    assert between.error == "timeout: no bytes for serving.chunk_timeout_s=0.5 s (1 token chunks received)"
    assert before_any.error == "timeout: no bytes for serving.chunk_timeout_s=0.5 s (0 token chunks received)"
    assert steady.error is None and steady.completion_tokens == 6 and steady.e2e_ms > 1000


def test_a_callers_cancellation_is_not_taken_for_a_timeout(started):
    import asyncio

    from context_research.serving import event_loop

    with ScriptedServer(delay_s=0.2) as server:
        engine = started([server.url], "serving.chunk_timeout_s=0.5")

        async def cancelled() -> str:
            task = asyncio.ensure_future(engine.generate_async(token_request("a", tokens=20)))
            await asyncio.sleep(0.5)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                return "cancelled"
            return "finished"

        assert event_loop.run(cancelled()) == "cancelled"
        assert engine.generate(token_request("b", tokens=2)).error is None  # the session is fine after it


def test_requests_go_round_robin_over_the_endpoints(started):
    with ScriptedServer() as a, ScriptedServer() as b:
        engine = started([a.url, b.url])
        results = engine.generate_batch([token_request(f"r{i}", tokens=3) for i in range(6)])
        assert len(a.bodies) == len(b.bodies) == 3
    assert [r.metadata["endpoint"] for r in results] == [a.url, b.url] * 3


def test_the_api_key_comes_from_the_named_variable_and_is_never_recorded(started, monkeypatch):
    monkeypatch.setenv("SCRIPTED_KEY", "sk-secret-123")
    with ScriptedServer(api_key="sk-secret-123") as server:
        engine = started([server.url], "serving.api_key_env=SCRIPTED_KEY")
        assert engine.generate(token_request()).error is None
        assert server.headers[-1]["Authorization"] == "Bearer sk-secret-123"
        described = engine.describe()
    assert described["api_key_env"] == "SCRIPTED_KEY" and "sk-secret-123" not in repr(described)


def test_a_wrong_key_is_a_failed_request_with_the_servers_message(started, monkeypatch):
    monkeypatch.setenv("SCRIPTED_KEY", "wrong")
    with ScriptedServer(api_key="right") as server:
        result = started([server.url], "serving.api_key_env=SCRIPTED_KEY").generate(token_request())
    assert result.error == "HTTP 401 Unauthorized: invalid API key"


def test_chat_sends_text_messages_with_the_models_template_arguments(started):
    with ScriptedServer() as server:
        engine = started([server.url], "serving.api=chat", "serving.ignore_eos_field=min_tokens")
        result = engine.generate(GenerationRequest(request_id="c", prompt="three word prompt", max_new_tokens=4,
                                                   ignore_eos=True))
        body = server.bodies[-1]
    assert body["messages"] == [{"role": "user", "content": "three word prompt"}]
    assert body["chat_template_kwargs"] == {"enable_thinking": False} and body["max_completion_tokens"] == 4
    assert body["min_tokens"] == 4 and "ignore_eos" not in body
    assert result.error is None and result.completion_tokens == 4 and result.prompt_tokens == 3


def test_prefix_cache_reset_and_kv_capacity_come_from_the_server(started):
    with ScriptedServer() as server:
        engine = started([server.url], "serving.reset_prefix_cache=true")
        engine.reset_prefix_cache()
        assert server.resets == 1
        assert engine.kv_capacity_tokens() == 64 * 16  # vllm:cache_config_info's num_gpu_blocks x block_size
        described = engine.describe()
    assert described["servers"][0]["version"] == "scripted-1.0"
    assert described["servers"][0]["models"] == [{"id": MODEL, "max_model_len": 4096}]


def test_the_model_is_asked_from_the_server_when_not_configured(started):
    with ScriptedServer() as server:
        engine = started([server.url])
    assert engine.served_model == MODEL


# the stream parser on its own ------------------------------------------------------------------
def feed_all(stream: CompletionStream, *parts: bytes, start: float = 0.0) -> None:
    for offset, part in enumerate(parts):
        stream.feed(part, start + offset)


def test_events_split_across_reads_and_crlf_line_ends_are_read_whole():
    stream = CompletionStream("completions")
    feed_all(stream, b'data: {"choices": [{"text": "a"}]}\r', b'\n\r\ndata: {"choices": [{"te',
             b'xt": "b", "finish_reason": "length"}]}\r\n\r\n: keep-alive\r\n\r\ndata: [DONE]\r\n\r\n')
    assert stream.times == [1, 2] and stream.text == ["a", "b"] and stream.done and stream.error is None


def test_a_role_delta_is_not_a_token_and_a_closing_chunk_counts_only_where_usage_says_so():
    request = GenerationRequest(request_id="x", prompt="p", max_new_tokens=2)
    chat = CompletionStream("chat")
    feed_all(chat, b'data: {"choices": [{"delta": {"role": "assistant", "content": ""}}]}\n\n',
             b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\n',
             b'data: {"choices": [{"delta": {}, "finish_reason": "length"}], '
             b'"usage": {"prompt_tokens": 3, "completion_tokens": 2}}\n\n')
    # vLLM's last token can arrive as an empty chunk with the finish_reason: the usage says 2 tokens
    result = chat.result(request, -1.0, None, None, {})
    assert result.token_times == [1, 2] and result.completion_tokens == 2 and result.prompt_tokens == 3
    closing = CompletionStream("completions")  # transformers serve: the closing chunk carries no token
    feed_all(closing, b'data: {"choices": [{"text": "a"}]}\n\n', b'data: {"choices": [{"text": "b"}]}\n\n',
             b'data: {"choices": [{"text": "", "finish_reason": "length"}], '
             b'"usage": {"prompt_tokens": 3, "completion_tokens": 2}}\n\n')
    assert closing.result(request, -1.0, None, None, {}).token_times == [0, 1]


def test_an_error_event_or_a_stream_without_its_end_fails_the_request():
    request = GenerationRequest(request_id="x", prompt="p", max_new_tokens=2)
    errored = CompletionStream("completions")
    feed_all(errored, b'data: {"choices": [{"text": "a"}]}\n\n', b'data: {"error": {"message": "out of KV"}}\n\n')
    assert errored.result(request, 0.0, None, None, {}).error == \
        "the server reported an error in the stream: out of KV"
    unfinished = CompletionStream("completions")
    feed_all(unfinished, b'data: {"choices": [{"text": "a"}]}\n\n')
    assert "the stream ended before its last chunk" in unfinished.result(request, 0.0, None, None, {}).error


def test_ignore_eos_is_said_the_way_the_server_understands():
    assert ignore_eos_fields("ignore_eos", 8) == {"ignore_eos": True}
    assert ignore_eos_fields("min_tokens", 8) == {"min_tokens": 8}
    assert ignore_eos_fields("generation_config", 8) == {
        "generation_config": '{"max_new_tokens": 8, "min_new_tokens": 8}'}
    assert ignore_eos_fields("none", 8) == {}


def test_server_messages_in_the_usual_error_shapes():
    assert server_message('{"error": {"message": "bad model", "code": 404}}') == "bad model"
    assert server_message('{"object": "error", "message": "too long"}') == "too long"
    assert server_message('{"detail": "prompt must be a string."}') == "prompt must be a string."
    assert server_message("Internal\nServer Error") == "Internal Server Error"
