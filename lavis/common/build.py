"""Build every registered object an experiment config names (task, datasets, model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lavis.common.config import ExperimentConfig
from lavis.common.registry import registry


@dataclass
class Experiment:
    task: Any
    datasets: dict[str, dict[str, Any]]  # builder name -> split -> dataset
    model: Any


def build_task(cfg: ExperimentConfig) -> Any:
    return registry.get("task", cfg.run.task).setup_task(cfg)


def build_datasets(cfg: ExperimentConfig) -> dict[str, dict[str, Any]]:
    return {name: registry.get("builder", name)(ds_cfg).build_datasets() for name, ds_cfg in cfg.datasets.items()}


def build_model(cfg: ExperimentConfig) -> Any:
    return registry.get("model", cfg.model.arch).from_config(cfg.model)


def build_experiment(cfg: ExperimentConfig) -> Experiment:
    task = build_task(cfg)
    datasets = build_datasets(cfg)
    # Random initialisations (the tiny model, fresh fusion/LoRA weights) follow run.seed.
    torch.manual_seed(cfg.run.seed)
    model = build_model(cfg)
    return Experiment(task=task, datasets=datasets, model=model)
