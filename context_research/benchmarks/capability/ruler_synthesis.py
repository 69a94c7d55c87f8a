"""RULER's synthetic tasks, generated locally (after NVIDIA/RULER scripts/data/synthetic/*.py).

Each family renders one sample from a seeded `random.Random` and a haystack size (noise sentences,
essay words, distractor needles, listed words); the size is then searched so that the prompt,
measured with the model's tokenizer through its chat template, plus the tokens to generate fills
the target length (RULER's max_seq_length) as closely as possible without passing it. The sample's
random draws are replayed from its own seed at every size tried, so a sample is a pure function of
(task, seed, index, target length, tokenizer).

Where this departs from RULER, and why: the size search runs per sample (RULER searches once per
task and drops 500 words from a sample that overflows), so every sample lands within a few tokens
of the target; essay sentences are split with a regular expression (RULER uses nltk's punkt, a
download); essay text comes from a local file (RULER downloads Paul Graham's essays); adjective-noun
keys are drawn as an adjective and a noun (the same distribution as RULER's 6.2M-entry list).
"""

from __future__ import annotations

import json
import random
import re
import string
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.special import zeta

from context_research.benchmarks.capability.ruler_spec import TASKS, TEMPLATES

NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}."
NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
DEPTHS = [int(d) for d in np.round(np.linspace(0, 100, num=40, endpoint=True))]
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
VT_ICL_TOKENS = 500  # RULER fits its variable-tracking example to 500 tokens
CWE_SHORT = 4096  # below this length RULER's cwe repeats words less often
FWE_WORD_LEN = 6


@dataclass
class Rendered:
    """One rendered sample: the user turn, the start of the reply, the references, and the strings
    the prompt must contain (needles, chains, common words)."""

    text: str
    answer_prefix: str
    outputs: list[str]
    needles: list[str]


@lru_cache(maxsize=1)
def wonderwords_lists() -> tuple[list[str], list[str], list[str]]:
    """RULER's word lists (the `wonderwords` package): nouns, adjectives, verbs, each in its file's
    order with its repeats, as RULER reads them. `RandomWord.read_words` is the public form of the
    reader RULER calls; `RandomWord.filter` would return them sorted and deduplicated instead."""
    from wonderwords import Defaults, RandomWord

    return tuple(RandomWord.read_words(words.value) for words in (Defaults.NOUNS, Defaults.ADJECTIVES,
                                                                  Defaults.VERBS))


