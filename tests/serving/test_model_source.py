"""Where a model comes from: local checkpoints on the transformers engine (hf_overrides over their
config.json), the project-built tokenizer, and materialised model directories."""

from __future__ import annotations

import os
import re
import string
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM, AutoTokenizer

from context_research.config.errors import ConfigError
from context_research.serving import model_source
from context_research.serving.model_source import (build_hf_model, built_tokenizer, load_tokenizer,
                                                   materialize_model_dir, tokenizer_dir, tokenizer_source)
from tests.conftest import REPO, compose_config

ASCII_TEXT = "The quick brown fox, 42 times!\n\tJumps over {the} lazy dog's back; x = y + 1? ~ok~ " + string.printable


def tiny(*overrides: str):
    return OmegaConf.to_object(compose_config(list(overrides)).model)


def same_weights(first, second) -> bool:
    a, b = first.state_dict(), second.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """tiny_qwen3 with seed-0 weights saved by save_pretrained, and the built tokenizer beside it."""
    directory = tmp_path_factory.mktemp("tiny-checkpoint")
    model = tiny()
    seeded = build_hf_model(model, tmp_path_factory.mktemp("cache"), "cpu", torch.float32, 0, "sdpa")
    seeded.save_pretrained(directory)
    built_tokenizer(model).save_pretrained(directory)
    return directory


# local weights ------------------------------------------------------------------------------------
def test_a_local_checkpoint_loads_without_accelerate_with_its_weights(checkpoint, tmp_path):
    loaded = build_hf_model(tiny(f"model.path={checkpoint}"), tmp_path, "cpu", torch.float32, 0, "sdpa")
    seeded = build_hf_model(tiny(), tmp_path, "cpu", torch.float32, 0, "sdpa")
    other_seed = build_hf_model(tiny(), tmp_path, "cpu", torch.float32, 1, "sdpa")
    assert not loaded.training and next(loaded.parameters()).device.type == "cpu"
    assert same_weights(loaded, seeded) and not same_weights(other_seed, seeded)


@pytest.mark.parametrize("rope", [
    "+model.hf_overrides.rope_parameters={rope_type: yarn, factor: 2.0, original_max_position_embeddings: 4096, "
    "rope_theta: 1000000.0}",
    "+model.hf_overrides.rope_scaling={rope_type: yarn, factor: 2.0, original_max_position_embeddings: 4096}",
])
def test_hf_overrides_apply_over_a_checkpoints_config(checkpoint, tmp_path, rope):
    model = tiny(f"model.path={checkpoint}", "+model.hf_overrides.max_position_embeddings=8192", rope)
    loaded = build_hf_model(model, tmp_path, "cpu", torch.float32, 0, "sdpa")
    assert loaded.config.max_position_embeddings == 8192
    # the older rope_scaling spelling keeps the checkpoint's rope_theta (a loaded config's update() drops it)
    assert loaded.config.rope_parameters == {"rope_type": "yarn", "factor": 2.0,
                                             "original_max_position_embeddings": 4096, "rope_theta": 1000000.0}
    assert loaded.model.rotary_emb.attention_scaling == pytest.approx(0.1 * torch.log(torch.tensor(2.0)).item() + 1)


# the built tokenizer --------------------------------------------------------------------------
@pytest.mark.parametrize("name, specials", [
    ("tiny_qwen3", {"bos": 1, "eos": 2}),
    ("qwen3_8b", {"bos": 151643, "eos": 151645}),
    ("llama3_1_8b", {"bos": 128000, "eos": 128001}),
])
def test_built_tokenizer_keeps_ids_inside_the_vocab_and_specials_at_the_configs_ids(name, specials):
    model = tiny(f"model={name}", "model.tokenizer=built")
    tokenizer = load_tokenizer(model)
    vocab_size = model.config_json["vocab_size"]
    assert {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id} == specials
    assert max(tokenizer.get_vocab().values()) < vocab_size
    assert len(set(tokenizer.get_vocab().values())) == len(tokenizer.get_vocab())  # one token per id
    assert len(tokenizer) <= min(vocab_size, model_source.BUILT_VOCAB_CAP + 10)
    text = ASCII_TEXT + " naïve café — 東京 🙂 <|im_start|>"
    assert max(tokenizer(text)["input_ids"]) < vocab_size
    eos = model.config_json["eos_token_id"]
    for token_id in eos if isinstance(eos, list) else [eos]:  # every eos id the config names is a special token
        assert tokenizer.convert_ids_to_tokens(token_id) in tokenizer.all_special_tokens


