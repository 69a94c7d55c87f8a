"""Disaggregation over NIXL without a GPU: the pools' engine arguments and environments, vLLM's
prefill/decode protocol as the broker runs it, the KV figures from statistics shaped like vLLM
0.26's NixlKVConnectorStats and their labels, UCX's transports from its log lines, and the one-line
stop where nixl is not installed.

vLLM cannot run here: the broker is driven through `NixlScripted`, an engine that answers as vLLM's
engine with NixlConnector does (the prefill output's kv_transfer_params, the connector statistics
its step logger records when the decode engine's READ completes), and nothing else."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import time
from pathlib import Path

import pytest

from context_research.app import with_overrides
from context_research.metrics.kv_transfer import connector_step_figures
from context_research.metrics.phases import MEASURE
from context_research.profiling.kv_transfer import KVTransferCollector
from context_research.requests import GenerationRequest, GenerationResult
from context_research.serving.backends.base import ServingBackend
from context_research.serving.backends.vllm import (NIXL_SIDE_CHANNEL_PORT, UCX_LOG_FILE, connector_environment,
                                                    engine_arguments, sampling_arguments)
from context_research.serving.schedulers import nixl
from context_research.serving.schedulers.disaggregated import DisaggregatedScheduler
from tests.conftest import snapshot_figures, typed

VLLM = ["serving=vllm", "model=qwen3_8b", "model.load_format=dummy"]
KV_BYTES_PER_TOKEN = 147_456  # Qwen3-8B: 36 layers x 2 x 8 KV heads x 128 x 2 bytes
BLOCK = 16
HAS_NIXL = importlib.util.find_spec("nixl") is not None


def nixl_scheduler(*overrides: str) -> DisaggregatedScheduler:
    return DisaggregatedScheduler(typed([*VLLM, "scheduler=disaggregated", "scheduler.transfer=nixl",
                                         "scheduler.prefill_device=cuda:0", *overrides], "scheduler"))


def pool_arguments(scheduler: DisaggregatedScheduler, pool: str) -> dict:
    serving = with_overrides(typed(VLLM, "serving"), scheduler.pools()[pool])
    return {"device": serving.device, **engine_arguments(serving, typed(VLLM, "model"), "/m", None)}


def test_both_pools_run_nixls_connector_as_kv_both_on_two_gpus():
    scheduler = nixl_scheduler("scheduler.decode_device=cuda:1")
    prefill, decode = (pool_arguments(scheduler, pool) for pool in ("prefill", "decode"))
    assert prefill["device"] == "cuda:0" and decode["device"] == "cuda:1"
    for args in (prefill, decode):
        assert args["kv_transfer_config"] == {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
        assert args["worker_extension_cls"] == nixl.NIXL_WORKER_EXTENSION  # memory accounting + log flush
        assert args["gpu_memory_utilization"] == 0.9
    # NIXL moves a finished request's blocks: the prefill engine keeps vLLM's chunked prefill
    assert "enable_chunked_prefill" not in prefill
    push = nixl_scheduler("scheduler.decode_device=cuda:1", "scheduler.connector=NixlPushConnector")
    assert pool_arguments(push, "decode")["kv_transfer_config"]["kv_connector"] == "NixlPushConnector"


def test_on_one_gpu_both_engines_share_it_with_a_part_of_its_memory_each():
    scheduler = nixl_scheduler("scheduler.shared_device_memory_utilization=0.4")
    assert scheduler.placement.mode == "nixl_same_gpu" and not scheduler.placement.simulated
    for pool in ("prefill", "decode"):
        args = pool_arguments(scheduler, pool)
        assert args["device"] == "cuda:0" and args["gpu_memory_utilization"] == 0.4


def test_each_nixl_engine_gets_a_free_side_channel_port_of_its_own_and_a_ucx_log_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("UCX_LOG_LEVEL", raising=False)
    monkeypatch.setenv("UCX_PROTO_INFO", "n")  # the environment's own choice is kept
    args = {"kv_transfer_config": nixl.connector_config("NixlConnector")}
    first, second = connector_environment(args, tmp_path), connector_environment(args, tmp_path)
    ports = {int(first[NIXL_SIDE_CHANNEL_PORT]), int(second[NIXL_SIDE_CHANNEL_PORT])}
    assert len(ports) == 2
    for port in ports:  # free when handed out: the engine's side channel can bind it
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))
    logs = [Path(env[UCX_LOG_FILE]) for env in (first, second)]
    assert logs[0].parent != logs[1].parent and all(log.parent.parent == tmp_path for log in logs)
    assert logs[0].name == "ucx.%p.log"  # one file per process (UCX substitutes the pid)
    assert first["UCX_LOG_LEVEL"] == "info" and "UCX_PROTO_INFO" not in first
    example = {"kv_transfer_config": {"kv_connector": "ExampleConnector", "kv_role": "kv_producer"}}
    assert connector_environment(example, tmp_path) == {} and connector_environment({}, tmp_path) == {}


# the broker over NIXL -----------------------------------------------------------------------------
def nixl_stats(*transfers: tuple[int, float, int]) -> dict:
    """NixlKVConnectorStats.data of vLLM 0.26 after record_transfer for each (bytes, seconds, descriptors),
    as the engine's scheduler stats carry it to the stat logger."""
    data = {"transfer_duration": [], "post_duration": [], "bytes_transferred": [], "num_descriptors": [],
            "num_failed_transfers": [], "num_failed_notifications": [], "num_kv_expired_reqs": []}
    for size, seconds, descriptors in transfers:
        data["transfer_duration"].append(seconds)
        data["post_duration"].append(seconds / 20)
        data["bytes_transferred"].append(size)
        data["num_descriptors"].append(descriptors)
    return data


