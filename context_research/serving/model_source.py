"""Where a model comes from: a local checkpoint, or the model's real config.json materialised locally.

Nothing is downloaded.

- `model.path` set: weights, config.json and tokenizer load from that directory, with
  `model.hf_overrides` (e.g. YaRN) applied over its config.json.
- `model.path` unset: the architecture (its real config.json) is written to
  `<cache_dir>/models/<name>-<hash>/` so that transformers and vLLM read the same file: transformers
  builds seeded random weights from it, vLLM runs it weightless (`load_format=dummy`).
- `materialize_model_dir`: a small model as a complete local checkpoint (config, seeded random
  weights, tokenizer), for a process that loads models only from a directory (an HTTP server).
- `model.tokenizer=built`: a byte-level BPE tokenizer the project trains on the word lists that ship
  with the `wonderwords` package, with the model's special tokens at the ids its config names and a
  ChatML chat template; `tokenizer_dir` writes it for engines and servers that read a directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from context_research.config.errors import require
from context_research.config.model import BUILT_TOKENIZER
from context_research.records.atomic import write_json_atomic

# materialize_model_dir refuses models above this many parameters: random weights are only worth
# writing for small models (the 8B models run weightless instead)
MAX_MATERIALIZED_PARAMETERS = 100_000_000
BUILT_VOCAB_CAP = 8192  # trained ids of the built tokenizer, at most (specials come on top)
BYTE_ALPHABET = 256  # byte-level BPE starts from one token per byte
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")
MODEL_DIR_FILES = ("config.json", "generation_config.json", "model.safetensors")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def config_digest(config_json: dict[str, Any]) -> str:
    """Short stable hash of a config.json (or any JSON-able payload)."""
    return hashlib.sha256(json.dumps(config_json, sort_keys=True, default=str).encode()).hexdigest()[:10]


def materialize_config_dir(model: Any, cache_dir: str | Path) -> Path:
    """Directory holding the model's config.json (and generation_config.json); `model.path` if set."""
    if model.path:
        return Path(model.path)
    config_json = dict(model.config_json)
    config_json.setdefault("torch_dtype", model.dtype)
    target = Path(cache_dir) / "models" / f"{model.name}-{config_digest(config_json)}"
    if not (target / "config.json").exists():
        target.mkdir(parents=True, exist_ok=True)
        generation = {k: config_json[k] for k in ("bos_token_id", "eos_token_id") if k in config_json}
        write_json_atomic(target / "generation_config.json", generation)
        write_json_atomic(target / "config.json", config_json)
    return target


def hf_config(model: Any, source: str | Path):
    """transformers' config of `source`'s config.json with `model.hf_overrides` over it.

    The config is built from the merged fields, so transformers standardises them as on any load
    (YaRN's older `rope_scaling` becomes `rope_parameters`); updating a loaded config would skip
    that and lose rope_theta. rope_theta belongs to the checkpoint, not to its scaling: an override
    of the rope dict that leaves it out keeps the checkpoint's (top level in older config.json files,
    inside `rope_parameters` in those transformers 5.x saves)."""
    from transformers import AutoConfig, PretrainedConfig

    fields, _ = PretrainedConfig.get_config_dict(str(source), local_files_only=True)
    checkpoint_theta = (fields.get("rope_parameters") or {}).get("rope_theta")
    fields = {**fields, **dict(model.hf_overrides)}
    if checkpoint_theta is not None:
        fields.setdefault("rope_theta", checkpoint_theta)  # a fallback: a rope_theta in the rope dict wins
    return AutoConfig.for_model(fields.pop("model_type"), **fields)


def _seeded_model(config: Any, dtype: Any, seed: int, device: str, attn_implementation: str = "sdpa"):
    """Random weights from `torch.manual_seed(seed)`, created directly on `device` (no host copy of an
    8B model). The same seed gives the same weights on the same kind of device."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn_implementation)


def build_hf_model(model: Any, cache_dir: str | Path, device: str, dtype: Any, seed: int,
                   attn_implementation: str):
    """A transformers causal LM: local weights when `model.path` is set, else seeded random weights;
    quantized by bitsandbytes where `model.quantization` asks (`quantized_hf_model`).

    A checkpoint loads onto the host (its size in host memory, briefly) and then moves to `device`:
    transformers 5.x places weights on a device while loading only through accelerate (a device_map,
    a device context or a default device), which this project does not depend on."""
    source = materialize_config_dir(model, cache_dir)
    config = hf_config(model, source)
    if model.quantization is not None:
        return quantized_hf_model(model, source, config, device, dtype, seed, attn_implementation)
    if not model.path:
        return _seeded_model(config, dtype, seed, device, attn_implementation).eval()
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(source, config=config, dtype=dtype, local_files_only=True,
                                                  attn_implementation=attn_implementation)
    return loaded.to(device).eval()


def bitsandbytes_config(quantization: str, compute_dtype: Any):
    """transformers' BitsAndBytesConfig for `model.quantization`: bnb_8bit is LLM.int8() (int8 weights,
    one float32 scale per output row), bnb_4bit 4-bit blocks of 64 weights with a float32 absmax each,
    computing in the model's dtype; every other setting is bitsandbytes' default."""
    from transformers import BitsAndBytesConfig

    if quantization == "bnb_8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    if quantization == "bnb_4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=compute_dtype)
    raise ValueError(f"model.quantization={quantization!r} is not a bitsandbytes quantization (bnb_4bit, bnb_8bit)")


def quantized_hf_model(model: Any, source: Path, config: Any, device: str, dtype: Any, seed: int,
                       attn_implementation: str):
    """The model with bitsandbytes' Linear layers (all but the LM head), quantized as transformers loads
    the weights onto the CUDA `device` (bitsandbytes and accelerate: pip install -e '.[bnb]'): from
    `model.path`, or the seeded random weights, built on the host and handed over as a state dict (so
    the GPU never holds the unquantized model)."""
    options = {"config": config, "dtype": dtype, "device_map": {"": device}, "attn_implementation": attn_implementation,
               "quantization_config": bitsandbytes_config(model.quantization, dtype)}
    if model.path:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(source, local_files_only=True, **options).eval()
    seeded = _seeded_model(config, dtype, seed, "cpu", attn_implementation)
    weights = seeded.state_dict()
    return type(seeded).from_pretrained(None, state_dict=weights, **options).eval()


def parameter_count(config: Any) -> int:
    """Parameters of the causal LM a transformers config describes, counted on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        shell = AutoModelForCausalLM.from_config(config)
    return sum(parameter.numel() for parameter in shell.parameters())


