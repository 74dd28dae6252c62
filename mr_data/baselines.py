"""Baselines that see no video: what a model must beat to show it grounds anything.

The duration-only guess learns one window *relative* to the video's length on the training
split (the ``[a, b]`` fractions that maximize R1@0.5 there, ties broken by mean IoU) and predicts
``[a * duration, b * duration]`` for every test query. IoU is scale-free, so relative windows can
be fitted directly against ``window / duration``.

    python -m mr_data.baselines --train train.jsonl --test test.jsonl [--out preds.jsonl]

writes predictions in the QVHighlights submission format and logs their scores by the project's
evaluator (``lavis.tasks.metrics.evaluate_predictions``) when the test file has labels.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np

from lavis.common.cli import ArgumentParser, cli_errors, finite_float
from lavis.common.files import atomic_write_text
from lavis.common.windows import pairwise_temporal_iou
from lavis.datasets.schema import MomentRecord, load_annotations
from lavis.tasks.metrics import evaluate_predictions

logger = logging.getLogger(__name__)
CANDIDATE_CHUNK = 64  # candidate windows scored at once: bounds memory on 12k-query splits


def _relative_windows(records: Sequence[MomentRecord]) -> tuple[np.ndarray, np.ndarray]:
    """float64 ``[G, 2]`` windows / duration, and int64 ``[R]`` offsets of each record's first
    window (records without windows are dropped)."""
    rows, offsets = [], []
    for record in records:
        if not record.windows:
            continue
        offsets.append(len(rows))
        rows.extend((s / record.duration, e / record.duration) for s, e in record.windows)
    if not rows:
        raise ValueError("no record with a ground-truth window to fit the duration-only guess on")
    return np.asarray(rows, dtype=np.float64), np.asarray(offsets, dtype=np.int64)


def fit_relative_window(records: Sequence[MomentRecord], step: float = 0.02) -> tuple[float, float]:
    """The fractions ``(a, b)``, ``0 <= a < b <= 1`` on a grid of ``step``, whose window
    ``[a*D, b*D]`` gets the most top-1 hits at IoU >= 0.5 over ``records`` (a query with several
    ground-truth windows counts its best one); ties go to the higher mean IoU."""
    gts, offsets = _relative_windows(records)
    grid = np.round(np.arange(0.0, 1.0 + step / 2, step), 10)
    starts, ends = np.meshgrid(grid, grid, indexing="ij")
    keep = starts < ends
    candidates = np.stack([starts[keep], ends[keep]], axis=1)  # [C, 2]
    hits, mean_iou = [], []
    for first in range(0, len(candidates), CANDIDATE_CHUNK):
        iou = pairwise_temporal_iou(candidates[first : first + CANDIDATE_CHUNK], gts)  # [c, G]
        best = np.maximum.reduceat(iou, offsets, axis=1)  # [c, R]: best window per record
        hits.append((best >= 0.5).mean(axis=1))
        mean_iou.append(best.mean(axis=1))
    order = np.lexsort((-np.concatenate(mean_iou), -np.concatenate(hits)))
    a, b = candidates[order[0]]
    return float(a), float(b)


def duration_prior_predictions(
    train_records: Sequence[MomentRecord], test_records: Sequence[MomentRecord], step: float = 0.02
) -> list[dict]:
    """``[{"qid", "pred_relevant_windows": [[start, end, score]]}]`` for ``test_records``, from
    the relative window fitted on ``train_records`` (score 1.0: there is only one guess)."""
    a, b = fit_relative_window(train_records, step)
    logger.info("duration-only guess: [%.2f, %.2f] of each video's duration", a, b)
    return [
        {"qid": r.qid, "pred_relevant_windows": [[round(a * r.duration, 3), round(b * r.duration, 3), 1.0]]}
        for r in test_records
    ]


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """``python -m mr_data.baselines``: the duration-only guess fitted on ``--train``, scored on ``--test``."""
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, type=Path, help="annotations to fit on")
    parser.add_argument("--test", required=True, type=Path, help="annotations to predict")
    parser.add_argument("--out", type=Path, help="write predictions here (JSON Lines)")
    parser.add_argument("--step", type=finite_float, default=0.02, help="grid of the relative window")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    test = load_annotations(args.test, allow_no_windows=True)
    predictions = duration_prior_predictions(load_annotations(args.train), test, args.step)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, "".join(json.dumps(p) + "\n" for p in predictions))
        logger.info("wrote %d predictions to %s", len(predictions), args.out)
    if any(r.windows for r in test):
        brief = evaluate_predictions(predictions, [r for r in test if r.windows])["brief"]
        logger.info("duration-only guess on %s: %s", args.test, json.dumps(brief))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
