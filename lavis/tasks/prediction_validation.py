"""Validation of predictions and ground truth before scoring, strict or lenient.

What a prediction may contain (decided here, documented for users of ``mr_eval``):
- ``pred_relevant_windows``: a list (possibly empty: the query then scores 0) of
  ``[start, end, score]`` with three finite numbers and ``start <= end``. A window without a
  score is an error: mAP ranks windows by score, and silently ranking them in listed order would
  give numbers the public evaluator (which requires the score) never gives.
- ``pred_saliency_scores`` (optional): one finite number per ``clip_length`` clip, exactly
  ``int(duration / clip_length)`` of them. The public evaluator silently pads or truncates; a
  wrong length almost always means clips were misaligned, so it is an error here.
- ``invalid`` (optional): a bool, the text parser's flag; reported as ``invalid_rate``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from lavis.common.errors import UserError
from lavis.datasets.schema import AnnotationError, MomentRecord
from lavis.tasks.metrics_hl import num_clips, saliency_targets

_MAX_MESSAGES = 20  # kept in the output's "validation" section; the counts are complete


class PredictionError(UserError, ValueError):
    """Predictions that cannot be scored; the message names the qid and the problem."""


@dataclass
class CheckedPrediction:
    """One prediction after its checks: its windows and saliency scores as arrays, and its repair flag."""

    windows: np.ndarray  # [P, 3] (start, end, score), in listed order
    saliency: Optional[np.ndarray]  # [C] one score per clip, or None
    invalid: Optional[bool]


@dataclass
class ValidationReport:
    """The problems found in a predictions file: counted per kind, raised at once unless ``lenient``."""

    lenient: bool
    counts: Counter = field(default_factory=Counter)  # kind -> number of problems
    messages: list[str] = field(default_factory=list)

    def add(self, kind: str, message: str) -> None:
        """Count one problem of ``kind`` (e.g. ``malformed``, ``duplicate``, ``missing``) and keep its message."""
        self.counts[kind] += 1
        self.messages.append(message)

    def raise_if_strict(self) -> None:
        """Raise ``PredictionError`` with the first problem (and how many more) unless ``lenient``."""
        if self.lenient or not self.messages:
            return
        more = len(self.messages) - 1
        suffix = f" (and {more} more problem(s); lenient evaluation skips bad predictions)" if more else ""
        raise PredictionError(self.messages[0] + suffix)

    def summary(self) -> str:
        """The counts as one line for the log (``2 missing, 1 unknown``)."""
        return ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts.items()))

    def to_json(self) -> dict[str, Any]:
        """The report for the metrics JSON: the counts and the first messages."""
        return {
            "lenient": self.lenient,
            "counts": dict(sorted(self.counts.items())),
            "messages": self.messages[:_MAX_MESSAGES],
        }


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_prediction(pred: dict, record: MomentRecord, clip_length: float) -> CheckedPrediction:
    """Validate one prediction for ``record``; raises PredictionError naming the qid."""
    qid = pred["qid"]
    windows = pred.get("pred_relevant_windows")
    if not isinstance(windows, (list, tuple)):
        raise PredictionError(
            f"qid {qid}: 'pred_relevant_windows' must be a list of [start, end, score], got {str(windows)[:80]}"
        )
    for i, window in enumerate(windows):
        if not isinstance(window, (list, tuple)) or len(window) != 3:
            raise PredictionError(f"qid {qid}: window {i} must be [start, end, score], got {str(window)[:80]}")
        if not all(_finite(v) for v in window):
            raise PredictionError(f"qid {qid}: window {i} must hold three finite numbers, got {window}")
        if window[0] > window[1]:
            raise PredictionError(f"qid {qid}: window {i} has start {window[0]} > end {window[1]}")
    array = np.asarray(windows, dtype=np.float64).reshape(-1, 3)

    saliency = pred.get("pred_saliency_scores")
    if saliency is not None:
        expected = num_clips(record.duration, clip_length)
        if not isinstance(saliency, (list, tuple)) or not all(_finite(v) for v in saliency):
            raise PredictionError(f"qid {qid}: 'pred_saliency_scores' must be a list of finite numbers")
        if len(saliency) != expected:
            raise PredictionError(
                f"qid {qid}: 'pred_saliency_scores' has {len(saliency)} scores, expected {expected} "
                f"(one per {clip_length} s clip of the {record.duration} s video)"
            )
        saliency = np.asarray(saliency, dtype=np.float64)

    invalid = pred.get("invalid")
    if invalid is not None and not isinstance(invalid, bool):
        raise PredictionError(f"qid {qid}: 'invalid' must be true or false, got {invalid!r}")
    return CheckedPrediction(array, saliency, invalid)


def usable_records(records: Sequence[MomentRecord], report: ValidationReport) -> list[MomentRecord]:
    """Records with at least one GT window (a query without one cannot be scored)."""
    kept = []
    for record in records:
        if record.windows:
            kept.append(record)
        else:
            report.add("gt_without_windows", f"qid {record.qid}: the ground truth has no relevant window")
    return kept


def ground_truth_windows(record: MomentRecord) -> np.ndarray:
    """``[G, 2]`` GT windows of a usable record."""
    return np.asarray(record.windows, dtype=np.float64).reshape(-1, 2)


def saliency_ground_truth(
    records: Sequence[MomentRecord],
    matched: list[Optional[CheckedPrediction]],
    report: ValidationReport,
    clip_length: float,
) -> Optional[list[np.ndarray]]:
    """``[C, A]`` targets per record when any prediction has saliency scores, else None.

    A prediction without saliency scores among ones that have them is a problem (lenient: the
    query becomes a miss, ``matched[i] = None``). Ground truth without saliency annotations is
    a problem too (lenient: highlight metrics are skipped). Inconsistent annotations raise.
    """
    if not any(m is not None and m.saliency is not None for m in matched):
        return None
    lacking = [r.qid for r in records if r.saliency_scores is None or r.relevant_clip_ids is None]
    if lacking:
        report.add(
            "gt_without_saliency",
            f"qid {lacking[0]}: predictions have pred_saliency_scores but the ground truth of "
            f"{len(lacking)} query(ies) has no saliency_scores (highlight metrics skipped)",
        )
        return None
    targets = []
    for i, record in enumerate(records):
        try:
            targets.append(
                saliency_targets(record.duration, record.relevant_clip_ids, record.saliency_scores, clip_length)
            )
        except ValueError as err:
            raise AnnotationError(f"ground truth qid {record.qid}: {err}") from None
        if matched[i] is not None and matched[i].saliency is None:
            report.add("malformed", f"qid {record.qid}: no 'pred_saliency_scores' while other predictions have them")
            matched[i] = None
    return targets
