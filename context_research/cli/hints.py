"""Hints added to a configuration error's one line (cli/errors.py `one_line`): "did you mean" for a
misspelt key or option, from the keys of the composed config around it or the group's options
(difflib's close matches), and how to install a launcher or sweeper plugin that is not installed."""

from __future__ import annotations

import difflib
import functools
import re
from typing import Callable

from hydra.errors import MissingConfigException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

# Hydra's plugins (the config groups they add options to) and how to install them
PLUGINS = {
    "hydra/launcher/joblib": "pip install hydra-joblib-launcher",
    "hydra/launcher/submitit_local": "pip install hydra-submitit-launcher",
    "hydra/launcher/submitit_slurm": "pip install hydra-submitit-launcher",
    "hydra/launcher/ray": "pip install -e '.[ray]' (hydra-ray-launcher; the README says why in an environment "
                          "of its own)",
    "hydra/launcher/ray_aws": "pip install -e '.[ray]' (hydra-ray-launcher)",
    "hydra/launcher/rq": "pip install hydra-rq-launcher",
    "hydra/sweeper/optuna": "pip install hydra-optuna-sweeper",
    "hydra/sweeper/ax": "pip install hydra-ax-sweeper",
    "hydra/sweeper/nevergrad": "pip install hydra-nevergrad-sweeper",
}
MISSING_CONFIG = re.compile(r"Could not (?:load|find) '([^']+)'")
OVERRIDE_KEY = re.compile(r"Could not override '([^']+)'")
INTERNAL_KEYS = ("hydra",)  # keys of the composed config no one overrides by name
CLOSE = 0.8  # difflib similarity a suggestion needs (promt_len -> prompt_len: 0.95; -> output_len: 0.63)


def plugin_hint(error: BaseException) -> str | None:
    """How to install the Hydra plugin a config (`hydra/launcher=ray`, or a preset over it) needs."""
    wanted = getattr(error, "missing_cfg_file", None) or next(iter(MISSING_CONFIG.findall(str(error))), None)
    install = PLUGINS.get(str(wanted).removesuffix(".yaml")) if wanted else None
    if install is None:
        return None
    group, _, option = str(wanted).rpartition("/")
    return f"{group}={option} comes from a Hydra plugin that is not installed: {install}"


def option_hint(error: MissingConfigException) -> str | None:
    """`serving=vlm` -> did you mean serving=vllm?"""
    if not error.missing_cfg_file or not error.options:
        return None
    group, _, option = error.missing_cfg_file.rpartition("/")
    close = difflib.get_close_matches(option, list(error.options), n=2, cutoff=CLOSE)
    return f"did you mean {' or '.join(f'{group}={c}' for c in close)}?" if close else None


def key_hint(error: BaseException) -> str | None:
    """`promt_len=5` -> did you mean prompt_len? (the keys beside the unknown one in the composed config)"""
    cause = error.__cause__
    if not isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
        return None
    parent, key, full_key = (getattr(cause, name, None) for name in ("parent_node", "key", "full_key"))
    if parent is None or key is None or not hasattr(parent, "keys"):
        return None
    candidates = [str(k) for k in parent.keys() if str(k) not in INTERNAL_KEYS]
    if str(key) in candidates:  # the key exists: the error is about its value
        return None
    close = difflib.get_close_matches(str(key), candidates, n=2, cutoff=CLOSE)
    if not close:
        return None
    typed = OVERRIDE_KEY.search(str(error))
    parts = (typed.group(1).lstrip("+~") if typed else str(full_key)).split(".")
    position = len(str(full_key).split(".")) - 1
    suggestions = [".".join(parts[:position] + [match] + parts[position + 1:]) for match in close]
    return f"did you mean {' or '.join(suggestions)}?"


def hint(error: BaseException) -> str | None:
    """The hint for a composition error, or None: a missing plugin first, then a close match."""
    found = plugin_hint(error)
    if found is None and isinstance(error, MissingConfigException):
        found = option_hint(error)
    return found or key_hint(error)


def with_hint(one_line: Callable[[BaseException], str]) -> Callable[[BaseException], str]:
    """Decorate `one_line`: its line, with the hint (if any) after a semicolon."""

    @functools.wraps(one_line)
    def described(error: BaseException) -> str:
        found = hint(error)
        line = one_line(error)
        return f"{line.rstrip('.')}; {found}" if found else line

    return described
