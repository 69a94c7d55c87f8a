"""Run record writers: unique run ids, atomic JSON with the umask's modes, redacted secrets (by name
and by value), the resolved config and the owner in the manifest, status transitions."""

from __future__ import annotations

import json
import math
import os
import re
import stat

import pandas as pd
from omegaconf import OmegaConf

from context_research.records.atomic import write_json_atomic, write_parquet_atomic
from context_research.records.environment import recorded_environment
from context_research.records.run_record import RunRecord, config_hash, new_run_id
from tests.conftest import REPO


def test_run_ids_are_unique_and_well_formed():
    ids = {new_run_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"run-\d{8}T\d{12}Z-[0-9a-f]{8}", i) for i in ids)


def test_json_is_strict_and_the_write_leaves_no_temp_file(tmp_path):
    write_json_atomic(tmp_path / "x.json", {"nan": math.nan, "inf": math.inf, "n": 1})
    assert json.loads((tmp_path / "x.json").read_text()) == {"nan": None, "inf": None, "n": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_record_files_follow_the_umask(tmp_path):
    previous = os.umask(0o002)  # a group-shared directory: colleagues read and write
    try:
        write_json_atomic(tmp_path / "m.json", {"a": 1})
        write_parquet_atomic(tmp_path / "r.parquet", pd.DataFrame({"a": [1]}))
        os.umask(0o077)
        write_json_atomic(tmp_path / "private.json", {"a": 1})
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"m.json": 0o664, "r.parquet": 0o664, "private.json": 0o600}


def test_secrets_are_never_recorded(monkeypatch):
    monkeypatch.setenv("VLLM_API_KEY", "s3cret")
    monkeypatch.setenv("HF_TOKEN", "hf_abc")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    # allow-listed names whose values hold secrets: a URL's password, a key=value pair, a token
    monkeypatch.setenv("NCCL_PROXY_URL", "http://user:hunter2@proxy.example:3128/")
    monkeypatch.setenv("VLLM_PLUGIN_ARGS", "mode=fast,api_key=abc123")
    monkeypatch.setenv("TORCH_HUB_ID", "hf_QWERTYuiopASDFGhjklZXCVbnm1234")
    monkeypatch.setenv("NCCL_SOCKET_IFNAME", "eth0")
    env = recorded_environment()
    assert env["VLLM_API_KEY"] == "<redacted>" and "HF_TOKEN" not in env
    assert env["CUDA_VISIBLE_DEVICES"] == "0" and env["NCCL_SOCKET_IFNAME"] == "eth0"
    assert env["NCCL_PROXY_URL"] == "http://user:<redacted>@proxy.example:3128/"
    assert env["VLLM_PLUGIN_ARGS"] == "mode=fast,api_key=<redacted>"
    assert env["TORCH_HUB_ID"] == "<redacted>"
    assert not [v for v in env.values() if "hunter2" in v or "abc123" in v or "QWERTY" in v]


def test_the_manifest_holds_the_resolved_config_and_its_owner(tmp_path):
    cfg = OmegaConf.create({"name": "t", "seed": 1, "x": "${seed}", "url": "https://u:pw@host/", "n": {"y": "${x}"}})
    record = RunRecord.create(tmp_path, cfg, [], REPO, {"model": "tiny_qwen3"})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config"] == {"name": "t", "seed": 1, "x": 1, "url": "https://u:<redacted>@host/", "n": {"y": 1}}
    assert manifest["choices"] == {"model": "tiny_qwen3"}
    assert manifest["owner"] == {"host": os.uname().nodename, "pid": os.getpid()}
    assert manifest["config_hash"] == config_hash(cfg) == record.manifest["config_hash"]  # of the config as it ran


def test_status_goes_running_then_final(tmp_path):
    cfg = OmegaConf.create({"name": "t", "seed": 1, "resume": True, "x": 2})
    record = RunRecord.create(tmp_path, cfg, ["x=2"], REPO)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "running" and manifest["ended"] is None
    record.write_requests(pd.DataFrame({"a": [1]}))
    record.finish("failed", error="ValueError: boom")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert (manifest["status"], manifest["error"]) == ("failed", "ValueError: boom") and manifest["ended"]
    assert config_hash(cfg) == config_hash(OmegaConf.create({"name": "t", "seed": 1, "x": 2}))
