"""The models (``blip2_mr``) and the fusions, each registered under the name a config uses."""

from __future__ import annotations

from typing import Any

from lavis.common.registry import registry


def build_model(model_cfg: Any) -> Any:
    """The model registered as ``model_cfg.arch``, built from its typed config (the ``model:``
    section of an ``ExperimentConfig``); pretrained parts load from the paths it names."""
    return registry.get("model", model_cfg.arch).from_config(model_cfg)