def blocks_of(tokens: int) -> int:
    return -(-tokens // BLOCK)


class NixlScripted(ServingBackend):
    """Answers as a vLLM engine with NixlConnector: the prefill (do_remote_decode) returns the remote
    blocks as vLLM 0.26's pull scheduler does; the decode (do_remote_prefill) records the READ's
    statistics in its step log, then streams its tokens (the first one the prefill's again)."""

    def __init__(self, role: str, log_dir: Path, engine_id: str, port: int) -> None:
        super().__init__(typed(VLLM, "serving"), typed(VLLM, "model"), "unused")
        self.role, self.engine_id, self.port = role, engine_id, port
        self.environment = {UCX_LOG_FILE: str(log_dir / "ucx.%p.log")}
        self.requests: list[GenerationRequest] = []
        self.steps: list[dict] = []
        self.worker_calls: list[str] = []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def step_log(self) -> list[dict]:
        return list(self.steps)

    async def worker_call(self, method: str) -> list:
        self.worker_calls.append(method)
        return [None]

    async def generate_async(self, request: GenerationRequest) -> GenerationResult:
        self.requests.append(request)
        params = request.metadata.get("kv_transfer_params")
        prompt = len(request.prompt_token_ids)
        dispatch = time.perf_counter()
        await asyncio.sleep(0.01)
        tokens, metadata = [7], {}
        if self.role == "prefill" and params is not None:
            assert params["do_remote_decode"] is True
            metadata["kv_transfer_params"] = {
                "do_remote_prefill": True, "do_remote_decode": False,
                "remote_block_ids": [list(range(blocks_of(prompt)))], "remote_engine_id": self.engine_id,
                "remote_request_id": f"{request.request_id}#0", "remote_host": "localhost",
                "remote_port": self.port, "tp_size": 1, "remote_num_tokens": prompt,
                "remote_blocks_expiry_time": None}
        elif self.role == "decode":
            assert params["do_remote_prefill"] is True
            size = blocks_of(prompt) * BLOCK * KV_BYTES_PER_TOKEN
            self.steps.append({"t": time.perf_counter(), "engine": 0, "num_running": 1,
                               **connector_step_figures(nixl_stats((size, 0.004, 36 * 2 * blocks_of(prompt))))})
            await asyncio.sleep(0.01)
            tokens = [7] + [8 + i for i in range(request.max_new_tokens - 1)]
            metadata.update(prefill_ms=2.0, num_cached_tokens=0, finish_reason="length")
        times = [time.perf_counter()] * len(tokens)
        return GenerationResult.from_outputs(request, prompt, tokens, times, dispatch, metadata=metadata)


# UCX's protocol tables as its log holds them (ucs_log_print_compact: time, host:pid, then the row)
UCX_LOG_PREFIX = "[1767930429.285934] [gpu:13245:0]   "
UCX_V2_ROWS = [
    "+--------------------------------+--------------------------------------------------+",
    "| ucp_context_0 intra-node cfg#2 | remote memory read by ucp_get*(multi) into cuda/GPU0 from cuda/dev[0] |",
    "+--------------------------------+-----------+--------------------------------------+",
    "|                              0 | copy-out  | tcp/eth0                             |",
    "|                         1..inf | zero-copy | cuda_ipc/cuda                        |",
    "+--------------------------------+-----------+--------------------------------------+",
    "| ucp_context_0 intra-node cfg#2 | active message by ucp_am_send* from host memory  |",
    "+--------------------------------+-----------+--------------------------------------+",
    "|                         0..inf | short     | tcp/eth0                             |",
]
UCX_V2_TABLE = "".join(f"{UCX_LOG_PREFIX}{row}\n" for row in UCX_V2_ROWS)


@pytest.fixture
def pair(tmp_path):
    """The scripted prefill and decode engines, the decode engine's folder holding UCX's log as
    UCX writes it with UCX_LOG_LEVEL=info and UCX_PROTO_INFO=y."""
    engines = {pool: NixlScripted(pool, tmp_path / pool, f"engine-{pool}", port)
               for pool, port in (("prefill", 41001), ("decode", 41002))}
    for pool in engines:
        (tmp_path / pool).mkdir()
    (tmp_path / "decode" / "ucx.13245.log").write_text(UCX_V2_TABLE)
    return engines


def bound(engines, *overrides: str) -> DisaggregatedScheduler:
    scheduler = nixl_scheduler(*overrides)
    scheduler.bind(engines)
    return scheduler


def request(rid: str, prompt_len: int = 100) -> GenerationRequest:
    return GenerationRequest(request_id=rid, prompt_token_ids=list(range(1000, 1000 + prompt_len)), max_new_tokens=4)


def test_prefill_asks_for_remote_decode_and_the_decode_carries_exactly_what_the_prefill_returned(pair):
    scheduler = bound(pair)
    result = scheduler.generate(request("r"))
    [prefill] = pair["prefill"].requests
    [decode] = pair["decode"].requests
    # vLLM's documented request for the prefill engine (the toy proxy's), one token
    assert prefill.metadata["kv_transfer_params"] == {"do_remote_decode": True, "do_remote_prefill": False,
                                                      "remote_engine_id": None, "remote_block_ids": None,
                                                      "remote_host": None, "remote_port": None}
    assert prefill.max_new_tokens == 1
    assert sampling_arguments(prefill, False)["max_tokens"] == 1
    # the decode engine: the same prompt, the whole budget, the prefill output's kv_transfer_params
    assert decode.metadata["kv_transfer_params"] == {
        "do_remote_prefill": True, "do_remote_decode": False, "remote_block_ids": [list(range(7))],
        "remote_engine_id": "engine-prefill", "remote_request_id": "r-prefill#0", "remote_host": "localhost",
        "remote_port": 41001, "tp_size": 1, "remote_num_tokens": 100, "remote_blocks_expiry_time": None}
    returned = decode.metadata["kv_transfer_params"]
    assert sampling_arguments(decode, False)["extra_args"] == {"kv_transfer_params": returned}
    assert decode.prompt_token_ids == prefill.prompt_token_ids and decode.max_new_tokens == 4
    # the client keeps the prefill's first token; the decode engine's repeat of it is dropped
    assert result.output_token_ids == [7, 8, 9, 10] and "kv_transfer_params" not in result.metadata
    assert scheduler.route_table()["route"].tolist() == ["prefill->decode"]


def test_a_one_token_request_is_answered_by_the_prefill_engine_without_holding_its_kv(pair):
    scheduler = bound(pair)
    one = GenerationRequest(request_id="one", prompt_token_ids=list(range(50)), max_new_tokens=1)
    result = scheduler.generate(one)
    # no do_remote_decode: NIXL would keep the blocks for a decode engine that never reads them
    assert "kv_transfer_params" not in pair["prefill"].requests[0].metadata
    assert pair["decode"].requests == [] and result.output_token_ids == [7]
    assert result.metadata["kv_transfer_mode"] == "nixl_same_gpu" and "kv_bytes" not in result.metadata


def test_a_request_alone_in_its_handoff_gets_the_connectors_own_figures(pair):
    scheduler = bound(pair)
    results = [scheduler.generate(request(f"r{i}", prompt_len)) for i, prompt_len in enumerate((100, 1024))]
    for result, prompt_len in zip(results, (100, 1024)):
        meta = result.metadata
        assert meta["kv_accounting"] == "connector_stats"
        # NIXL moves whole blocks: 7 x 16 tokens for 100, 64 x 16 for 1024
        assert meta["kv_bytes"] == blocks_of(prompt_len) * BLOCK * KV_BYTES_PER_TOKEN
        assert meta["kv_transfer_s"] == pytest.approx(0.004) and meta["kv_connector_transfers"] == 1
        assert meta["kv_descriptors"] == 72 * blocks_of(prompt_len)
        assert meta["kv_bandwidth_gb_s"] == pytest.approx(meta["kv_bytes"] / 0.004 / 1e9)
        assert meta["kv_handoff_s"] > 0 and meta["kv_wait_s"] == pytest.approx(0.002)
        assert meta["kv_connector"] == "NixlConnector" and meta["kv_connector_debug"] is False
        assert meta["kv_transfer_mode"] == "nixl_same_gpu" and meta["kv_simulated"] is False
        # the UCX transports, read from the decode engine's log after both workers flushed theirs
        assert meta["kv_ucx_transports"] == "cuda_ipc"
        assert meta["kv_ucx_protocols"] == ("remote memory read by ucp_get*(multi) into cuda/GPU0 from cuda/dev[0]: "
                                            "zero-copy cuda_ipc/cuda")
    # read once: found on the first handoff, kept for the job
    assert pair["prefill"].worker_calls == pair["decode"].worker_calls == [nixl.FLUSH]


def test_handoffs_in_flight_together_are_derived_per_request_and_the_job_keeps_the_connectors_totals(pair):
    scheduler = bound(pair)
    collector = KVTransferCollector(typed([], "collectors")["kv_transfer"])
    collector.bind_engines(pair)
    collector.start()
    results = scheduler.generate_batch([request("a", 100), request("b", 100)])
    for result in results:
        collector.observe(result, MEASURE)
        # the statistics name no request, and both handoffs were open when they came
        assert result.metadata["kv_accounting"] == "derived"
        assert result.metadata["kv_bytes"] == 100 * KV_BYTES_PER_TOKEN
        assert result.metadata["kv_transfer_s"] == result.metadata["kv_handoff_s"]
    figures = snapshot_figures(collector)
    assert figures["kv_accounting"] == "derived" and figures["kv_connector"] == "NixlConnector"
    assert figures["kv_connector_debug"] is False and figures["kv_transfer_mode"] == "nixl_same_gpu"
    assert figures["kv_connector_transfers"] == 2 and figures["kv_connector_descriptors"] == 2 * 504
    assert figures["kv_connector_bytes"] == 2 * 7 * BLOCK * KV_BYTES_PER_TOKEN
    assert figures["kv_connector_transfer_s"] == pytest.approx(0.008)
    assert figures["kv_connector_bandwidth_gb_s"] == pytest.approx(figures["kv_connector_bytes"] / 0.008 / 1e9)
    assert figures["kv_connector_failures"] == 0
    assert figures["kv_ucx_transports"] == "cuda_ipc" and figures["kv_ucx_source"].startswith("UCX log ")


def test_the_job_section_labels_mixed_accounting_and_debug_connector_rows():
    from context_research.metrics.kv_transfer import summarize

    base = {"kv_bytes": 1.0, "kv_transfer_s": 1.0, "kv_wait_s": 0.0, "ttft_s": 1.0, "simulated": False}
    nixl_rows = [dict(base, mode="nixl", connector="NixlConnector", debug=False, accounting=label)
                 for label in ("connector_stats", "derived", "connector_stats")]
    section = summarize(nixl_rows)
    assert section.kv_accounting == "connector_stats,derived" and section.kv_connector_debug is False
    assert section.kv_connector_transfers is None  # no engine step carried connector statistics
    example = summarize([dict(base, mode="connector", connector="ExampleConnector", debug=True,
                              accounting="connector_files")])
    assert (example.kv_connector, example.kv_connector_debug, example.kv_accounting) == (
        "ExampleConnector", True, "connector_files")


def test_failures_in_the_connectors_statistics_are_counted():
    stats = nixl_stats((4096, 0.001, 8))
    stats["num_failed_transfers"].append(1)
    stats["num_kv_expired_reqs"].extend([1, 1])
    figures = connector_step_figures(stats)
    assert figures["kv_connector_failed_transfers"] == 1 and figures["kv_connector_expired_requests"] == 2
    from context_research.metrics.kv_transfer import summarize

    assert summarize([], [figures]).kv_connector_failures == 3


def test_a_failed_decode_closes_its_handoff_so_later_requests_keep_their_own_figures(pair):
    scheduler = bound(pair)

    async def broken(request):
        raise RuntimeError("decode engine died")

    healthy = pair["decode"].generate_async
    pair["decode"].generate_async = broken
    with pytest.raises(RuntimeError, match="decode engine died"):
        scheduler.generate(request("lost"))
    pair["decode"].generate_async = healthy
    assert scheduler.generate(request("next")).metadata["kv_accounting"] == "connector_stats"


# UCX's log ---------------------------------------------------------------------------------------
def test_ucx_transports_from_v1_endpoint_lines_and_from_emulated_protocols(tmp_path):
    (tmp_path / "ucx.1.log").write_text(
        "[1566814148.941358] [host:3473 :0]     ucp_worker.c:1468 UCX  INFO  ep_cfg[1]: tag(self/memory cma/memory);\n"
        "[1566814148.941432] [host:3473 :0]     ucp_worker.c:1784 UCX  INFO    0x252d990 intra-node cfg#2 "
        "tag(sysv/memory cma/memory cuda_copy/cuda) rma(cuda_ipc/cuda) am(sysv/memory)\n")
    lanes = nixl.ucx_transports([tmp_path])
    assert lanes.transports == "cuda_ipc" and lanes.protocols is None
    # without a GPU-to-GPU path UCX emulates the read over active messages: that is what is recorded
    other = tmp_path / "emulated"
    other.mkdir()
    (other / "ucx.2.log").write_text(
        "[1.0] [h:2:0]   | ucp_context_0 intra-node cfg#1 | remote memory read by ucp_get*(multi) into cuda/GPU0 |\n"
        "[1.0] [h:2:0]   |                         0..inf | software emulation                 | sysv/memory |\n")
    emulated = nixl.ucx_transports([other])
    assert emulated.transports == "sysv" and "software emulation sysv/memory" in emulated.protocols
    assert nixl.ucx_transports([tmp_path / "none"]).source.startswith("no UCX log in")
    quiet = tmp_path / "quiet"
    quiet.mkdir()
    (quiet / "ucx.3.log").write_text("[1.0] [h:3:0] ucp_context.c:2190 UCX  WARN  something unrelated\n")
    assert nixl.ucx_transports([quiet]).transports is None
    assert "no RMA lanes" in nixl.ucx_transports([quiet]).source


# without nixl ------------------------------------------------------------------------------------
@pytest.mark.skipif(HAS_NIXL, reason="nixl is installed here")
def test_without_nixl_a_nixl_job_stops_before_anything_starts(run_launch):
    process, root = run_launch(*VLLM, "scheduler=disaggregated_nixl", timeout=120)
    assert process.returncode == 2
    errors = [line for line in process.stderr.splitlines() if line.startswith("error:")]
    expected = ("error: scheduler.transfer='nixl': NIXL is not installed here; on a GPU host: "
                "pip install nixl==1.3.1 (the NIXL vLLM 0.26 pins)")
    assert errors == [expected]
    assert not list(root.glob("**/manifest.json")) and os.path.isdir(root)


def test_every_job_of_the_e3_nixl_sweep_is_a_valid_config_where_vllm_and_nixl_are_installed(monkeypatch):
    from context_research.config import validate
    from tests.conftest import compose_config

    sweep = compose_config(["experiment=e3_nixl"], return_hydra_config=True).hydra.sweeper.params
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: real("json") if name in ("vllm", "nixl") else real(name, *a))
    grid = [(s, p, c) for s in sweep.scheduler.split(",") for p in sweep.prompt_len.split(",")
            for c in sweep.concurrency.split(",")]
    assert len(grid) == 12
    for scheduler, prompt_len, concurrency in grid:
        typed_groups = validate(compose_config(["experiment=e3_nixl", f"scheduler={scheduler}",
                                                f"prompt_len={prompt_len}", f"concurrency={concurrency}"]))
        assert typed_groups["serving"].engine == "vllm" and typed_groups["model"].load_format == "dummy"
        assert getattr(typed_groups["scheduler"], "transfer", "nixl") == "nixl"
