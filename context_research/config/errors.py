"""The one exception a bad configuration raises, formatted as a single line."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A config value that is out of range, of the wrong kind, or inconsistent with another.

    `key` is the dotted config path, `allowed` says what would be accepted.
    """

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r}: {allowed}")

    def under(self, prefix: str) -> "ConfigError":
        """The same error with its key placed under `prefix` (a config group)."""
        return ConfigError(f"{prefix}.{self.key}" if prefix else self.key, self.value, self.allowed)


def require(condition: bool, key: str, value: Any, allowed: str) -> None:
    """Raise ConfigError(key, value, allowed) unless `condition` holds."""
    if not condition:
        raise ConfigError(key, value, allowed)


def require_choice(key: str, value: Any, choices: tuple[str, ...] | list[str]) -> None:
    """Raise unless `value` is one of `choices`."""
    require(value in choices, key, value, "allowed: " + ", ".join(map(str, choices)))