def read_essay_words(path: str) -> list[str]:
    """Haystack words of an essay file: RULER's PaulGrahamEssays.json ({"text": ...}) or plain text."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"RULER essay haystack {file} not found (a local JSON with a 'text' field, "
                                "like RULER's PaulGrahamEssays.json, or a .txt file)")
    raw = file.read_text(encoding="utf-8")
    text = json.loads(raw)["text"] if file.suffix == ".json" else raw
    return re.sub(r"\s+", " ", text).strip().split(" ")


# --- random values -------------------------------------------------------------------------------

def random_value(rng: random.Random, kind: str) -> str:
    if kind == "numbers":
        return str(rng.randint(10 ** 6, 10 ** 7 - 1))
    if kind == "words":
        nouns, adjectives, _ = wonderwords_lists()
        return f"{rng.choice(adjectives)}-{rng.choice(nouns)}"
    if kind == "uuids":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    raise ValueError(f"unknown needle type {kind!r}")


def essay_context(essay_words: list[str], size: int, inserts: list[str], depths: list[int]) -> str:
    """The first `size` essay words (repeated if needed), with `inserts` placed between sentences at
    the given depths (percent of the sentences)."""
    repeats = -(-size // len(essay_words))
    sentences = SENTENCE_END.split(" ".join((essay_words * repeats)[:size]).strip())
    positions = [0] + sorted(int(len(sentences) * depth / 100) for depth in depths) + [len(sentences)]
    parts = []
    for i in range(1, len(positions)):
        parts.append(" ".join(sentences[positions[i - 1]:positions[i]]))
        if i - 1 < len(inserts):
            parts.append(inserts[i - 1])
    return " ".join(parts)


# --- families ------------------------------------------------------------------------------------

def render_niah(rng: random.Random, size: int, args: dict, essay_words: list[str] | None) -> Rendered:
    """Needle in a haystack: key -> value needles hidden in noise, essay text or distractor needles."""
    type_k, type_v = args["type_needle_k"], args["type_needle_v"]
    num_k = max(args["num_needle_k"], args["num_needle_q"])
    keys, values, needles = [], [], []
    for _ in range(num_k):
        keys.append(random_value(rng, type_k))
        value = []
        for _ in range(args["num_needle_v"]):
            value.append(random_value(rng, type_v))
            needles.append(NEEDLE.format(type_needle_v=type_v, key=keys[-1], value=value[-1]))
        values.append(value)
    rng.shuffle(needles)
    indices = rng.sample(range(num_k), args["num_needle_q"])
    queries = [keys[i] for i in indices]
    answers = [a for i in indices for a in values[i]]
    query = ", ".join(queries[:-1]) + ", and " + queries[-1] if len(queries) > 1 else queries[0]

    if args["type_haystack"] == "essay":
        context = essay_context(essay_words, size, needles, rng.sample(DEPTHS, len(needles)))
    else:
        if args["type_haystack"] == "noise":
            sentences = [NOISE] * size
        else:  # distractor needles with their own random keys and values
            sentences = [NEEDLE.format(type_needle_v=type_v, key=random_value(rng, type_k),
                                       value=random_value(rng, type_v)) for _ in range(size)]
        for index, needle in zip(sorted(rng.sample(range(size), len(needles)), reverse=True), needles):
            sentences.insert(index, needle)
        context = "\n".join(sentences)

    template, prefix = TEMPLATES["niah"]["template"], TEMPLATES["niah"]["answer_prefix"]
    type_named = type_v
    if args["num_needle_q"] * args["num_needle_v"] == 1:  # RULER's singular wording
        for old, new in (("Some", "A"), ("are all", "is"), ("are", "is"), ("answers", "answer")):
            template, prefix = template.replace(old, new), prefix.replace(old, new)
        type_named = type_v[:-1]
    return Rendered(text=template.format(type_needle_v=type_named, context=context, query=query),
                    answer_prefix=prefix.format(type_needle_v=type_named, query=query),
                    outputs=answers, needles=needles)


def variable_chains(rng: random.Random, num_chains: int, num_hops: int, letters: int) -> tuple[list, list]:
    """Chains `VAR A = 12345`, `VAR B = VAR A`, ...: the variables of each chain and its statements."""
    names = ["".join(rng.choices(string.ascii_uppercase, k=letters)) for _ in range((num_hops + 1) * num_chains)]
    while len(set(names)) < num_chains * (num_hops + 1):
        names.append("".join(rng.choices(string.ascii_uppercase, k=letters)))
    variables, chains = [], []
    for i in range(0, len(names), num_hops + 1):
        chain_vars = names[i:i + num_hops + 1]
        variables.append(chain_vars)
        chain = [f"VAR {chain_vars[0]} = {rng.randint(10000, 99998)}"]
        chain.extend(f"VAR {chain_vars[j + 1]} = VAR {chain_vars[j]} " for j in range(num_hops))
        chains.append(chain)
    return variables, chains


def render_vt_body(rng: random.Random, size: int, args: dict, letters: int) -> Rendered:
    """Variable tracking without its worked example: chains hidden among noise sentences."""
    variables, chains = variable_chains(rng, args["num_chains"], args["num_hops"], letters)
    value = chains[0][0].split("=")[-1].strip()
    sentences = [NOISE] * size
    for chain in chains:
        positions = sorted(rng.sample(range(len(sentences)), len(chain)))
        for offset, (position, statement) in enumerate(zip(positions, chain)):
            sentences.insert(position + offset, statement)
    context = "\n".join(sentences).replace(". \n", ".\n")
    spec = TEMPLATES["variable_tracking"]
    return Rendered(text=spec["template"].format(context=context, query=value),
                    answer_prefix=spec["answer_prefix"].format(num_v=args["num_hops"] + 1, query=value),
                    outputs=variables[0], needles=[s.strip() for chain in chains for s in chain])


def render_vt(rng: random.Random, size: int, args: dict, icl_size: int) -> Rendered:
    """Variable tracking with RULER's one worked example (3-letter variables) before the question."""
    example = render_vt_body(rng, icl_size, args, letters=3)
    worked = example.text + example.answer_prefix + " " + " ".join(example.outputs) + "\n"
    body = render_vt_body(rng, size, args, letters=5)
    return Rendered(text=worked + "\n" + body.text, answer_prefix=body.answer_prefix, outputs=body.outputs,
                    needles=body.needles)


