"""Engines are shared by configuration key and stopped when another configuration is needed."""

from __future__ import annotations

from context_research.serving import engine_cache


class CountingEngine:
    """The lifecycle the engine cache drives (start, warmup, stop), logged."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name, self.engine_key = log, name, ""

    def start(self):
        self.log.append(f"start {self.name}")

    def warmup(self):
        self.log.append(f"warmup {self.name}")

    def stop(self):
        self.log.append(f"stop {self.name}")


def test_same_key_reuses_other_key_replaces():
    log: list[str] = []
    try:
        first, first_s = engine_cache.acquire({"a": lambda: CountingEngine(log, "a")})
        again, again_s = engine_cache.acquire({"a": lambda: CountingEngine(log, "a2")})
        assert again["a"] is first["a"] and again_s == 0.0 and first_s >= 0.0
        other, _ = engine_cache.acquire({"b": lambda: CountingEngine(log, "b")})
        assert log == ["start a", "warmup a", "stop a", "start b", "warmup b"]
        assert other["b"].engine_key == "b"
    finally:
        engine_cache.release_all()
    assert log[-1] == "stop b"
    engine_cache.release_all()  # nothing is cached any more: nothing is stopped twice
    assert log.count("stop b") == 1


def test_engine_key_is_stable_and_sensitive():
    assert engine_cache.engine_key({"x": 1, "y": 2}) == engine_cache.engine_key({"y": 2, "x": 1})
    assert engine_cache.engine_key({"x": 1}) != engine_cache.engine_key({"x": 2})


class WarmupOutOfMemory(CountingEngine):
    def warmup(self):
        raise MemoryError("out of memory at warm-up")


def test_an_engine_that_fails_to_start_is_still_stopped_by_release_all():
    # its half-started state (a vLLM engine-core process, GPU memory) must not reach the next job
    log: list[str] = []
    try:
        engine_cache.acquire({"a": lambda: WarmupOutOfMemory(log, "a")})
    except MemoryError:
        pass
    engine_cache.release_all()
    assert log == ["start a", "stop a"]
