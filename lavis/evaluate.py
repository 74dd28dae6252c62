"""``python -m lavis.evaluate --cfg-path X [--options k=v ...]``, or a trained run in its own
folder from any directory: ``python -m lavis.evaluate --run-dir RUN [--data-root DIR]`` (its
config, its data where it trained, its best checkpoint; ``preds_*`` and ``metrics_*`` go into
``RUN``)."""

from __future__ import annotations

from lavis.common.cli import cli_errors, exit_process, experiment_parser
from lavis.experiment import run_experiment


@cli_errors  # a mistake on the command line too: one error line
def main(argv: list[str] | None = None) -> int:
    """Evaluate a model on the validation and test splits, without training: a trained run
    (``--run-dir RUN``: its config, its recorded data and its best weights) or an experiment YAML
    (``--cfg-path X``, ``run.resume_ckpt_path`` naming the weights).

    Args:
        argv: the command line without the program (``sys.argv[1:]`` when None): ``--run-dir RUN``
            or ``--cfg-path X``, ``--data-root [NAME=]DIR`` (the run's data moved there) and
            ``--options key.path=value ...``.

    Returns:
        The exit status (0, or 2 after one ``error:`` line, as ``lavis.train``). Writes
        ``preds_<split>.jsonl`` and ``metrics_<split>.json`` to ``run.output_dir`` and prints
        each split's brief.

    Example (``run_dir``: a trained run's folder, evaluated into itself, from any directory):
        >>> main(["--run-dir", str(run_dir)])
        val: {"MR-full-R1@0.3": ...}
        test: {"MR-full-R1@0.3": ...}
        0
    """
    parser = experiment_parser("Evaluate a moment-retrieval model from an experiment YAML or a trained run.", True)
    args = parser.parse_args(argv)
    if args.data_root and not args.run_dir:
        parser.error("--data-root goes with --run-dir (with --cfg-path, set datasets.<name>.root in --options)")
    return run_experiment(args.cfg_path, args.options, True, run_dir=args.run_dir, data_roots=args.data_root)


if __name__ == "__main__":
    exit_process(main())
