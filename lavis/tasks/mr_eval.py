"""Evaluate a moment-retrieval prediction file (the QVHighlights evaluator's command line).

    python -m lavis.tasks.mr_eval --submission_path preds.jsonl --gt_path GT --save_path metrics.json

``GT`` is a QVHighlights / normalized JSON Lines file or a Mr. BLIP / SMS JSON list. Files that
repeat qids (the Mr. BLIP / SMS Charades-STA files: one qid per video) get unique ids
``"<qid>#<k>"`` (k = order among the records sharing that qid in the file, from 0), and the
predictions must use those ids. The predictions are JSON Lines (or a JSON list) of
``{"qid", "pred_relevant_windows": [[start, end, score], ...] best first,
"pred_saliency_scores": [...] (optional), "invalid": bool (optional)}``, matched by ``str(qid)``.
See ``lavis.tasks.metrics`` for the output keys and ``lavis.tasks.prediction_validation`` for what a
prediction may contain. ``--detection unav100`` (or ``activitynet``) adds that benchmark's detection
mAP for ground truth whose queries carry a class ``label`` (``lavis.tasks.metrics_detection``).
Exit status: 0 on success, 2 on a bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from lavis.common.cli import ArgumentParser, cli_errors, finite_float
from lavis.common.files import atomic_write_text, not_a_file, read_text
from lavis.datasets.schema import load_annotations
from lavis.tasks.metrics import PredictionError, evaluate_predictions
from lavis.tasks.metrics_detection import PROTOCOLS


def read_predictions(path: str | Path, lenient: bool) -> tuple[list[Any], list[str]]:
    """Objects of a JSON Lines (or JSON list) file and the problems of unreadable lines.

    Strict: an unreadable line raises PredictionError naming the file and the line.
    """
    numbered, problems = numbered_predictions(path, lenient)
    return [pred for _, pred in numbered], problems


def numbered_predictions(path: str | Path, lenient: bool) -> tuple[list[tuple[str, Any]], list[str]]:
    """``read_predictions`` with where each object is (``"<file>: line N"``, or ``index N`` of a
    JSON list), for messages about its content."""
    path = Path(path)
    if not path.is_file():
        raise PredictionError(not_a_file(path, "prediction file"))
    text = read_text(path)
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise PredictionError(f"{path}: not valid JSON: {err}") from None
        if not isinstance(items, list):
            raise PredictionError(f"{path}: expected a JSON list of predictions or JSON Lines")
        return [(f"{path}: index {i}", pred) for i, pred in enumerate(items)], []
    preds, problems = [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            preds.append((f"{path}: line {lineno}", json.loads(line)))
        except json.JSONDecodeError as err:
            message = f"{path}: line {lineno}: not valid JSON: {err}"
            if not lenient:
                raise PredictionError(message) from None
            problems.append(message)
    return preds, problems


def brief_table(metrics: dict) -> str:
    """The ``brief`` numbers as an aligned two-column table, plus the number of queries."""
    brief = metrics["brief"]
    width = max(len(k) for k in brief)
    lines = [f"{key:<{width}}  {'-' if value is None else value}" for key, value in brief.items()]
    counts = metrics["num_queries"]
    lines.append(
        f"queries evaluated: {counts['full']} "
        f"(short {counts['short']}, middle {counts['middle']}, long {counts['long']})"
    )
    if "validation" in metrics:
        summary = ", ".join(f"{n} {kind}" for kind, n in metrics["validation"]["counts"].items())
        lines.append(f"lenient: {summary}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The ``lavis-mr-eval`` command line (the public QVHighlights evaluator's arguments)."""
    parser = ArgumentParser(
        prog="lavis-mr-eval",
        description=__doc__.split("\n\n")[0],
        epilog="Ground-truth files that repeat a qid get unique ids '<qid>#<k>' (k = order within the "
        "file among records with that qid); predictions must use them.",
    )
    parser.add_argument("--submission_path", required=True, help="predictions, JSON Lines")
    parser.add_argument("--gt_path", required=True, help="ground truth: QVHighlights JSONL or Mr. BLIP/SMS JSON list")
    parser.add_argument("--save_path", help="where to write the metrics JSON (optional)")
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="skip bad/duplicate/unknown predictions and count queries without a usable prediction "
        "as misses, reporting the counts, instead of failing",
    )
    parser.add_argument(
        "--clip_length", type=finite_float, default=2.0, help="saliency clip length in seconds (default 2)"
    )
    parser.add_argument(
        "--detection",
        choices=sorted(PROTOCOLS),
        help="also compute this benchmark's detection mAP over class-labelled queries "
        "(unav100: tIoU 0.1:0.1:0.9; activitynet: 0.5:0.05:0.95)",
    )
    return parser


@cli_errors
def main(argv: Optional[Sequence[str]] = None) -> int:
    """``lavis-mr-eval``: score a predictions file against a ground truth, print the brief and optionally
    save the full metrics; exit status 0, or 2 after one ``error:`` line."""
    args = build_parser().parse_args(argv)
    records = load_annotations(args.gt_path)
    preds, problems = read_predictions(args.submission_path, args.lenient)
    metrics = evaluate_predictions(
        preds,
        records,
        lenient=args.lenient,
        clip_length=args.clip_length,
        problems=problems,
        detection=args.detection,
    )
    if args.save_path:
        atomic_write_text(args.save_path, json.dumps(metrics, indent=4))
    sys.stdout.write(brief_table(metrics) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
