"""``python -m lavis.train --cfg-path X [--options k=v ...]``"""

from __future__ import annotations

from lavis.common.cli import exit_process, experiment_parser
from lavis.experiment import run_experiment


def main(argv: list[str] | None = None) -> int:
    args = experiment_parser("Train a moment-retrieval model from an experiment YAML.").parse_args(argv)
    return run_experiment(args.cfg_path, args.options, evaluate_only=False)


if __name__ == "__main__":
    exit_process(main())
