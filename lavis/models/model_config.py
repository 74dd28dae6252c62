"""A model's typed config from its preset, without a whole experiment.

Tools such as ``lavis.inspect_model``, the benchmarks and the tests build a model from
``model_config("blip2_mr", "tiny")`` or from the ``model:`` section of an experiment or preset
YAML (``model_config_from_yaml``). Layers, later wins: the class's dataclass
defaults < its preset YAML (``PRETRAINED_MODEL_CONFIG_DICT[model_type]``) < the given YAML's
``model:`` section < ``--options model.key=value``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from lavis.common.config import OPTIONS_SOURCE, load_yaml, parse_options
from lavis.common.config_variants import reconcile_variants
from lavis.common.registry import registry
from lavis.common.typed import ConfigError, check_keys, from_dict


def _model_section(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    section = data.get("model") or {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"{source}: 'model' must be a mapping")
    return dict(section)


def model_config(
    arch: str,
    model_type: str | None = None,
    options: Iterable[str] = (),
    model_section: Mapping[str, Any] | None = None,
    source: str = "<code>",
) -> Any:
    """The typed config of model ``arch`` (see the module docstring for the layers)."""
    cli = parse_options(options)
    unknown = sorted(set(cli) - {"model"})
    if unknown:
        raise ConfigError(f"{OPTIONS_SOURCE}: only model.* keys apply here, got {unknown}")
    cli_model = _model_section(cli, OPTIONS_SOURCE)
    given = dict(model_section or {})
    arch = cli_model.get("arch", given.get("arch", arch))
    cls = registry.get("model", arch)
    schema = cls.config_class
    model_type = cli_model.get("model_type", given.get("model_type", model_type or schema().model_type))
    presets = getattr(cls, "PRETRAINED_MODEL_CONFIG_DICT", {})
    if model_type not in presets:
        raise ConfigError(f"{source}: unknown model_type {model_type!r} for {arch}; valid: {sorted(presets)}")
    preset_path = presets[model_type]
    layers = [
        (preset_path, _model_section(load_yaml(preset_path), preset_path)),
        (source, given),
        (OPTIONS_SOURCE, cli_model),
    ]
    reconcile_variants(schema, layers, "model")  # e.g. model.fusion: keys of the fusion in effect
    for layer_source, body in layers:
        check_keys(schema, body, layer_source, "model")
    merged = OmegaConf.to_container(OmegaConf.merge(*(OmegaConf.create(body) for _, body in layers)), resolve=True)
    merged.update(arch=arch, model_type=model_type)
    return from_dict(schema, merged, source, "model")


def model_config_from_yaml(path: str | Path, options: Iterable[str] = ()) -> Any:
    """The model config of an experiment or preset YAML (its ``model:`` section)."""
    section = _model_section(load_yaml(path), str(path))
    if "arch" not in section:
        raise ConfigError(f"{path}: 'model.arch' is required")
    return model_config(section["arch"], section.get("model_type"), options, section, str(path))
