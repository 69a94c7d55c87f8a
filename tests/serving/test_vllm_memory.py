"""The worker extension vLLM mixes into its GPU worker: importable by the name the engine
arguments give, and adding only its two prefixed methods (vLLM refuses any name its worker
already has)."""

from __future__ import annotations

from hydra.utils import get_class

from context_research.serving.backends import vllm_memory


def test_extension_resolves_and_adds_only_its_rpc_methods():
    extension = get_class(vllm_memory.WORKER_EXTENSION)
    assert extension is vllm_memory.WorkerMemoryAccounting
    added = {name for name in dir(extension) if not name.startswith("__")}
    assert added == {vllm_memory.REPORT, vllm_memory.RESET}
    assert all(callable(getattr(extension, name)) for name in added)
