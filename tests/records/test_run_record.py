"""Run record writers: unique run ids, atomic JSON, redacted secrets, status transitions."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
from omegaconf import OmegaConf

from context_research.records.atomic import write_json_atomic
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


def test_secrets_are_never_recorded(monkeypatch):
    monkeypatch.setenv("VLLM_API_KEY", "s3cret")
    monkeypatch.setenv("HF_TOKEN", "hf_abc")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    env = recorded_environment()
    assert env["VLLM_API_KEY"] == "<redacted>" and "HF_TOKEN" not in env
    assert env["CUDA_VISIBLE_DEVICES"] == "0"


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