def test_built_tokenizer_round_trips_ascii_and_renders_chatml():
    tokenizer = load_tokenizer(tiny("model.tokenizer=built"))
    ids = tokenizer(ASCII_TEXT)["input_ids"]
    assert tokenizer.decode(ids) == ASCII_TEXT
    prose = "the quick brown fox jumps over the lazy dog near an old house"
    assert len(tokenizer(prose)["input_ids"]) < len(prose) / 3  # trained merges, not a token per byte
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "Hi there"}], tokenize=False,
                                             add_generation_prompt=True, enable_thinking=False)
    assert rendered == "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    start, end = tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    assert ids.count(start) == 2 and ids.count(end) == 1 and max(start, end) < 8192
    assert tokenizer.decode(ids, skip_special_tokens=True) == "user\nHi there\nassistant\n"


def test_built_tokenizer_files_are_byte_identical_across_processes(tmp_path):
    model = tiny("model.tokenizer=built")
    here = tokenizer_dir(model, tmp_path / "here")
    script = ("import sys; from omegaconf import OmegaConf; from tests.conftest import compose_config; "
              "from context_research.serving.model_source import tokenizer_dir; "
              "print(tokenizer_dir(OmegaConf.to_object(compose_config(['model.tokenizer=built']).model), sys.argv[1]))")
    other = subprocess.run([sys.executable, "-c", script, str(tmp_path / "there")], cwd=REPO, capture_output=True,
                           text=True, env={**os.environ, "PYTHONHASHSEED": "123"}, check=True)
    there = type(here)(other.stdout.strip())
    assert here.name == there.name  # named by the tokenizer's content hash
    files = sorted(p.name for p in here.iterdir())
    assert files == sorted(p.name for p in there.iterdir()) == sorted(model_source.TOKENIZER_FILES)
    assert all((here / name).read_bytes() == (there / name).read_bytes() for name in files)


def test_the_saved_tokenizer_is_the_one_loaded_in_process(tmp_path):
    model = tiny("model.tokenizer=built")
    directory = tokenizer_source(model, tmp_path)
    assert directory == tokenizer_dir(model, tmp_path) and directory.parent == tmp_path / "tokenizers"
    saved = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    in_process = load_tokenizer(model)
    assert saved(ASCII_TEXT)["input_ids"] == in_process(ASCII_TEXT)["input_ids"]
    chat = [{"role": "user", "content": ASCII_TEXT}]
    assert saved.apply_chat_template(chat, add_generation_prompt=True) == \
        in_process.apply_chat_template(chat, add_generation_prompt=True)
    assert saved.all_special_tokens == in_process.all_special_tokens


def test_tokenizer_source_names_the_directory_an_engine_reads(checkpoint, tmp_path):
    assert tokenizer_source(tiny(), tmp_path) is None
    assert tokenizer_source(tiny(f"model.path={checkpoint}"), tmp_path) == checkpoint
    assert tokenizer_source(tiny(f"model.tokenizer={checkpoint}"), tmp_path) == checkpoint


def test_model_tokenizer_accepts_built_or_a_directory_only():
    assert tiny("model.tokenizer=built").tokenizer == "built"
    allowed = "an existing local directory, built (the project-built tokenizer), or null"
    with pytest.raises(ConfigError, match=re.escape(f"tokenizer='buitl': {allowed}")):
        tiny("model.tokenizer=buitl")


@pytest.mark.parametrize("override, key", [
    ("model.architecture.vocab_size=200", "model.architecture.vocab_size=200"),
    ("model.architecture.eos_token_id=9000", "model.architecture.eos_token_id=9000"),
])
def test_a_vocab_the_built_tokenizer_cannot_fit_is_refused(override, key):
    with pytest.raises(ConfigError, match=key):
        built_tokenizer(tiny(override))


