"""`python launch.py --help`: the config groups users choose with the options conf/ holds now (not
the internal schema group), where to start, and how to install tab completion."""

import re

import pytest

from tests.conftest import CONF, launch

USER_GROUPS = ("experiment", "model", "serving", "scheduler", "benchmark", "collectors", "hardware")


@pytest.fixture(scope="module")
def help_text() -> str:
    process = launch(["--help"], timeout=120)
    assert process.returncode == 0, process.stderr[-2000:]
    return process.stdout


def group_block(text: str, group: str) -> str:
    """The lines of one group's entry in the help."""
    match = re.search(rf"^  {group}: .*?(?=^  \w+: |\n\n)", text, flags=re.M | re.S)
    assert match, group
    return match.group(0)


def test_lists_every_group_users_choose_with_every_option(help_text):
    for group in USER_GROUPS:
        block = group_block(help_text, group)
        options = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
        assert options and all(re.search(rf"\b{o}\b", block) for o in options), (group, block)
    assert re.search(r"\btiny_qwen3\*", group_block(help_text, "model"))  # the default, marked
    assert re.search(r"\bhf\*", group_block(help_text, "serving"))


def test_leaves_out_internal_groups(help_text):
    assert "schema" not in help_text and "experiment_serving" not in help_text
    assert "benchmark_throughput" not in help_text  # an option of the schema group


def test_describes_experiments_and_where_to_start(help_text):
    experiments = group_block(help_text, "experiment")
    assert re.search(r"e1\s+latency scaling with prompt length", experiments)
    assert re.search(r"e2_rate\s+E2 by request rate", experiments)
    for command in ("python launch.py --cfg job", "--dry-run", "resume=true", "python -m context_research.report"):
        assert command in help_text


def test_documents_tab_completion(help_text):
    assert 'eval "$(python launch.py -sc install=bash)"' in help_text  # Hydra's $$ escape came out as $
    assert "bashcompinit" in help_text and "--shell-completion" in help_text


def test_tab_completion_answers_for_the_project():
    process = launch(["-sc", "query=bash"], env={"COMP_LINE": "python launch.py serv", "COMP_POINT": "21"},
                     timeout=120)
    assert process.returncode == 0, process.stderr[-2000:]
    assert set(process.stdout.split()) >= {"serving=", "serving."}
