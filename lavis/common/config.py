"""Experiment configs: LAVIS-style YAML (``model:``, ``datasets:``, ``run:``) -> typed dataclasses.

Layers, later wins:
  1. the registered class's dataclass defaults;
  2. its preset YAML (``configs/models/...`` for ``model_type``, ``configs/datasets/<name>/...``);
  3. the experiment YAML, after the experiment YAML(s) it extends (``base: sms.yaml``), if any;
  4. ``--options key.path=value ...`` from the command line.
Each layer is checked for unknown keys against the schema and errors name that layer's file.
``${...}`` interpolations are resolved after merging. Each section's schema is the
``config_class`` of the registered class it names (``model.arch``, ``datasets.<name>``,
``run.runner``), so this module knows no section's fields. Then the task class checks the run
section (``check_run_config``: ``run.valid_metric`` must be a metric it reports) and the model
class checks each dataset's inputs against its config (``lavis/common/inputs.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from lavis.common.config_variants import reconcile_variants
from lavis.common.files import not_a_file
from lavis.common.registry import registry
from lavis.common.typed import ConfigError, check_keys, from_dict, to_dict

REPO_ROOT = Path(__file__).resolve().parents[2]  # the source tree, when running from it
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # lavis/: an installed copy has lavis/configs/
SECTIONS = ("model", "datasets", "run")
OPTIONS_SOURCE = "--options"
BASE_KEY = "base"  # an experiment YAML may extend another: `base: sms.yaml`
DEFAULT_RUNNER = "runner_base"


@dataclasses.dataclass
class ExperimentConfig:
    """A loaded experiment: each section as the typed config of the class it names."""

    model: Any  # the model class's config_class instance
    datasets: dict[str, Any]  # builder name -> that builder's config_class instance
    run: Any  # the runner class's config_class instance
    cfg_path: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The three sections as plain YAML-ready dicts (what ``save_config`` writes)."""
        return {"model": to_dict(self.model), "datasets": to_dict(self.datasets), "run": to_dict(self.run)}


