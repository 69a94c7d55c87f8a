"""Fixtures for the capability tests, built locally once per session: a byte-level BPE tokenizer
(vocabulary inside tiny_qwen3's 8192) with a Qwen3-style chat template, and data files in the
official formats (LongBench JSONL, RULER's essay JSON, PG19 book texts)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from context_research.benchmarks.capability.longbench_spec import DATASET2PROMPT
from context_research.benchmarks.capability.ruler_synthesis import wonderwords_lists

SPECIALS = ["<|endoftext|>", "<|bos|>", "<|eos|>", "<|im_start|>", "<|im_end|>"]  # ids 0..4; tiny_qwen3 eos = 2
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}")
ENGLISH_TASKS = [t for t in DATASET2PROMPT if not t.endswith("_zh") and t not in ("dureader", "vcsum", "lsht")]


def english_text(seed: int, sentences: int) -> str:
    """Seeded pseudo-English prose from the wonderwords lists, with numbers and punctuation."""
    nouns, adjectives, verbs = wonderwords_lists()
    rng = random.Random(seed)
    out = []
    for i in range(sentences):
        out.append(f"The {rng.choice(adjectives)} {rng.choice(nouns)} {rng.choice(verbs)}s {rng.randint(2, 999)} "
                   f"{rng.choice(nouns)}s near the {rng.choice(adjectives)} {rng.choice(nouns)}"
                   + rng.choice([".", "!", "?", ", and then it rested."]))
        if i % 7 == 6:
            out.append("\n\n")
    return " ".join(out)


def build_tokenizer(directory: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=4096, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [english_text(seed, 300) for seed in range(3)] + [json.dumps(DATASET2PROMPT)]
    tokenizer.train_from_iterator(corpus, trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|bos|>", eos_token="<|eos|>",
                                      pad_token="<|endoftext|>", additional_special_tokens=SPECIALS[3:])
    wrapped.chat_template = CHAT_TEMPLATE
    wrapped.save_pretrained(directory)
    return directory


def longbench_row(task: str, index: int) -> dict:
    rng = random.Random(f"{task}-{index}")
    context = english_text(rng.randint(0, 10 ** 6), 60)
    answers = [f"{rng.choice(['red', 'blue', 'green'])} house {index}"]
    all_classes = None
    if task == "trec":
        all_classes = ["Abbreviation", "Entity", "Description", "Human", "Location", "Numeric value"]
        answers = [rng.choice(all_classes)]
    elif task.startswith("passage_retrieval"):
        answers = [f"Paragraph {rng.randint(1, 30)}"]
    elif task == "passage_count":
        answers = [str(rng.randint(1, 30))]
    return {"input": f"What is in sample {index} of {task}?", "context": context, "answers": answers,
            "length": len(context.split()), "dataset": task, "language": "en", "all_classes": all_classes,
            "_id": f"{task}-{index:04d}"}


def write_data(root: Path) -> Path:
    """LongBench JSONL for every English task, RULER's essay JSON and three PG19 test books."""
    (root / "longbench").mkdir(parents=True)
    for task in ENGLISH_TASKS:
        lines = [json.dumps(longbench_row(task, i)) for i in range(5)]
        (root / "longbench" / f"{task}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "ruler").mkdir()
    (root / "ruler" / "PaulGrahamEssays.json").write_text(json.dumps({"text": english_text(101, 300)}))
    (root / "pg19" / "test").mkdir(parents=True)
    for book, sentences in (("10001", 70), ("10002", 40), ("10003", 55)):
        (root / "pg19" / "test" / f"{book}.txt").write_text(english_text(int(book), sentences), encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    return build_tokenizer(tmp_path_factory.mktemp("capability-tokenizer"))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("capability-data"))


def tiny_model(tokenizer: Path, *overrides: str):
    """tiny_qwen3's typed model config with the local tokenizer."""
    from omegaconf import OmegaConf

    from tests.conftest import compose_config

    return OmegaConf.to_object(compose_config([f"model.tokenizer={tokenizer}", *overrides]).model)


@pytest.fixture(scope="module")
def scheduler(tokenizer_dir, tmp_path_factory):
    """The tiny model on the HF engine behind the aggregated scheduler, as a job builds them."""
    from tests.conftest import aggregated, hf_engine

    engine = hf_engine(tmp_path_factory.mktemp("models"), [f"model.tokenizer={tokenizer_dir}"])
    engine.start()
    scheduler = aggregated(engine)
    return scheduler
