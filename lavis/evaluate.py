"""``python -m lavis.evaluate --cfg-path X [--options k=v ...]``, or a trained run in its own
folder from any directory: ``python -m lavis.evaluate --run-dir RUN [--data-root DIR]`` (its
config, its data where it trained, its best checkpoint; ``preds_*`` and ``metrics_*`` go into
``RUN``)."""

from __future__ import annotations

from lavis.common.cli import exit_process, experiment_parser
from lavis.experiment import run_experiment


def main(argv: list[str] | None = None) -> int:
    parser = experiment_parser("Evaluate a moment-retrieval model from an experiment YAML or a trained run.", True)
    args = parser.parse_args(argv)
    if args.data_root and not args.run_dir:
        parser.error("--data-root goes with --run-dir (with --cfg-path, set datasets.<name>.root in --options)")
    return run_experiment(args.cfg_path, args.options, True, run_dir=args.run_dir, data_roots=args.data_root)


if __name__ == "__main__":
    exit_process(main())
