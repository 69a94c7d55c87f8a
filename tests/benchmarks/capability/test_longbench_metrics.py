"""LongBench's official metrics on hand-checked cases (expected values worked out in the comments)."""

import math

import numpy as np
import pytest

from context_research.benchmarks.capability.longbench_metrics import (
    classification_score, code_sim_score, count_score, length_group_scores, normalize_answer, normalize_zh_answer,
    qa_f1_score, qa_f1_zh_score, retrieval_score, retrieval_zh_score, rouge_score, score_sample, task_score)

TREC = ["Human", "Location", "Entity"]


@pytest.mark.parametrize("text, expected", [
    ("The Cat, a dog!", "cat dog"),  # lower, punctuation, articles, spaces
    ("U.S.A. theater", "usa theater"),  # punctuation goes before articles: 'theater' keeps its 'the'
    ("  An   apple  ", "apple"),
    ("", ""),
])
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_normalize_zh_answer_drops_chinese_punctuation_and_all_spaces():
    assert normalize_zh_answer("北 京，欢迎！A") == "北京欢迎a"


@pytest.mark.parametrize("prediction, truth, expected", [
    ("the red house", "Red House", 1.0),  # equal after normalisation
    ("red car", "red house", 0.5),  # P = 1/2, R = 1/2
    ("The answer is Paris.", "paris", 0.5),  # P = 1/3 (answer is paris), R = 1 -> 2PR/(P+R) = 0.5
    ("a", "a", 0.0),  # nothing left after normalisation: no common token scores 0
])
def test_qa_f1_score(prediction, truth, expected):
    assert qa_f1_score(prediction, truth) == pytest.approx(expected)


def test_qa_f1_zh_score_ignores_punctuation_segments():
    assert qa_f1_zh_score("北京", "北京。") == 1.0  # segments [北京] vs [北京, 。]; 。 normalises away


def test_count_score_is_the_share_of_right_numbers():
    assert count_score("There are 5 paragraphs, not 6", "5") == 0.5
    assert count_score("15", "5") == 0.0  # whole numbers, not substrings
    assert count_score("no idea", "5") == 0.0


def test_retrieval_scores():
    assert retrieval_score("Paragraph 12", "Paragraph 12") == 1.0
    assert retrieval_score("Paragraph 1 or Paragraph 12", "Paragraph 12") == 0.5
    assert retrieval_zh_score("答案是段落3", "段落3") == 1.0


def test_code_sim_score_takes_the_first_code_line():
    assert code_sim_score("```python\n# comment\nx = 1\n", "x = 1") == 1.0  # skips the fence and comment
    # difflib: 4 of 5 characters match in each -> 2*4/10 = 0.8
    assert code_sim_score("x = 2", "x = 1") == 0.8
    # 10 matching characters over 10 + 12 -> 0.909 -> fuzzywuzzy rounds to 91
    assert code_sim_score("\n\nreturn a+b", "return a + b") == 0.91


def test_classification_score():
    assert classification_score("Human", "Human", all_classes=TREC) == 1.0
    assert classification_score("Human or Location", "Location", all_classes=TREC) == 0.5
    assert classification_score("no class named", "Human", all_classes=TREC) == 0.0
    # the original removes from the list it iterates: 'a' is dropped, 'b' is skipped, so
    # [b, ab] remain and the true class scores 1/2 (not 1)
    assert classification_score("ab", "ab", all_classes=["a", "b", "ab"]) == 0.5


def test_rouge_score():
    assert rouge_score("the cat sat", "the cat sat") == pytest.approx(1.0, abs=1e-6)
    # `rouge` counts distinct reference words: m = 5 (the cat sat on mat), n = 2, LCS = 2
    # -> R = 2/5, P = 1, F = 2PR/(P+R) = 4/7
    assert rouge_score("the cat", "the cat sat on the mat") == pytest.approx(4 / 7, abs=1e-6)
    assert rouge_score("", "the cat") == 0.0  # the package raises on an empty prediction


def test_score_sample_first_line_rule_and_best_reference():
    # trec is few-shot: only the first line counts, so the second class does not halve the score
    assert score_sample("trec", "\nHuman\nLocation", ["Human"], TREC) == 1.0
    assert score_sample("trec_e", "Human Location", ["Human"], TREC) == 0.5  # LongBench-E uses trec's metric
    assert score_sample("hotpotqa", "red house", ["blue house", "red house"], None) == 1.0


def test_task_score_rounds_a_percentage():
    assert task_score([1, 0, 0.5]) == 50.0
    assert task_score([1 / 3, 0, 0]) == 11.11


TIE = [0, 0, 0, 0, 0, 0.4, 0.4, 0.75]  # 1.55 / 8 = 0.19375: a tie at 2 decimals, decided by rounding errors


def test_task_score_is_eval_pys_running_sum_on_a_tie():
    # eval.py: 0.4 + 0.4 + 0.75 = 1.5500000000000000444 (the double above 1.55), x 100 = 155.0, / 8 = 19.375
    # exactly, which round() takes to the even 19.38
    assert task_score(TIE) == 19.38
    # the rule this replaced, 100 x the mean: numpy pairs 0.4 + 0.75 first, 1.5499999999999998 -> 19.37
    assert round(100 * float(np.mean(TIE)), 2) == 19.37
    assert task_score(np.array(TIE)) == 19.38 and type(task_score(np.array(TIE))) is float
    # the file order counts, as in eval.py: 0.75 + 0.4 + 0.4 = 1.5499999999999998 -> 19.374999999999996
    assert task_score([0.75, 0.4, 0.4, 0, 0, 0, 0, 0]) == 19.37
    # 0.6 + 0.75 + 0.1 = 1.4500000000000002 -> 18.13; the exact sum (math.fsum, and sum() from Python 3.12) -> 18.12
    assert task_score([0.6, 0.75, 0.1, 0, 0, 0, 0, 0]) == 18.13
    assert round(100 * math.fsum([0.6, 0.75, 0.1]) / 8, 2) == 18.12


def test_length_groups_are_eval_pys_scorer_e():
    scores = [*TIE, 1.0, 0.0, 0.5]
    lengths = [10, 20, 30, 40, 50, 60, 70, 3999, 4000, 7999, 8000]  # < 4000, < 8000, the rest
    # scorer_e takes numpy's mean: on the same eight samples it gives 19.37 where scorer gives 19.38
    assert length_group_scores(scores, lengths) == {"0-4k": 19.37, "4-8k": 50.0, "8k+": 50.0}
    only_short = length_group_scores([1.0, 0.5], [100, 200])
    assert only_short["0-4k"] == 75.0 and math.isnan(only_short["4-8k"]) and math.isnan(only_short["8k+"])
    with pytest.raises(ValueError):
        length_group_scores([1.0], [])


def test_scorer_rounds_like_python_and_scorer_e_like_numpy():
    # 100 x 0.12345 = 12.3450000000000006: Python's round() sees it above the tie -> 12.35; numpy's multiplies
    # by 100 again, gets 1234.5 exactly and rounds half to even -> 12.34
    assert task_score([0.12345]) == task_score(np.array([0.12345])) == 12.35
    assert length_group_scores([0.12345], [100])["0-4k"] == 12.34
