"""YaRN through model.hf_overrides: transformers reads the config.json the engines are built from as
YaRN with factor 4 over 32768 positions (131072 in all)."""

import math

import pytest
from omegaconf import OmegaConf
from transformers import AutoConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from context_research.serving.model_source import materialize_config_dir
from tests.conftest import compose_config


@pytest.fixture
def yarn_config(tmp_path):
    model = OmegaConf.to_object(compose_config(["model=qwen3_8b_yarn"]).model)
    assert model.max_model_len == model.max_positions == 131072
    return AutoConfig.from_pretrained(materialize_config_dir(model, tmp_path), local_files_only=True)


def test_transformers_reads_yarn_factor_4(yarn_config):
    assert yarn_config.rope_parameters == {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768,
                                           "rope_theta": 1000000}
    inv_freq, attention_factor = ROPE_INIT_FUNCTIONS["yarn"](yarn_config, "cpu")
    assert attention_factor == pytest.approx(0.1 * math.log(4.0) + 1.0)  # YaRN's mscale for factor 4
    base = 1.0 / (1000000 ** (inv_freq.new_tensor(range(0, 128, 2)) / 128))
    assert float(inv_freq[0]) == pytest.approx(float(base[0]))  # high frequencies untouched
    assert float(inv_freq[-1]) == pytest.approx(float(base[-1]) / 4.0, rel=1e-4)  # low frequencies interpolated by the factor


def test_the_older_rope_scaling_spelling_reads_the_same(tmp_path):
    model = OmegaConf.to_object(compose_config([
        "model=qwen3_8b", "model.max_model_len=131072", "+model.hf_overrides.max_position_embeddings=131072",
        "model.architecture.rope_scaling={rope_type: yarn, factor: 4.0, original_max_position_embeddings: 32768}"]).model)
    legacy = AutoConfig.from_pretrained(materialize_config_dir(model, tmp_path), local_files_only=True)
    assert legacy.rope_parameters == {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768,
                                      "rope_theta": 1000000}