def cwe_words(seed: int) -> list[str]:
    nouns, adjectives, verbs = wonderwords_lists()
    words = sorted(set(nouns + adjectives + verbs))
    random.Random(seed).shuffle(words)
    return words


def cwe_example(rng: random.Random, words: list[str], num_words: int, common_repeats: int,
                uncommon_repeats: int, num_common: int) -> tuple[str, list[str]]:
    if num_words > len(words):
        raise ValueError(f"cwe needs {num_words} distinct words at this length; the word lists hold {len(words)}")
    chosen = rng.sample(words, num_words)
    common, uncommon = chosen[:num_common], chosen[num_common:]
    listed = common * common_repeats + uncommon * uncommon_repeats
    rng.shuffle(listed)
    return " ".join(f"{i + 1}. {word}" for i, word in enumerate(listed)), common


def render_cwe(rng: random.Random, size: int, args: dict, words: list[str], target: int) -> Rendered:
    """Common words extraction: a numbered word list where `num_cw` words repeat most; one worked example."""
    spec = TEMPLATES["common_words_extraction"]
    num_cw = args["num_cw"]
    if target < CWE_SHORT:
        shot = cwe_example(rng, words, 20, 3, 1, num_cw)
        context, common = cwe_example(rng, words, size, 6, 1, num_cw)
    else:
        shot = cwe_example(rng, words, 40, 10, 3, num_cw)
        context, common = cwe_example(rng, words, size, args["freq_cw"], args["freq_ucw"], num_cw)
    worked = (spec["template"].format(context=shot[0]) + spec["answer_prefix"] + " "
              + " ".join(f"{i + 1}. {word}" for i, word in enumerate(shot[1])))
    return Rendered(text=worked + "\n" + spec["template"].format(context=context),
                    answer_prefix=spec["answer_prefix"], outputs=common, needles=list(common))


def render_fwe(rng: random.Random, size: int, args: dict, target: int) -> Rendered:
    """Frequent words extraction: coded words with Zipf (zeta, alpha) counts; the most frequent one is
    noise ('...'), the next three are the answer."""
    vocab_size = (target - TEMPLATES["freq_words_extraction"]["tokens_to_generate"]) // 50
    vocab = ["".join(rng.choices(string.ascii_lowercase, k=FWE_WORD_LEN)) for _ in range(vocab_size)]
    while len(set(vocab)) < vocab_size:
        vocab.append("".join(rng.choices(string.ascii_lowercase, k=FWE_WORD_LEN)))
    vocab = sorted(set(vocab))
    rng.shuffle(vocab)
    vocab[0] = "..."
    ranks = np.arange(1, len(vocab) + 1)
    counts = (size * ranks ** -args["alpha"] / zeta(args["alpha"])).astype(int)
    coded = [word for word, count in zip(vocab, counts) for _ in range(count)]
    rng.shuffle(coded)
    spec = TEMPLATES["freq_words_extraction"]
    answers = vocab[1:4]
    return Rendered(text=spec["template"].format(context=" ".join(coded)), answer_prefix=spec["answer_prefix"],
                    outputs=answers, needles=list(answers))


# --- fitting the target length -------------------------------------------------------------------

class TooShort(ValueError):
    """The target length cannot hold even the smallest haystack of a task."""


def largest_fitting(fits: Callable[[int], bool], minimum: int, guess: int) -> int:
    """The largest size >= minimum with fits(size), searched by galloping from `guess` and bisecting
    (token counts grow with the haystack size)."""
    guess = max(guess, minimum)
    if fits(guess):
        low, step = guess, 1
        while fits(low + step):
            low, step = low + step, step * 2
        high = low + step
    else:
        high, step = guess, 1
        while True:
            low = max(minimum, guess - step)
            if fits(low):
                break
            if low == minimum:
                raise TooShort(f"even the smallest haystack ({minimum}) is too long")
            high, step = low, step * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


