"""Predictions + ground truth -> the evaluator's JSON (QVHighlights keys + Charades-STA R1/mIoU).

``evaluate_predictions(preds, records)`` is the one entry point (the training task and the
``mr_eval`` CLI both call it). A prediction is a dict in the QVHighlights submission format::

    {"qid": 2579, "pred_relevant_windows": [[0, 70, 0.99], [78, 146, 0.41]],   # best first
     "pred_saliency_scores": [-0.24, ...],   # optional: one score per 2 s clip
     "invalid": false}                       # optional: the text parser had to repair the output

Predictions are matched to records by ``str(qid)``. Records come from
``lavis.datasets.schema.load_annotations``, which renames qids that a file repeats (the Mr. BLIP /
SMS Charades-STA files) to ``"<qid>#<k>"``; predictions must use those ids.

Output keys: ``brief`` (named in ``lavis.tasks.metric_names``: the public evaluator's keys ``MR-full-mAP``, ``MR-full-mAP@0.5``,
``MR-full-mAP@0.75``, ``MR-{short,middle,long}-mAP``, ``MR-full-R1@0.5``, ``MR-full-R1@0.7``,
``HL-min-{Fair,Good,VeryGood}-{mAP,Hit1}`` when saliency is predicted; plus ``MR-full-R1@0.3``,
``MR-full-mIoU``, the Charades-STA names ``R1@0.3``, ``R1@0.5``, ``R1@0.7``, ``mIoU`` (the same
top-1 numbers: first listed window vs. best-overlapping GT window, each query once) and
``invalid_rate`` (a fraction, when predictions carry ``invalid``)); the per-bucket sections
``full``/``short``/``middle``/``long`` and ``HL-min-*`` as in the public evaluator;
``num_queries`` per bucket; ``validation`` (what ``lenient`` skipped or counted as a miss).
With ``detection`` (a protocol of ``lavis.tasks.metrics_detection``: ``unav100``,
``activitynet``), queries carrying a class ``label`` are also scored by that benchmark's
detection mAP: brief keys ``DET-mAP@<t>`` and ``DET-mAP``, full result under ``detection``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, Optional

import numpy as np

from lavis.datasets.schema import MomentRecord
from lavis.tasks.metric_names import (
    INVALID_RATE,
    MAP_IOUS,
    MEAN_IOU,
    QVH_MEAN_IOU,
    TOP1_IOUS,
    highlight,
    qvh_map,
    qvh_recall,
    top1_recall,
)
from lavis.tasks.metrics_detection import SECTION as DETECTION_SECTION
from lavis.tasks.metrics_detection import detection_metrics
from lavis.tasks.metrics_hl import SALIENCY_LEVELS, highlight_metrics
from lavis.tasks.metrics_mr import BUCKETS, moment_retrieval_metrics
from lavis.tasks.prediction_validation import (
    CheckedPrediction,
    PredictionError,
    ValidationReport,
    check_prediction,
    ground_truth_windows,
    saliency_ground_truth,
    usable_records,
)

logger = logging.getLogger(__name__)

__all__ = ["PredictionError", "evaluate_predictions"]


def _match(
    preds: Iterable[Any], records: Sequence[MomentRecord], report: ValidationReport, clip_length: float
) -> list[Optional[CheckedPrediction]]:
    """One checked prediction (or None) per record, in record order; problems go to ``report``."""
    index = {str(r.qid): i for i, r in enumerate(records)}
    if len(index) != len(records):
        raise ValueError("ground-truth qids are not unique; load them with lavis.datasets.schema.load_annotations")
    matched: list[Optional[CheckedPrediction]] = [None] * len(records)
    seen: set[str] = set()
    for n, pred in enumerate(preds):
        if not isinstance(pred, dict) or "qid" not in pred:
            report.add("malformed", f"prediction #{n}: expected an object with a 'qid' key, got {str(pred)[:80]}")
            continue
        key = str(pred["qid"])
        if key in seen:
            report.add("duplicate", f"qid {key}: more than one prediction (the first one is kept)")
            continue
        seen.add(key)
        if key not in index:
            report.add("unknown", f"qid {key}: not in the ground truth")
            continue
        record = records[index[key]]
        try:
            matched[index[key]] = check_prediction(pred, record, clip_length)
        except PredictionError as err:
            report.add("malformed", str(err))
    for record in records:
        if str(record.qid) not in seen:
            report.add("missing", f"qid {record.qid}: no prediction")
    return matched


def _brief(sections: dict, highlights: dict, invalid_rate: Optional[float]) -> dict:
    """The ``brief`` section, keyed by the names of ``metric_names``."""
    full = sections["full"]
    mr = {qvh_map(): full["MR-mAP"]["average"]}
    mr.update({qvh_map(iou=t): full["MR-mAP"][t] for t in MAP_IOUS})
    mr.update({qvh_map(bucket): sections[bucket]["MR-mAP"]["average"] for bucket in BUCKETS})
    mr.update({qvh_recall(t): full["MR-R1"][t] for t in TOP1_IOUS})
    mr[QVH_MEAN_IOU] = full["MR-mIoU"]
    brief = dict(sorted(mr.items()))  # the public evaluator sorts its MR keys
    for level in SALIENCY_LEVELS:
        values = highlights.get(f"HL-min-{level}")
        if values is not None:
            brief[highlight(level, "mAP")] = values["HL-mAP"]
            brief[highlight(level, "Hit1")] = values["HL-Hit1"]
    brief.update({top1_recall(t): full["MR-R1"][t] for t in TOP1_IOUS})
    brief[MEAN_IOU] = full["MR-mIoU"]
    if invalid_rate is not None:
        brief[INVALID_RATE] = invalid_rate
    return brief


def evaluate_predictions(
    preds: Iterable[Any],
    records: Sequence[MomentRecord],
    lenient: bool = False,
    clip_length: float = 2.0,
    problems: Sequence[str] = (),
    detection: Optional[str] = None,
) -> dict:
    """Metrics of ``preds`` (QVHighlights submission dicts) against ``records``.

    Strict (default): any duplicate/unknown/missing/malformed prediction raises
    ``PredictionError`` with a one-line message naming the first qid and its problem. ``lenient``
    skips bad predictions (keeping the first of duplicates), scores queries without a usable
    prediction as misses on every metric, and reports the counts under ``validation``.
    ``clip_length`` is the saliency clip length in seconds. ``problems`` are problems found
    before (e.g. unreadable lines of a file), counted as malformed. ``detection`` names a
    detection-mAP protocol to compute as well (every record must then carry a ``label``).
    """
    report = ValidationReport(lenient=lenient)
    for message in problems:
        report.add("malformed", message)
    records = usable_records(records, report)
    matched = _match(preds, records, report, clip_length)
    saliency_targets = saliency_ground_truth(records, matched, report, clip_length)
    report.raise_if_strict()
    if not records:
        raise PredictionError("no ground-truth query with windows to evaluate")

    gts = [ground_truth_windows(r) for r in records]
    windows = [m.windows if m is not None else np.zeros((0, 3)) for m in matched]
    sections, counts = moment_retrieval_metrics(windows, gts)
    highlights = {}
    if saliency_targets is not None:
        highlights = highlight_metrics([m.saliency if m is not None else None for m in matched], saliency_targets)

    flags = [m.invalid for m in matched if m is not None and m.invalid is not None]
    invalid_rate = round(sum(flags) / len(flags), 4) if flags else None
    out: dict[str, Any] = {"brief": _brief(sections, highlights, invalid_rate)}
    out.update(sorted({**sections, **highlights}.items()))  # public order: brief, then sorted keys
    if detection is not None:
        out[DETECTION_SECTION], brief = detection_metrics(records, windows, detection)
        out["brief"].update(brief)
    out["num_queries"] = counts
    if report.counts:
        out["validation"] = report.to_json()
        logger.warning("evaluation: %s", report.summary())
    return out
