"""``python -m lavis.train --cfg-path X [--options k=v ...]``"""

from __future__ import annotations

from lavis.common.cli import cli_errors, exit_process, experiment_parser
from lavis.experiment import run_experiment


@cli_errors  # a mistake on the command line too: one error line
def main(argv: list[str] | None = None) -> int:
    """Train the model an experiment YAML describes, validate it, keep the best checkpoint and
    evaluate that on the test split (``torchrun`` runs this on every rank).

    Args:
        argv: the command line without the program (``sys.argv[1:]`` when None):
            ``--cfg-path X`` and ``--options key.path=value ...`` overriding the YAML.

    Returns:
        The exit status: 0, 2 after one ``error:`` line for a user error (a bad config or data),
        ``128 + signal`` for a run stopped by SIGTERM/SIGINT (it saved a resumable checkpoint).
        Writes ``run.output_dir``: ``config.yaml``, checkpoints, ``metrics.jsonl``,
        ``preds_<split>.jsonl`` and ``metrics_<split>.json``; prints each test split's brief.

    Example (``data``: a folder written by ``python -m mr_data.synthetic``, ``tmp``: a folder):
        >>> main(["--cfg-path", "configs/experiments/synthetic/sms_tiny.yaml", "--options",
        ...       f"datasets.synthetic_av.root={data}", f"run.output_dir={tmp}/run", "run.max_iters=1",
        ...       "run.batch_size_eval=4", "run.num_workers=0", "datasets.synthetic_av.num_frames=4",
        ...       "model.generation.num_beams=2", "model.generation.max_new_tokens=8"])
        test: {"MR-full-R1@0.3": ...}
        0
    """
    args = experiment_parser("Train a moment-retrieval model from an experiment YAML.").parse_args(argv)
    return run_experiment(args.cfg_path, args.options, evaluate_only=False)


if __name__ == "__main__":
    exit_process(main())
