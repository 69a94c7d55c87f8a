"""The one CUDA_VISIBLE_DEVICES rule (context_research/devices.py), against CUDA's documented reading."""

from __future__ import annotations

import pytest

from context_research import devices

HOST = [f"GPU-{index}aaa-{index}" for index in range(4)]  # four GPUs, UUIDs in NVML (PCI bus) order


@pytest.mark.parametrize("listed, expected", [
    (None, [0, 1, 2, 3]),      # unset: every GPU
    ("", []),                  # set but empty: none
    ("2, 3", [2, 3]),
    ("3,1", [3, 1]),           # CUDA's order is the list's
    ("1,-1,2", [1]),           # -1 ends the list
    ("1,7,2", [1]),            # so does an index past the host's GPUs
    ("GPU-2aaa,0", [2, 0]),    # UUIDs, by unique prefix
    ("GPU-9,0", []),           # an unknown UUID ends the list at once
    ("0,0", [0]),              # a repeated GPU ends it too
])
def test_visible_gpus_follow_cuda(listed, expected):
    environ = {} if listed is None else {"CUDA_VISIBLE_DEVICES": listed}
    assert devices.visible_nvml_indices(HOST, environ) == expected


def test_a_gpu_count_reads_indices_and_stops_at_a_uuid():
    assert devices.visible_nvml_indices(4, {"CUDA_VISIBLE_DEVICES": "2,1"}) == [2, 1]
    assert devices.visible_nvml_indices(4, {"CUDA_VISIBLE_DEVICES": "1,GPU-2aaa"}) == [1]  # no UUIDs to match


def test_entries_name_the_visible_gpus_the_way_the_variable_does():
    assert devices.visible_entries({}, HOST) == ["0", "1", "2", "3"]
    assert devices.visible_entries({"CUDA_VISIBLE_DEVICES": "GPU-2aaa, 3, -1, 0"}, HOST) == ["GPU-2aaa", "3"]
    assert devices.visible_entries({"CUDA_VISIBLE_DEVICES": ""}, HOST) == []


def test_cuda_n_is_the_nth_visible_gpu():
    assert devices.entry_for("cuda:1", {"CUDA_VISIBLE_DEVICES": "4,6"}, [f"GPU-{i}" for i in range(8)]) == "6"
    assert devices.entry_for("cuda", {}, HOST) == "0"
    with pytest.raises(ValueError, match="sees 2 GPU"):
        devices.entry_for("cuda:2", {"CUDA_VISIBLE_DEVICES": "0,1"}, HOST)
    with pytest.raises(ValueError, match="not a CUDA device"):
        devices.cuda_index("cpu")


def test_a_host_without_nvml_has_no_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    if devices.host_gpus():
        pytest.skip("this host has GPUs")
    assert devices.visible_gpu_count() == 0