def resolve_path(path: str | Path) -> Path:
    """A config path as given (absolute or relative to the cwd), else relative to the source
    tree, else (``configs/...``) inside the installed package, which ships ``configs/`` as
    ``lavis/configs``. Unfound paths come back as given, for the caller's error."""
    path = Path(path)
    if path.is_absolute() or path.exists():
        return path
    for root in (REPO_ROOT, PACKAGE_DIR):
        if (root / path).exists():
            return root / path
    return path


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The YAML file ``path`` (found as ``resolve_path`` finds it) as a dict, unresolved; a missing or
    malformed file is a ``ConfigError`` naming it."""
    resolved = resolve_path(path)
    inside = resolved / "config.yaml"
    hint = f" (its run's config is {inside}; --run-dir takes the folder)" if inside.is_file() else " (give a YAML file)"
    problem = not_a_file(resolved, "config file", hint)
    if problem:
        raise ConfigError(problem.replace(str(resolved), str(path)))
    try:
        data = OmegaConf.to_container(OmegaConf.load(resolved), resolve=False)
    except Exception as err:  # omegaconf/yaml raise several types; all mean "unreadable YAML"
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def parse_options(options: Iterable[str] | None) -> dict[str, Any]:
    """``["run.max_epoch=3", "model.lora.r=16"]`` -> nested dict (values parsed as YAML)."""
    options = list(options or [])
    for opt in options:
        if "=" not in opt:
            raise ConfigError(f"{OPTIONS_SOURCE}: '{opt}' is not of the form key.path=value")
    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist(options), resolve=False)
    except Exception as err:
        raise ConfigError(f"{OPTIONS_SOURCE}: cannot parse {options}: {err}") from None


def _section(data: Mapping[str, Any], key: str, source: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: '{key}' must be a mapping, got {value!r}")
    return dict(value)


def _leaf_paths(data: Any, prefix: str = "") -> Iterable[str]:
    if isinstance(data, Mapping) and data:
        for key, value in data.items():
            yield from _leaf_paths(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix


def _preset_layer(path: str, section: str, name: str | None = None) -> tuple[str, dict[str, Any]]:
    """Read a preset YAML whose body sits under ``model:`` or ``datasets: <name>:``."""
    data = load_yaml(path)
    body = _section(data, section, path)
    if name is not None:
        body = _section(body, name, path)
    return path, body


def experiment_chain(cfg_path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """The experiment YAML and those it extends through ``base:``, the deepest base first, each
    as ``(source, sections)``. A base path is relative to the extending file's folder (else
    resolved like ``--cfg-path``)."""
    chain: list[tuple[str, dict[str, Any]]] = []
    seen: set[Path] = set()
    path = Path(cfg_path)
    while True:
        resolved = resolve_path(path).resolve()
        if resolved in seen:
            raise ConfigError(f"{cfg_path}: the '{BASE_KEY}' chain comes back to {path}")
        seen.add(resolved)
        data = load_yaml(path)
        base = data.pop(BASE_KEY, None)
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"{path}: unknown top-level key(s) {unknown}; valid: {[BASE_KEY, *SECTIONS]}")
        chain.append((str(path), data))
        if base is None:
            return chain[::-1]
        if not isinstance(base, str):
            raise ConfigError(f"{path}: '{BASE_KEY}' must be the path of the experiment YAML it extends")
        beside = resolved.parent / base
        path = beside if beside.is_file() else Path(base)


def load_experiment(cfg_path: str | Path, options: Iterable[str] | None = None) -> ExperimentConfig:
    """The typed, checked config of an experiment YAML (see the module docstring for the layers).

    Args:
        cfg_path: the experiment YAML (or a run's ``config.yaml``).
        options: ``["key.path=value", ...]`` overriding it (``--options``).

    Returns:
        An ``ExperimentConfig``. Any unknown key, bad value or contradiction between sections
        raises ``ConfigError`` naming the file (or ``--options``) and the key.

    Example:
        >>> cfg = load_experiment("configs/experiments/synthetic/sms_tiny.yaml", ["run.max_epoch=2"])
        >>> cfg.model.arch, list(cfg.datasets), cfg.run.max_epoch
        ('blip2_mr', ['synthetic_av'], 2)
    """
    source = str(cfg_path)
    chain = experiment_chain(cfg_path)
    # The merged experiment, to find which model, datasets and runner it names.
    try:
        experiment = OmegaConf.to_container(OmegaConf.merge(*(OmegaConf.create(d) for _, d in chain)), resolve=False)
    except Exception as err:  # omegaconf raises several types; all mean "these files do not merge"
        raise ConfigError(f"{source}: cannot merge it with the experiment(s) it extends: {err}") from None
    cli = parse_options(options)
    unknown = sorted(set(cli) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{OPTIONS_SOURCE}: unknown top-level key(s) {unknown}; valid: {list(SECTIONS)}")

    # (source, {"model": ..., "datasets": {...}, "run": ...}) in merge order.
    layers: list[tuple[str, dict[str, Any]]] = []
    runner = _section(cli, "run", OPTIONS_SOURCE).get("runner", _section(experiment, "run", source).get("runner"))
    schemas: dict[str, type] = {"run": registry.get("runner", runner or DEFAULT_RUNNER).config_class}

    model_exp = _section(experiment, "model", source)
    model_cli = _section(cli, "model", OPTIONS_SOURCE)
    arch = model_cli.get("arch", model_exp.get("arch"))
    if arch is None:
        raise ConfigError(f"{source}: 'model.arch' is required; registered models: {registry.names('model')}")
    model_cls = registry.get("model", arch)
    schemas["model"] = model_cls.config_class
    model_type = model_cli.get("model_type", model_exp.get("model_type", model_cls.config_class().model_type))
    presets = getattr(model_cls, "PRETRAINED_MODEL_CONFIG_DICT", {})
    if model_type not in presets:
        raise ConfigError(f"{source}: unknown model_type {model_type!r} for {arch}; valid: {sorted(presets)}")
    preset_source, preset_body = _preset_layer(presets[model_type], "model")
    layers.append((preset_source, {"model": preset_body}))

    dataset_names = list(_section(experiment, "datasets", source)) + [
        n for n in _section(cli, "datasets", OPTIONS_SOURCE) if n not in _section(experiment, "datasets", source)
    ]
    for name in dataset_names:
        builder_cls = registry.get("builder", name)
        schemas[f"datasets.{name}"] = builder_cls.config_class
        default_path = getattr(builder_cls, "DATASET_CONFIG_DICT", {}).get("default")
        if default_path:
            preset_source, body = _preset_layer(default_path, "datasets", name)
            layers.append((preset_source, {"datasets": {name: body}}))

    layers.extend(chain)
    layers.append((OPTIONS_SOURCE, cli))
    # The classes' own defaults go first, so `${run.seed}` and friends resolve even when no
    # YAML spells the key out.
    defaults = {
        "model": to_dict(schemas["model"]()),
        "datasets": {name: to_dict(schemas[f"datasets.{name}"]()) for name in dataset_names},
        "run": to_dict(schemas["run"]()),
    }
    layers.insert(0, ("class defaults", defaults))

    # A section chosen by name (model.fusion): each layer checked against the variant in effect
    # there; keys set for a variant that a later layer replaces are dropped.
    for key, schema in schemas.items():
        section, _, name = key.partition(".")
        bodies = [
            (src, _section(layer, section, src).get(name) if name else layer.get(section)) for src, layer in layers
        ]
        reconcile_variants(schema, bodies, key)
    provenance: dict[str, str] = {}
    for layer_source, layer in layers:
        for section in SECTIONS:
            body = _section(layer, section, layer_source)
            if section == "datasets":
                for name, ds_body in body.items():
                    check_keys(schemas[f"datasets.{name}"], ds_body or {}, layer_source, f"datasets.{name}")
            else:
                check_keys(schemas[section], body, layer_source, section)
        for path in _leaf_paths(layer):
            provenance[path] = layer_source

    try:
        merged = OmegaConf.merge(*(OmegaConf.create(layer) for _, layer in layers))
        resolved = OmegaConf.to_container(merged, resolve=True)
    except Exception as err:
        raise ConfigError(f"{source}: cannot merge/resolve the config: {err}") from None

    # run first: other sections interpolate its values (a dataset's seed: ${run.seed}), so a bad
    # one is reported under the key that holds it.
    run_cfg = from_dict(schemas["run"], resolved.get("run"), source, "run", provenance)
    model_cfg = from_dict(schemas["model"], resolved.get("model"), source, "model", provenance)
    datasets_cfg = {
        name: from_dict(schemas[f"datasets.{name}"], body or {}, source, f"datasets.{name}", provenance)
        for name, body in (resolved.get("datasets") or {}).items()
    }
    task_cls = registry.get("task", run_cfg.task)  # fail now, not after building a model, on a bad task name
    check_run_config = getattr(task_cls, "check_run_config", None)  # e.g. run.valid_metric: a name it reports
    if check_run_config is not None:
        check_run_config(run_cfg)
    check_inputs = getattr(model_cls, "check_inputs", None)
    for name, ds_cfg in datasets_cfg.items():
        if check_inputs is not None and hasattr(ds_cfg, "inputs"):
            check_inputs(model_cfg, ds_cfg.inputs(f"datasets.{name}"))
    return ExperimentConfig(model=model_cfg, datasets=datasets_cfg, run=run_cfg, cfg_path=source)
