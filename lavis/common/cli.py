"""Argument parsing shared by ``python -m lavis.train`` and ``python -m lavis.evaluate``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import NoReturn


def experiment_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cfg-path", required=True, help="experiment YAML (model/datasets/run)")
    parser.add_argument(
        "--options",
        nargs="+",
        action="extend",  # several --options flags add up (the run scripts pass their own)
        default=[],
        metavar="KEY=VALUE",
        help="override config keys, e.g. run.max_epoch=3 model.lora.r=16",
    )
    return parser


def run_entry_point(cfg_path: str, options: list[str], evaluate_only: bool) -> int:
    """Validate the config, build what it names and run the configured runner.

    Config and input errors become one clear line and exit code 2; a run stopped by
    SIGTERM/SIGINT exits 128 + signal after saving a resumable checkpoint.
    """
    from lavis.common.build import build_experiment
    from lavis.common.config import load_experiment
    from lavis.common.registry import RegistryError, registry
    from lavis.common.typed import ConfigError
    from lavis.datasets.schema import AnnotationError
    from lavis.models.blip2_mr.checkpoint import WeightsMismatchError
    from lavis.runners.runner import TrainingInterrupted

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_experiment(cfg_path, options)
        if evaluate_only:
            cfg.run.evaluate = True
        experiment = build_experiment(cfg)
        runner = registry.get("runner", cfg.run.runner)(cfg, experiment.task, experiment.model, experiment.datasets)
    # Building fails on what the user gave (config, annotations, weights, folders): one line, exit 2.
    except (ConfigError, RegistryError, AnnotationError, FileNotFoundError, WeightsMismatchError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        results = runner.train()
    except TrainingInterrupted as stop:
        print(f"stopped: {stop}", file=sys.stderr)
        return 128 + int(stop.signum)
    finally:
        runner.strategy.teardown()  # destroy the process group on every way out
    if runner.strategy.is_main:
        for split, metrics in results.items():
            print(f"{split}: {json.dumps(metrics.get('brief', metrics))}")
    return 0


def exit_process(code: int) -> NoReturn:
    """Exit with ``code``; a torchrun rank (``WORLD_SIZE`` > 1) skips interpreter finalization.

    After a finished distributed run (process group destroyed, hooks closed, files written),
    finalization sometimes aborted a rank from a C++ thread of the distributed stack (SIGABRT,
    "terminate called without an active exception"): about 1 in 4 two-process CPU runs on a loaded
    machine, never with ``os._exit`` (16 of 16). torchrun reports such a rank as a failed job.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
