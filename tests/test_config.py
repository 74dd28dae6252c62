from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest
import yaml

from lavis.common.config import load_experiment, parse_options
from lavis.common.registry import registry
from lavis.common.run_dir import RunDir
from lavis.common.typed import ConfigError, from_dict


@dataclass
class LoraCfg:
    r: int = 8
    alpha: float = 16.0
    target_modules: list[str] = field(default_factory=lambda: ["q", "v"])


@dataclass
class ToyModelCfg:
    arch: str = "toy_model"
    model_type: str = "small"
    num_frames: int = 20
    fusion: Literal["none", "gca"] = "gca"
    prompt: Optional[str] = None
    lora: LoraCfg = field(default_factory=LoraCfg)


@dataclass
class ToyDataCfg:
    ann_root: str = ""
    audio_clip_len: float = 1.5


def _register(tmp_path):
    preset = tmp_path / "toy_small.yaml"
    preset.write_text(yaml.safe_dump({"model": {"num_frames": 12, "lora": {"r": 4}}}))
    ds_default = tmp_path / "toy_data.yaml"
    ds_default.write_text(yaml.safe_dump({"datasets": {"toy_data": {"ann_root": "ann"}}}))

    class ToyModel:
        config_class = ToyModelCfg
        PRETRAINED_MODEL_CONFIG_DICT = {"small": str(preset)}

    class ToyBuilder:
        config_class = ToyDataCfg
        DATASET_CONFIG_DICT = {"default": str(ds_default)}

    class ToyTask:
        pass

    # Same qualname every time: re-registering across tests is not a duplicate.
    for cls, name in ((ToyModel, "ToyModel"), (ToyBuilder, "ToyBuilder"), (ToyTask, "ToyTask")):
        cls.__qualname__ = name
    registry._entries["model"]["toy_model"] = ToyModel
    registry._entries["builder"]["toy_data"] = ToyBuilder
    registry._entries["task"]["toy_task"] = ToyTask


@pytest.fixture
def experiment(tmp_path):
    _register(tmp_path)
    path = tmp_path / "exp.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": {"arch": "toy_model", "model_type": "small", "fusion": "none"},
                "datasets": {"toy_data": {"audio_clip_len": 2.5}},
                "run": {"task": "toy_task", "max_epoch": 5, "output_dir": "${run.task}_out"},
            }
        )
    )
    return path


def test_layers_merge_in_order(experiment):
    cfg = load_experiment(experiment, ["model.lora.r=16", "run.init_lr=1e-4"])
    assert cfg.model.num_frames == 12  # preset
    assert cfg.model.fusion == "none"  # experiment
    assert cfg.model.lora.r == 16  # --options
    assert cfg.model.lora.alpha == 16.0  # dataclass default
    assert cfg.datasets["toy_data"].ann_root == "ann"  # builder default YAML
    assert cfg.datasets["toy_data"].audio_clip_len == 2.5
    assert cfg.run.max_epoch == 5 and cfg.run.init_lr == 1e-4
    assert cfg.run.output_dir == "toy_task_out"  # interpolation resolved


def test_unknown_key_names_file_path_and_valid_keys(experiment):
    text = experiment.read_text().replace("fusion: none", "fusion: none\n  fusoin: gca")
    experiment.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_experiment(experiment)
    msg = str(err.value)
    assert str(experiment) in msg and "model.fusoin" in msg and "'fusion'" in msg


def test_unknown_option_key_names_options(experiment):
    with pytest.raises(ConfigError, match=r"--options: unknown key 'model.lora.rank'.*'r'"):
        load_experiment(experiment, ["model.lora.rank=4"])


def test_wrong_type_names_source_and_key(experiment):
    with pytest.raises(ConfigError, match=r"--options: 'run.max_epoch' must be an integer"):
        load_experiment(experiment, ["run.max_epoch=three"])
    with pytest.raises(ConfigError, match=r"'model.fusion' must be one of \['none', 'gca'\]"):
        load_experiment(experiment, ["model.fusion=bigca"])


