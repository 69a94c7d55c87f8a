"""RULER's official scoring on hand-checked cases."""

from context_research.benchmarks.capability.ruler_metrics import (postprocess_pred, sample_match_all,
                                                                   string_match_all, string_match_part)


def test_postprocess_strips_and_turns_control_characters_into_newlines():
    assert postprocess_pred("  123\x00456\x1f \t") == "123\n456"


def test_string_match_all_is_the_share_of_references_found():
    preds = ["The numbers are 123 and 456", "nothing"]
    refs = [["123", "456", "789"], ["1"]]
    assert string_match_all(preds, refs) == 33.33  # (2/3 + 0) / 2


def test_string_match_part_needs_one_reference():
    assert string_match_part(["The numbers are 123 and 456"], [["123", "999"]]) == 100.0
    assert string_match_part(["nothing"], [["123", "999"]]) == 0.0


def test_matching_ignores_case():
    assert string_match_all(["uuid ABC-def"], [["abc-DEF"]]) == 100.0


def test_sample_match_all_post_processes_first():
    assert sample_match_all("\x00 Answer: GGI, azg \n", ["ggi", "AZG", "LOL"]) == 2 / 3
