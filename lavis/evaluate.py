"""``python -m lavis.evaluate --cfg-path X [--options k=v ...]``"""

from __future__ import annotations

from lavis.common.cli import exit_process, experiment_parser, run_entry_point


def main(argv: list[str] | None = None) -> int:
    """Evaluate a model on the validation and test splits of an experiment, without training
    (``run.resume_ckpt_path`` names the weights; a trained run's ``config.yaml`` is an experiment).

    Args:
        argv: the command line without the program (``sys.argv[1:]`` when None):
            ``--cfg-path X`` and ``--options key.path=value ...``.

    Returns:
        The exit status (0, or 2 after one ``error:`` line, as ``lavis.train``). Writes
        ``preds_<split>.jsonl`` and ``metrics_<split>.json`` to ``run.output_dir`` and prints
        each split's brief.

    Example (``run_dir``: a trained run's folder, ``tmp``: a folder):
        >>> main(["--cfg-path", f"{run_dir}/config.yaml", "--options", f"run.output_dir={tmp}/eval",
        ...       f"run.resume_ckpt_path={run_dir}/checkpoint_best.pt"])
        val: {"MR-full-R1@0.3": ...}
        test: {"MR-full-R1@0.3": ...}
        0
    """
    args = experiment_parser("Evaluate a moment-retrieval model from an experiment YAML.").parse_args(argv)
    return run_entry_point(args.cfg_path, args.options, evaluate_only=True)


if __name__ == "__main__":
    exit_process(main())
