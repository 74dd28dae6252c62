"""Highlight-detection metrics of the QVHighlights protocol: HL-min-{Fair,Good,VeryGood} mAP, Hit@1.

Written from the protocol of the public QVHighlights evaluator, number for number:

- Ground truth per query: a ``[C, A]`` matrix of 0..4 scores, ``C = int(duration / clip_length)``
  clips (2 s in QVHighlights) by ``A`` annotators (3), zero except the rows of
  ``relevant_clip_ids``, which get ``saliency_scores``.
- A clip is positive for an annotator at level Fair/Good/VeryGood when its score is >= 2/3/4.
- **Hit@1**: the clip with the highest predicted score (the first one on ties) is a hit when it
  is positive for *any* annotator; averaged over queries.
- **HL-mAP**: per query and annotator, the interpolated ranking AP of the predicted scores
  against that annotator's positives (the public code's ``get_ap``: precision is interpolated
  as the best precision at any lower score threshold, then averaged over the thresholds at
  which recall increases; an annotator with no positive clip gives 0, one with only positive
  clips gives 1); averaged over annotators, then over queries.
Every number is a percentage rounded to 2 decimals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np

from lavis.tasks.metrics_mr import percent

SALIENCY_LEVELS: dict[str, int] = {"Fair": 2, "Good": 3, "VeryGood": 4}
CLIP_LENGTH = 2.0  # seconds per saliency clip in QVHighlights


def num_clips(duration: float, clip_length: float) -> int:
    """Clips the protocol expects a score for (``int(duration / clip_length)``, as published)."""
    return int(duration / clip_length)


def clip_saliency(
    frame_times: Sequence[float], frame_scores: Sequence[float], duration: float, clip_length: float
) -> list[float]:
    """Per-frame relevance -> one score per clip the protocol expects (``num_clips``): the
    relevance curve (linear between frames, flat beyond the first and last) at each clip's centre."""
    centres = (np.arange(num_clips(duration, clip_length)) + 0.5) * clip_length
    order = np.argsort(np.asarray(frame_times, dtype=np.float64), kind="stable")
    times = np.asarray(frame_times, dtype=np.float64)[order]
    scores = np.asarray(frame_scores, dtype=np.float64)[order]
    return [round(float(v), 4) for v in np.interp(centres, times, scores)]


def saliency_targets(
    duration: float, relevant_clip_ids: Sequence[int], saliency_scores: Sequence[Sequence[float]], clip_length: float
) -> np.ndarray:
    """``[C, A]`` per-clip scores of every annotator. Raises ValueError on inconsistent input."""
    n = num_clips(duration, clip_length)
    scores = np.asarray(saliency_scores, dtype=np.float64)
    ids = np.asarray(relevant_clip_ids)
    if scores.ndim != 2 or len(scores) != len(ids) or len(ids) == 0:
        raise ValueError(
            f"saliency_scores must be one equal-length list of annotator scores per relevant clip id "
            f"({len(ids)} ids, scores of shape {scores.shape})"
        )
    if not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= n:
        raise ValueError(
            f"relevant_clip_ids must be integers in [0, {n}) for a {duration} s video with {clip_length} s clips"
        )
    targets = np.zeros((n, scores.shape[1]))
    targets[ids] = scores
    return targets


def ranking_average_precision(positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Interpolated AP of ``scores [C]`` for each column of ``positive [C, M]`` (bool) -> ``[M]``."""
    order = np.argsort(-scores, kind="stable")
    ranked = positive[order].astype(np.float64)
    sorted_scores = scores[order]
    # One threshold per distinct score: the last rank of each group of equal scores.
    ends = np.append(np.flatnonzero(np.diff(sorted_scores) != 0), len(scores) - 1)
    tp = np.cumsum(ranked, axis=0)[ends]  # [T, M] positives above each threshold
    precision = tp / (ends + 1)[:, None]
    best_later = np.maximum.accumulate(precision[::-1], axis=0)[::-1]  # best at >= this recall
    gained = np.diff(tp, axis=0, prepend=0.0) > 0  # thresholds where recall increases
    total = positive.sum(axis=0)
    ap = np.where(gained, best_later, 0.0).sum(axis=0) / np.maximum(gained.sum(axis=0), 1)
    ap = np.where(total == len(scores), 1.0, ap)  # only positives: the public code returns 1
    return np.where(total == 0, 0.0, ap)


def highlight_metrics(pred_scores: Sequence[Optional[np.ndarray]], targets: Sequence[np.ndarray]) -> dict:
    """Sections ``HL-min-<level>: {"HL-mAP", "HL-Hit1"}``.

    ``pred_scores[i]`` is ``[C_i]`` (same length as ``targets[i]``, ``[C_i, A]``) or None for a
    query without a usable prediction, which scores 0 on both metrics.
    """
    levels = list(SALIENCY_LEVELS.values())
    hits = np.zeros((len(targets), len(levels)))
    aps = np.zeros((len(targets), len(levels)))
    for i, (scores, target) in enumerate(zip(pred_scores, targets)):
        if scores is None:
            continue
        # [C, L, A]: positive clip per level and annotator; all levels ranked in one call.
        positive = target[:, None, :] >= np.asarray(levels, dtype=np.float64)[None, :, None]
        hits[i] = positive[int(np.argmax(scores))].any(axis=-1)
        flat = ranking_average_precision(positive.reshape(len(target), -1), np.asarray(scores, np.float64))
        aps[i] = flat.reshape(len(levels), -1).mean(axis=-1)
    if not len(targets):
        return {f"HL-min-{name}": {"HL-mAP": None, "HL-Hit1": None} for name in SALIENCY_LEVELS}
    return {
        f"HL-min-{name}": {"HL-mAP": percent(float(aps[:, j].mean())), "HL-Hit1": percent(float(hits[:, j].mean()))}
        for j, name in enumerate(SALIENCY_LEVELS)
    }
