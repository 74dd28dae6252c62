"""A config section chosen by name (``model.fusion.name``): each fusion's own keys, checked per
layer against the fusion in effect there; switching fusion in a later layer drops what earlier
layers set for the old one, and only that."""

import pytest
import yaml

from lavis.common.config import load_experiment
from lavis.common.run_dir import RunDir
from lavis.common.typed import ConfigError, to_dict
from lavis.models.model_config import model_config

TINY = "configs/experiments/synthetic/sms_tiny.yaml"  # its preset sets gca's num_heads: 4


def extending(tmp_path, fusion: dict) -> str:
    """An experiment that extends the tiny one and sets ``model.fusion`` to ``fusion``."""
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"base": str(TINY), "model": {"fusion": fusion}}))
    return str(path)


def test_the_loaded_fusion_config_is_the_fusions_own_class():
    cfg = load_experiment(TINY, ["model.fusion.name=bigca", "model.fusion.ff_mult=2"])
    assert type(cfg.model.fusion).__name__ == "BiGatedCrossAttentionConfig"
    assert (cfg.model.fusion.ff_mult, cfg.model.fusion.num_heads) == (2, 4)  # num_heads: the preset's


def test_switching_to_none_drops_the_keys_set_for_gca():
    cfg = load_experiment(TINY, ["model.fusion.name=none"])
    assert to_dict(cfg.model.fusion) == {"name": "none", "position": "early"}
    assert not cfg.model.uses_audio
    # The same through a model's own config (lavis.inspect_model, the benchmarks).
    assert to_dict(model_config("blip2_mr", "tiny", ["model.fusion.name=none"]).fusion)["name"] == "none"


def test_a_key_the_chosen_fusion_lacks_fails_naming_its_keys():
    with pytest.raises(ConfigError) as err:
        load_experiment(TINY, ["model.fusion.name=concat", "model.fusion.num_heads=4"])
    assert str(err.value) == (
        "--options: unknown key 'model.fusion.num_heads'; valid keys under 'model.fusion' for name "
        "'concat': ['dropout', 'name', 'num_audio_tokens', 'position']"
    )


def test_keys_both_fusions_declare_carry_over(tmp_path):
    exp = extending(tmp_path, {"dropout": 0.1})  # set while gca (the preset's) is in effect
    bigca = load_experiment(exp, ["model.fusion.name=bigca"]).model.fusion
    assert (bigca.dropout, bigca.num_heads) == (0.1, 4)
    avde = load_experiment(exp, ["model.fusion.name=avde"]).model.fusion
    assert to_dict(avde) == {"name": "avde", "position": "early", "dropout": 0.1, "gate_init": 0.1}


def test_a_misspelt_key_of_an_earlier_layer_is_not_dropped_silently(tmp_path):
    exp = extending(tmp_path, {"num_hedas": 8})
    with pytest.raises(ConfigError, match=r"exp.yaml: unknown key 'model.fusion.num_hedas'.*for name 'gca'"):
        load_experiment(exp, ["model.fusion.name=none"])


def test_an_unknown_fusion_fails_at_load_naming_the_registered_ones():
    with pytest.raises(ConfigError, match=r"--options: 'model.fusion.name' must be one of \['avde', .*got 'nope'"):
        load_experiment(TINY, ["model.fusion.name=nope"])


def test_a_saved_run_config_reloads_with_its_fusion(tmp_path):
    cfg = load_experiment(TINY, ["model.fusion.name=concat", "model.fusion.num_audio_tokens=2"])
    reloaded = load_experiment(RunDir(tmp_path / "run").write_config(cfg))
    assert reloaded.to_dict() == cfg.to_dict() and reloaded.model.fusion.num_audio_tokens == 2
    # A resumed or re-evaluated run may switch fusion on top of its saved config.
    assert load_experiment(tmp_path / "run" / "config.yaml", ["model.fusion.name=gca"]).model.fusion.num_heads == 8
