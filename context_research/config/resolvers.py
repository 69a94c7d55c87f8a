"""Arithmetic resolvers for presets whose values scale with a sweep axis, for example
`num_prompts: ${cr.max:16,${cr.mul:2,${concurrency}}}` (two rounds of the in-flight requests,
at least 16). Registered once per process when `context_research.config` is imported."""

from __future__ import annotations

import math

from omegaconf import OmegaConf

RESOLVERS = {
    "cr.mul": lambda *factors: math.prod(factors),
    "cr.max": lambda *values: max(values),
    "cr.floordiv": lambda value, divisor: value // divisor,
}


def register_resolvers() -> None:
    """Register every resolver with OmegaConf (idempotent)."""
    for name, function in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)