def test_wrong_type_in_preset_names_the_preset_file(experiment, tmp_path):
    (tmp_path / "toy_small.yaml").write_text(yaml.safe_dump({"model": {"num_frames": "many"}}))
    with pytest.raises(ConfigError, match=r"toy_small.yaml: 'model.num_frames' must be an integer"):
        load_experiment(experiment)


def test_unknown_arch_and_task_list_registered(experiment):
    with pytest.raises(KeyError, match="toy_model"):
        load_experiment(experiment, ["model.arch=nope"])
    with pytest.raises(KeyError, match="toy_task"):
        load_experiment(experiment, ["run.task=nope"])


def test_bad_run_value_fails_post_init(experiment):
    with pytest.raises(ConfigError, match="accum_grad_iters"):
        load_experiment(experiment, ["run.accum_grad_iters=0"])


def test_resolved_config_is_saved_and_reloads(experiment, tmp_path):
    cfg = load_experiment(experiment, ["model.lora.r=2"])
    saved = RunDir(tmp_path / "run").write_config(cfg)
    reloaded = load_experiment(saved)
    assert reloaded.to_dict() == cfg.to_dict()


def test_options_must_have_equals():
    with pytest.raises(ConfigError, match="key.path=value"):
        parse_options(["run.max_epoch"])


def test_typed_conversion_rules():
    assert from_dict(LoraCfg, {"alpha": 32}, "x").alpha == 32.0  # int accepted for float
    with pytest.raises(ConfigError, match=r"must be an integer, got True"):  # bool is not an int
        from_dict(ToyModelCfg, {"prompt": None, "lora": {"r": True}}, "x")
    with pytest.raises(ConfigError, match=r"'lora.target_modules\[1\]' must be a string"):
        from_dict(ToyModelCfg, {"lora": {"target_modules": ["q", ["k"]]}}, "x")


def test_amp_off_survives_yaml_boolean_parsing(experiment):
    assert load_experiment(experiment, ["run.amp=off"]).run.amp == "off"
    assert load_experiment(experiment, ["run.amp=true"]).run.amp == "bf16"
    assert load_experiment(experiment, ["run.amp=fp16"]).run.amp == "fp16"


def test_cross_field_check_blames_the_options(experiment):
    with pytest.raises(ConfigError, match=r"^--options: 'run': accum_grad_iters is derived from global_batch_size"):
        load_experiment(experiment, ["run.accum_grad_iters=2", "run.global_batch_size=32"])
    with pytest.raises(ConfigError, match=r"^--options: 'run.accum_grad_iters' must be >= 1, got 0"):
        load_experiment(experiment, ["run.accum_grad_iters=0"])


def test_an_experiment_extends_another_through_base(tmp_path):
    (tmp_path / "parent.yaml").write_text(
        "model: {arch: blip2_mr, model_type: tiny, lora: {enabled: false}}\nrun: {init_lr: 0.5, max_epoch: 3}\n"
    )
    sub = tmp_path / "variants"
    sub.mkdir()
    (sub / "child.yaml").write_text("base: ../parent.yaml\nrun: {init_lr: 0.25}\n")
    cfg = load_experiment(sub / "child.yaml", ["run.max_epoch=4"])
    assert (cfg.run.init_lr, cfg.run.max_epoch, cfg.model.model_type) == (0.25, 4, "tiny")
    (tmp_path / "parent.yaml").write_text("base: variants/child.yaml\n")
    with pytest.raises(ConfigError, match="chain comes back"):
        load_experiment(sub / "child.yaml")
    (sub / "typo.yaml").write_text("base: ../parent.yaml\nrum: {init_lr: 1}\n")
    with pytest.raises(ConfigError, match="unknown top-level key.*rum"):
        load_experiment(sub / "typo.yaml")
