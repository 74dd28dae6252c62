"""Argument parsing shared by ``python -m lavis.train`` and ``python -m lavis.evaluate``."""

from __future__ import annotations

import argparse
import sys


def experiment_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cfg-path", required=True, help="experiment YAML (model/datasets/run)")
    parser.add_argument(
        "--options",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override config keys, e.g. run.max_epoch=3 model.lora.r=16",
    )
    return parser


def run_entry_point(cfg_path: str, options: list[str], evaluate_only: bool) -> int:
    """Validate the config and build what it names; errors become one clear line and exit 2."""
    from lavis.common.build import build_experiment
    from lavis.common.config import load_experiment
    from lavis.common.registry import RegistryError
    from lavis.common.typed import ConfigError

    try:
        cfg = load_experiment(cfg_path, options)
        if evaluate_only:
            cfg.run.evaluate = True
        experiment = build_experiment(cfg)
    except (ConfigError, RegistryError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"config {cfg_path} is valid and built: task={type(experiment.task).__name__}, "
        f"model={type(experiment.model).__name__}, datasets={sorted(experiment.datasets)}",
        file=sys.stderr,
    )
    # The training/evaluation loop is the runner's job (issue #5); until it lands we stop here
    # rather than pretend to train.
    print("error: no runner is implemented yet; nothing was trained or evaluated", file=sys.stderr)
    return 3