def materialize_model_dir(model: Any, cache_dir: str | Path, seed: int,
                          max_parameters: int = MAX_MATERIALIZED_PARAMETERS) -> Path:
    """A directory that loads as a real checkpoint: config.json, generation_config.json, the seeded
    random weights (`model.safetensors`, in `model.dtype`) and the built tokenizer; `model.path` if set.

    The weights are those `build_hf_model` makes on CPU with this seed and dtype, so a server loading
    the directory runs the same model as the in-process engine. Written once into
    `<cache_dir>/models/<name>-<hash>/` (the hash covers config, seed, dtype and tokenizer) by a
    rename of a finished directory, and reused while complete. Models above `max_parameters`
    are refused: run those weightless (`model.load_format=dummy`) or from `model.path`."""
    if model.path:
        return Path(model.path)
    import torch

    config = hf_config(model, materialize_config_dir(model, cache_dir))
    parameters = parameter_count(config)
    gigabytes = parameters * getattr(torch, model.dtype).itemsize / 1e9
    require(parameters <= max_parameters, "model", model.name,
            f"materialize_model_dir writes random weights for models of at most {max_parameters:,} parameters; "
            f"this one has {parameters:,} ({gigabytes:.1f} GB in {model.dtype}): run it weightless "
            "(model.load_format=dummy) or from model.path")
    config_json = {**model.config_json, "torch_dtype": model.config_json.get("torch_dtype", model.dtype)}
    identity = {"config": config_json, "seed": seed, "dtype": model.dtype, "tokenizer": built_tokenizer_digest(model)}
    target = Path(cache_dir) / "models" / f"{model.name}-{config_digest(identity)}"

    def write(directory: Path) -> None:
        _seeded_model(config, getattr(torch, model.dtype), seed, "cpu").save_pretrained(directory)
        built_tokenizer(model).save_pretrained(directory)

    return _publish_directory(target, write, MODEL_DIR_FILES + TOKENIZER_FILES)


def _publish_directory(target: Path, write: Callable[[Path], None], required: tuple[str, ...]) -> Path:
    """`target` as it is when it holds every `required` file; else `write` fills a fresh sibling
    directory, renamed onto `target` once finished, so a crash never leaves a directory that looks
    complete. A concurrent writer that publishes first wins; its directory is used."""

    def complete() -> bool:
        return all((target / name).is_file() for name in required)

    if complete():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.partial"
    staging.mkdir()  # the umask's permissions, as any directory the user makes
    try:
        write(staging)
        if target.exists():  # left incomplete by a writer that did not publish by renaming
            shutil.rmtree(target)
        os.rename(staging, target)
    except OSError:
        if not complete():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


# the project-built tokenizer ------------------------------------------------------------------
def _special_token_ids(model: Any) -> tuple[dict[str, str], dict[str, int]]:
    """Roles (bos, eos, pad and the extra eos ids) -> token, and token -> id.

    Specials the config names sit at its ids (one token where two roles share an id); the others
    (pad where unnamed, <|im_start|>, <|im_end|>) take the lowest free ids."""
    config = model.config_json
    vocab_size = int(config["vocab_size"])
    eos = config.get("eos_token_id")
    eos_ids = eos if isinstance(eos, list) else [eos] if eos is not None else []
    named = [("eos" if i == 0 else f"eos_{i}", "eos_token_id", value) for i, value in enumerate(eos_ids)]
    named += [(role, f"{role}_token_id", config.get(f"{role}_token_id")) for role in ("bos", "pad")]
    names = {"eos": "<|endoftext|>", "bos": "<|bos|>", "pad": "<|pad|>"}
    roles: dict[str, str] = {}
    ids: dict[str, int] = {}
    for role, key, value in named:
        if value is None:
            continue
        require(isinstance(value, int) and 0 <= value < vocab_size, f"model.architecture.{key}", value,
                f"a token id below vocab_size {vocab_size}")
        shared = next((token for token, token_id in ids.items() if token_id == value), None)
        roles[role] = shared or names.get(role, f"<|{role}|>")
        ids[roles[role]] = value
    unnamed = [(role, names[role]) for role in ("eos", "pad") if role not in roles]
    free = (i for i in range(vocab_size) if i not in ids.values())
    for role, token in unnamed + [("im_start", "<|im_start|>"), ("im_end", "<|im_end|>")]:
        roles[role], ids[token] = token, next(free)
    return roles, ids


