"""The run of an experiment, wired on the top floor: config -> task, datasets, model, runner ->
train or evaluate (``python -m lavis.train`` / ``python -m lavis.evaluate``).

The names in a config (``run.task``, ``datasets.<name>``, ``model.arch``, ``run.runner``) are
looked up in the registry, which imports the package that registers them on first use; the
imports below are what this wiring depends on.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from lavis.common.cli import cli_errors
from lavis.common.config import ExperimentConfig, load_experiment
from lavis.common.registry import registry
from lavis.common.run_dir import RunDir
from lavis.common.run_info import missing_data
from lavis.datasets.builders import build_datasets
from lavis.inference.query_check import check_training_queries
from lavis.models import build_model
from lavis.runners.batch_layout import BatchLayout


@dataclass
class Experiment:
    """What a run is made of: the task, the datasets (builder name -> split -> dataset) and the model."""

    task: Any
    datasets: dict[str, dict[str, Any]]  # builder name -> split -> dataset
    model: Any


def build_experiment(cfg: ExperimentConfig) -> Experiment:
    """The task, datasets and model an experiment config names (the model's random parts seeded
    with ``run.seed``)."""
    task = registry.get("task", cfg.run.task).setup_task(cfg)
    datasets = build_datasets(cfg.datasets)
    # Random initialisations (the tiny model, fresh fusion/LoRA weights) follow run.seed.
    torch.manual_seed(cfg.run.seed)
    model = build_model(cfg.model)
    check_training_queries(model, datasets)  # cut or unreadable queries, counted per split
    return Experiment(task=task, datasets=datasets, model=model)


def run_config(run_dir: str | Path, options: Sequence[str] = (), data_roots: Sequence[str] = ()) -> ExperimentConfig:
    """The config that evaluates a trained run in its own folder (``lavis.evaluate --run-dir``):
    its config with its data where the run recorded it (``data_roots``: ``--data-root`` values),
    ``run.output_dir`` the folder and ``run.resume_ckpt_path`` its best checkpoint (``options``
    may set others)."""
    run = RunDir(run_dir).require()
    defaults = [f"run.output_dir={run.path}", f"run.resume_ckpt_path={run.find_checkpoint()}"]
    cfg = run.load_config([*defaults, *options], data_roots)
    for name, dataset in cfg.datasets.items():
        for path in dataset.required_paths() if hasattr(dataset, "required_paths") else []:
            if not path.exists():
                raise missing_data(f"datasets.{name}: {path.name}", path)
    return cfg


@cli_errors
def run_experiment(
    cfg_path: Optional[str],
    options: Sequence[str],
    evaluate_only: bool,
    run_dir: Optional[str] = None,
    data_roots: Sequence[str] = (),
) -> int:
    """Load the config (an experiment YAML, or a trained run's folder), build what it names and
    run the configured runner; prints each tested split's brief metrics. Exit statuses as in
    ``cli_errors`` (a run stopped by SIGTERM/SIGINT has saved a resumable checkpoint)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = run_config(run_dir, options, data_roots) if run_dir else load_experiment(cfg_path, options)
    if evaluate_only:
        cfg.run.evaluate = True
    if not cfg.run.evaluate:  # a global batch the processes cannot share: refused before the model is built
        BatchLayout.of(cfg.run, int(os.environ.get("WORLD_SIZE", "1")))
    experiment = build_experiment(cfg)
    runner = registry.get("runner", cfg.run.runner)(cfg, experiment.task, experiment.model, experiment.datasets)
    try:
        results = runner.train()
    finally:
        runner.strategy.teardown()  # destroy the process group on every way out
    if runner.strategy.is_main:
        for split, metrics in results.items():
            print(f"{split}: {json.dumps(metrics.get('brief', metrics))}")
    return 0
