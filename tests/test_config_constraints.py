"""Every number of every registered config declares its range (``lavis.common.constraints``), so
NaN, infinities and out-of-range values fail when the config loads, naming the key."""

import dataclasses
import math
import typing

import pytest

from lavis.common.config import load_experiment
from lavis.common.constraints import Range, check_values, split_annotated
from lavis.common.registry import registry
from lavis.common.typed import ConfigError, field_types

EXPERIMENT = "configs/experiments/synthetic/sms_tiny.yaml"


def _config_classes() -> list[type]:
    classes = [registry.get("runner", "runner_base").config_class, registry.get("model", "blip2_mr").config_class]
    classes += [registry.get("builder", n).config_class for n in registry.names("builder")]
    classes += [registry.get("fusion", n).config_class for n in registry.names("fusion")]
    classes += [registry.get("processor", n).config_class for n in registry.names("processor")]
    return classes


def _unranged(tp, path: str, seen: set) -> list[str]:
    """Paths of int/float leaves under type ``tp`` without a ``Range``."""
    base, extras = split_annotated(tp)
    if base in (int, float):
        return [] if any(isinstance(e, Range) for e in extras) else [path]
    if dataclasses.is_dataclass(base):
        if base in seen:
            return []
        seen.add(base)
        return [p for name, sub in field_types(base).items() for p in _unranged(sub, f"{path}.{name}", seen)]
    return [p for arg in typing.get_args(base) if arg is not Ellipsis for p in _unranged(arg, path, seen)]


def test_every_number_of_every_config_declares_its_range():
    ours = [cls for cls in _config_classes() if cls.__module__.startswith("lavis.")]  # not the tests' toys
    assert len(ours) >= 10, ours
    missing = [p for cls in ours for p in _unranged(cls, cls.__name__, set())]
    assert not missing, missing


@pytest.mark.parametrize(
    "option, message",
    [
        ("run.init_lr=.nan", "'run.init_lr' must be a finite number, got nan"),
        ("run.max_minutes=.inf", "'run.max_minutes' must be a finite number, got inf"),
        ("run.seed=-1", "'run.seed' must be >= 0 and < 2147483648, got -1"),
        ("datasets.synthetic_av.audio.hop_length=0", "'datasets.synthetic_av.audio.hop_length' must be >= 1, got 0"),
        ("model.fusion.dropout=1.0", "'model.fusion.dropout' must be >= 0 and < 1, got 1.0"),
        ("run.lr_scale={qformer: .nan}", "'run.lr_scale.qformer' must be a finite number"),
        ("model.generation.length_penalty=-.inf", "'model.generation.length_penalty' must be a finite number"),
        ("datasets.synthetic_av.video_backend=decord", "names 'decord', which needs the decord package"),
        ("run.hooks=[metrics_jsonl,wandb]", "pip install -e .[wandb]"),
        ("run.max_epochs=3", "did you mean max_epoch?"),
        ("model.fusion.name=gcaa", "did you mean gca?"),
        ("run.warmup_fraction=0.1", "warmup_steps and warmup_fraction are both set"),
        ("run.global_batch_size=0", "'run.global_batch_size' must be >= 1"),
    ],
)
def test_a_value_that_cannot_work_fails_when_the_config_loads(option, message):
    with pytest.raises(ConfigError) as err:
        load_experiment(EXPERIMENT, [option])
    assert message in str(err.value)
    assert "--options" in str(err.value) or "both set" in message  # a check across keys names both


def test_a_config_built_in_code_is_checked_too():
    run_config = registry.get("runner", "runner_base").config_class
    with pytest.raises(ValueError, match="init_lr must be a finite number"):
        run_config(init_lr=math.nan)
    check_values(run_config())