def _built_backend(model: Any) -> tuple[dict[str, str], str]:
    """The built tokenizer's roles (see `_special_token_ids`) and its tokenizer.json."""
    roles, ids = _special_token_ids(model)
    specials = tuple(sorted(ids.items(), key=lambda item: item[1]))
    return roles, _built_tokenizer_json(int(model.config_json["vocab_size"]), specials)


def _wonderwords_corpus() -> list[str]:
    """The training text: wonderwords' noun, adjective and verb lists (shipped with the package)."""
    from context_research.benchmarks.capability.ruler_synthesis import wonderwords_lists

    return [" ".join(words) for words in wonderwords_lists()]


@lru_cache(maxsize=8)
def _built_tokenizer_json(vocab_size: int, specials: tuple[tuple[str, int], ...]) -> str:
    """tokenizer.json of the built tokenizer: byte-level BPE trained on the corpus to at most
    min(vocab_size - specials, BUILT_VOCAB_CAP) ids, its tokens renumbered into the ids the specials
    leave free, then the specials at their ids. Deterministic: same inputs, same string."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    budget = min(vocab_size - len(specials), BUILT_VOCAB_CAP)
    require(budget >= BYTE_ALPHABET, "model.architecture.vocab_size", vocab_size,
            f"at least {BYTE_ALPHABET + len(specials)} for model.tokenizer={BUILT_TOKENIZER} "
            f"({BYTE_ALPHABET} byte tokens and {len(specials)} special tokens)")
    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trained.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=budget, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    trained.train_from_iterator(_wonderwords_corpus(), trainer)
    special_ids = {token_id for _, token_id in specials}
    free = (i for i in range(vocab_size) if i not in special_ids)
    state = json.loads(trained.to_str())
    by_id = sorted(state["model"]["vocab"].items(), key=lambda item: item[1])
    state["model"]["vocab"] = {token: next(free) for token, _ in by_id} | dict(specials)
    tokenizer = Tokenizer.from_str(json.dumps(state))
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token, _ in specials])
    return tokenizer.to_str()


def built_tokenizer(model: Any):
    """The project-built tokenizer for `model` (a fresh transformers PreTrainedTokenizerFast)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    roles, backend = _built_backend(model)
    named = {f"{role}_token": roles[role] for role in ("bos", "eos", "pad") if role in roles}
    extra = [token for role, token in roles.items() if role not in ("bos", "eos", "pad")]
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(backend), **named,
                                   additional_special_tokens=extra, chat_template=CHATML_TEMPLATE,
                                   model_max_length=model.max_positions)


def built_tokenizer_digest(model: Any) -> str:
    """Short hash of everything the built tokenizer's files hold (vocabulary, merges, specials,
    template, length limit): a changed corpus, recipe or library that changes them changes it."""
    roles, backend = _built_backend(model)
    return config_digest({"tokenizer": backend, "roles": roles, "chat_template": CHATML_TEMPLATE,
                          "max_length": model.max_positions})


def tokenizer_dir(model: Any, cache_dir: str | Path) -> Path:
    """The built tokenizer saved as a transformers tokenizer directory, under
    `<cache_dir>/tokenizers/<name>-<hash>/` (written once, reused): what an engine or server that reads
    a directory (vLLM's `tokenizer`) gets for `model.tokenizer=built`, e.g. Qwen3-8B run weightless."""
    target = Path(cache_dir) / "tokenizers" / f"{model.name}-{built_tokenizer_digest(model)}"
    return _publish_directory(target, lambda directory: built_tokenizer(model).save_pretrained(directory),
                              TOKENIZER_FILES)


def tokenizer_source(model: Any, cache_dir: str | Path) -> Path | None:
    """The tokenizer directory an engine or server is given: `model.tokenizer` (built: `tokenizer_dir`),
    else `model.path`, else None (prompts go in as token ids)."""
    if model.tokenizer == BUILT_TOKENIZER:
        return tokenizer_dir(model, cache_dir)
    source = model.tokenizer or model.path
    return Path(source) if source else None


def load_tokenizer(model: Any):
    """The model's tokenizer: built (`model.tokenizer=built`), from `model.tokenizer` or `model.path`,
    or None (prompts then go in as token ids)."""
    if model.tokenizer == BUILT_TOKENIZER:
        return built_tokenizer(model)
    source = model.tokenizer or model.path
    if not source:
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source, local_files_only=True)
