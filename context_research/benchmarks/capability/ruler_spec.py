"""RULER's task definitions as NVIDIA/RULER ships them: the prompt templates and answer prefixes
(scripts/data/synthetic/constants.py) and the task variants (scripts/synthetic.yaml).

Data only (no torch): the config schemas import it to validate task names.
"""

from __future__ import annotations

# family -> tokens to generate, template (with {context} and {query}), answer prefix
TEMPLATES: dict[str, dict] = {
    "niah": {
        "tokens_to_generate": 128,
        "template": "Some special magic {type_needle_v} are hidden within the following text. Make sure to "
                    "memorize it. I will quiz you about the {type_needle_v} afterwards.\n{context}\nWhat are all "
                    "the special magic {type_needle_v} for {query} mentioned in the provided text?",
        "answer_prefix": " The special magic {type_needle_v} for {query} mentioned in the provided text are",
    },
    "variable_tracking": {
        "tokens_to_generate": 30,
        "template": "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n"
                    "{context}\nQuestion: Find all variables that are assigned the value {query} in the text above.",
        "answer_prefix": " Answer: According to the chain(s) of variable assignment in the text above, {num_v} "
                         "variables are assigned the value {query}, they are: ",
    },
    "common_words_extraction": {
        "tokens_to_generate": 120,
        "template": "Below is a numbered list of words. In these words, some appear more often than others. "
                    "Memorize the ones that appear most often.\n{context}\nQuestion: What are the 10 most common "
                    "words in the above list?",
        "answer_prefix": " Answer: The top 10 words that appear most often in the list are:",
    },
    "freq_words_extraction": {
        "tokens_to_generate": 50,
        "template": "Read the following coded text and track the frequency of each coded word. Find the three "
                    "most frequently appeared coded words. {context}\nQuestion: Do not provide any explanation. "
                    "Please ignore the dots '....'. What are the three most frequently appeared words in the "
                    "above coded text?",
        "answer_prefix": " Answer: According to the coded text above, the three most frequently appeared words "
                         "are:",
    },
}

# task -> family and arguments (scripts/synthetic.yaml; the qa tasks need SQuAD/HotpotQA and are not here)
TASKS: dict[str, dict] = {
    "niah_single_1": {"family": "niah", "type_haystack": "noise", "type_needle_k": "words",
                      "type_needle_v": "numbers", "num_needle_k": 1, "num_needle_v": 1, "num_needle_q": 1},
    "niah_single_2": {"family": "niah", "type_haystack": "essay", "type_needle_k": "words",
                      "type_needle_v": "numbers", "num_needle_k": 1, "num_needle_v": 1, "num_needle_q": 1},
    "niah_single_3": {"family": "niah", "type_haystack": "essay", "type_needle_k": "words",
                      "type_needle_v": "uuids", "num_needle_k": 1, "num_needle_v": 1, "num_needle_q": 1},
    "niah_multikey_1": {"family": "niah", "type_haystack": "essay", "type_needle_k": "words",
                        "type_needle_v": "numbers", "num_needle_k": 4, "num_needle_v": 1, "num_needle_q": 1},
    "niah_multikey_2": {"family": "niah", "type_haystack": "needle", "type_needle_k": "words",
                        "type_needle_v": "numbers", "num_needle_k": 1, "num_needle_v": 1, "num_needle_q": 1},
    "niah_multikey_3": {"family": "niah", "type_haystack": "needle", "type_needle_k": "uuids",
                        "type_needle_v": "uuids", "num_needle_k": 1, "num_needle_v": 1, "num_needle_q": 1},
    "niah_multivalue": {"family": "niah", "type_haystack": "essay", "type_needle_k": "words",
                        "type_needle_v": "numbers", "num_needle_k": 1, "num_needle_v": 4, "num_needle_q": 1},
    "niah_multiquery": {"family": "niah", "type_haystack": "essay", "type_needle_k": "words",
                        "type_needle_v": "numbers", "num_needle_k": 1, "num_needle_v": 1, "num_needle_q": 4},
    "vt": {"family": "variable_tracking", "type_haystack": "noise", "num_chains": 1, "num_hops": 4},
    "cwe": {"family": "common_words_extraction", "freq_cw": 30, "freq_ucw": 3, "num_cw": 10},
    "fwe": {"family": "freq_words_extraction", "alpha": 2.0},
}


def needs_essay(task: str) -> bool:
    """Whether a task's haystack is essay text (a local file) rather than synthetic noise."""
    return TASKS[task].get("type_haystack") == "essay"