class TaskSynthesizer:
    """Renders the samples of one RULER task at one target length.

    `measure(rendered) -> int` gives the prompt length in tokens (chat template included); a sample
    fits when that plus the task's tokens to generate is at most `target`. `count(text) -> int`
    counts plain text (RULER's worked variable-tracking example is sized without a template).
    """

    def __init__(self, task: str, target: int, seed: int, measure: Callable[[Rendered], int],
                 count: Callable[[str], int], essay_words: list[str] | None = None) -> None:
        self.task = task
        self.args = TASKS[task]
        self.family = self.args["family"]
        self.tokens_to_generate = TEMPLATES[self.family]["tokens_to_generate"]
        self.target = target
        self.seed = seed
        self.measure = measure
        self.count = count
        self.essay_words = essay_words
        if self.args.get("type_haystack") == "essay" and not essay_words:
            raise ValueError(f"RULER {task} needs essay text (benchmark.essay_file)")
        self._size_guess: int | None = None
        self._icl_size: int | None = None
        self._words = cwe_words(seed) if self.family == "common_words_extraction" else None

    def sample_seed(self, index: int) -> str:
        """A per-sample seed, distinct for every (seed, task, length, index); string seeds hash with
        sha512 in `random`, so they are stable across processes."""
        return f"{self.seed}/{self.task}/{self.target}/{index}"

    def minimum_size(self) -> int:
        if self.family == "niah":
            needles = max(self.args["num_needle_k"], self.args["num_needle_q"]) * self.args["num_needle_v"]
            return needles if self.args["type_haystack"] != "essay" else 1
        if self.family == "variable_tracking":
            return self.args["num_hops"] + 1
        if self.family == "common_words_extraction":
            return self.args["num_cw"]
        return int(np.ceil(4 ** self.args["alpha"] * zeta(self.args["alpha"])))  # the 4th word appears once

    def render(self, seed: str, size: int) -> Rendered:
        rng = random.Random(seed)
        if self.family == "niah":
            return render_niah(rng, size, self.args, self.essay_words)
        if self.family == "variable_tracking":
            return render_vt(rng, size, self.args, self.icl_size())
        if self.family == "common_words_extraction":
            return render_cwe(rng, size, self.args, self._words, self.target)
        return render_fwe(rng, size, self.args, self.target)

    def icl_size(self) -> int:
        """Noise sentences of the worked variable-tracking example: fitted once to RULER's 500 tokens."""
        if self._icl_size is None:
            def fits(size: int) -> bool:
                example = render_vt_body(random.Random(self.seed), size, self.args, letters=3)
                text = example.text + example.answer_prefix + " " + " ".join(example.outputs)
                return self.count(text) <= VT_ICL_TOKENS
            self._icl_size = largest_fitting(fits, self.args["num_hops"] + 1, self.args["num_hops"] + 1)
        return self._icl_size

    def sample(self, index: int) -> Rendered:
        """Sample `index`: the rendering that fills the target length most closely without passing it."""
        seed = self.sample_seed(index)
        lengths: dict[int, int] = {}

        def fits(size: int) -> bool:
            lengths[size] = self.measure(self.render(seed, size))
            return lengths[size] + self.tokens_to_generate <= self.target

        minimum = self.minimum_size()
        if self._size_guess is None:  # a linear estimate from two probes, then galloping from it
            small, large = max(minimum, 16), max(minimum, 16) * 4
            fits(small)
            fits(large)
            per_unit = max((lengths[large] - lengths[small]) / (large - small), 1e-3)
            room = self.target - self.tokens_to_generate - lengths[small]
            self._size_guess = max(minimum, small + int(room / per_unit))
        try:
            size = largest_fitting(fits, minimum, self._size_guess)
        except TooShort:
            raise TooShort(f"RULER {self.task}: context_len={self.target} cannot hold its smallest prompt") from None
        self._size_guess = size
        return self.render(seed, size)