# materialised model directories --------------------------------------------------------------
@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    cache = tmp_path_factory.mktemp("materialized")
    return cache, materialize_model_dir(tiny(), cache, seed=0)


def test_a_materialized_dir_loads_as_a_checkpoint(materialized, tmp_path):
    _, directory = materialized
    assert sorted(p.name for p in directory.iterdir()) == sorted(model_source.MODEL_DIR_FILES
                                                                 + model_source.TOKENIZER_FILES)
    assert directory.parent.name == "models" and directory.name.startswith("tiny_qwen3-")
    loaded = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True)
    seeded = build_hf_model(tiny(), tmp_path, "cpu", torch.float32, 0, "sdpa")
    assert same_weights(loaded, seeded)
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    assert tokenizer(ASCII_TEXT)["input_ids"] == load_tokenizer(tiny("model.tokenizer=built"))(ASCII_TEXT)["input_ids"]
    assert [p.name for p in directory.parent.iterdir() if p.name.endswith(".partial")] == []


def test_a_complete_dir_is_reused(materialized, monkeypatch):
    cache, directory = materialized
    stamps = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    monkeypatch.setattr(model_source, "_seeded_model", lambda *a, **k: pytest.fail("rebuilt a complete dir"))
    assert materialize_model_dir(tiny(), cache, seed=0) == directory
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == stamps


def test_a_changed_config_seed_or_dtype_gets_its_own_dir(materialized):
    cache, directory = materialized
    changed = [materialize_model_dir(tiny("model.architecture.rms_norm_eps=1e-5"), cache, seed=0),
               materialize_model_dir(tiny(), cache, seed=1),
               materialize_model_dir(tiny("model.dtype=bfloat16"), cache, seed=0)]
    assert len({directory, *changed}) == 4
    assert AutoModelForCausalLM.from_pretrained(changed[0], local_files_only=True).config.rms_norm_eps == 1e-5
    assert AutoModelForCausalLM.from_pretrained(changed[2], local_files_only=True).dtype == torch.bfloat16


def test_a_partly_written_dir_is_rebuilt(tmp_path):
    directory = materialize_model_dir(tiny(), tmp_path, seed=0)
    expected = {p.name: p.read_bytes() for p in directory.iterdir()}
    for name in ("model.safetensors", "tokenizer.json"):  # what a writer killed mid-way in place leaves
        (directory / name).unlink()
    assert materialize_model_dir(tiny(), tmp_path, seed=0) == directory
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == expected


def test_a_crash_while_writing_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    def crash(model):
        raise KeyboardInterrupt  # the weights are written by now; the tokenizer never is

    with monkeypatch.context() as patch:
        patch.setattr(model_source, "built_tokenizer", crash)
        with pytest.raises(KeyboardInterrupt):
            materialize_model_dir(tiny(), tmp_path, seed=0)
    models = tmp_path / "models"
    assert not [p for p in models.iterdir() if p.name.endswith(".partial")]  # the staging dir went with it
    assert not list(models.glob("*/model.safetensors"))  # only the config dir the weights were built from
    directory = materialize_model_dir(tiny(), tmp_path, seed=0)
    assert all((directory / name).is_file() for name in model_source.MODEL_DIR_FILES + model_source.TOKENIZER_FILES)


def test_a_model_over_the_parameter_budget_is_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError) as refused:
        materialize_model_dir(tiny("model=qwen3_8b"), tmp_path, seed=0)
    message = str(refused.value)
    assert "\n" not in message and message.startswith("model='qwen3_8b': ")
    assert "8,190,735,360" in message and "16.4 GB in bfloat16" in message and "load_format=dummy" in message
    with pytest.raises(ConfigError, match="at most 1,000,000 parameters"):
        materialize_model_dir(tiny(), tmp_path, seed=0, max_parameters=1_000_000)
    assert not list((tmp_path / "models").glob("*/model.safetensors"))
