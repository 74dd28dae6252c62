"""Moment-retrieval metrics of the QVHighlights protocol: top-1 IoU / R1, MR-mAP, length buckets.

Written from the protocol of the public QVHighlights evaluator (moment_detr
``standalone_eval/eval.py``), number for number:

- **R1 / top-1 IoU**: the *first listed* predicted window against the ground-truth window it
  overlaps most (the first one on ties). ``R1@t = mean(IoU >= t)``.
- **AP** per query at each IoU threshold: only the first ``MAX_PRED_WINDOWS`` listed windows;
  those are ranked by score (descending, ties keep the listed order); each one, in rank order,
  takes the still-unmatched ground-truth window of highest IoU if that IoU >= t, else it is a
  false positive. Equal IoUs go to the later ground-truth window: the public code's reversed
  ``argsort`` does that with numpy's classic sort; numpy's newer SIMD sorts (AVX-512) order
  ties arbitrarily, so the public code itself can differ there from machine to machine. AP is the all-point interpolated area (VOC 2011) with recall over *all* the query's
  ground-truth windows. mAP is the mean over queries, per threshold; the "average" is the mean
  of the per-threshold means.
- **Buckets** by ground-truth window length ``(lo, hi]`` seconds: a query belongs to a bucket
  when at least one of its ground-truth windows does, and is scored against those windows
  only (its predictions are kept whole). "full" keeps every query and window, uncapped.
- Every number is reported as a percentage rounded to 2 decimals (``float(f"{100 * x:.2f}")``).

Deliberate differences, on inputs the public code crashes on or mis-scores: a query with no
predicted window scores 0 (the public code raises on R1 and drops the query from mAP), and
two zero-length windows at the same point have IoU 0 (the public code divides 0 by 0).

Per query, predictions are ``[P, 3]`` arrays ``(start, end, score)`` in listed order and the
ground truth is ``[G, 2]`` with ``G >= 1``. Queries are padded into ``[Q, P, G]`` IoU tensors so
the greedy matching runs once per rank for all queries and thresholds together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np

from lavis.common.windows import pairwise_temporal_iou

IOU_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.5:0.05:0.95
R1_THRESHOLDS: tuple[float, ...] = (0.3,) + IOU_THRESHOLDS  # 0.3 added for Charades-STA tables
MAX_PRED_WINDOWS = 10
# name -> (lo, hi]: window length in seconds. "full" is not a filter (see bucket_ground_truth).
BUCKETS: dict[str, tuple[float, float]] = {"short": (0.0, 10.0), "middle": (10.0, 30.0), "long": (30.0, 150.0)}


def percent(value: float) -> Optional[float]:
    """The public evaluator's rounding: a percentage with 2 decimals; None for an empty set."""
    if value is None or not np.isfinite(value):
        return None
    return float(f"{100 * value:.2f}")


def matching_iou(preds: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """``[P, 2] x [G, 2] -> [P, G]``: IoU with the union written ``len_p + len_g - inter``.

    Mathematically this is ``windows.pairwise_temporal_iou``; it is written the way the public
    evaluator's AP writes it because floating-point rounding decides ties at the thresholds:
    windows on a 0.1 s grid (what an LLM prints) moved MR-mAP@t by up to 0.08 points with the
    other form. R1 uses ``pairwise_temporal_iou``, as the public R1 does (``max - min`` union).
    """
    start = np.maximum(preds[:, None, 0], gts[None, :, 0])
    end = np.minimum(preds[:, None, 1], gts[None, :, 1])
    inter = np.clip(end - start, 0.0, None)
    union = (preds[:, 1] - preds[:, 0])[:, None] + (gts[:, 1] - gts[:, 0])[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _iou_tensor(
    preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], max_preds: Optional[int], iou_fn=pairwise_temporal_iou
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``iou_fn`` of every (kept) prediction with every GT window, padded.

    Returns ``iou [Q, P, G]`` (0 where padded), ``pred_mask [Q, P]`` and ``gt_mask [Q, G]``.
    """
    n_pred = [min(len(p), max_preds) if max_preds is not None else len(p) for p in preds]
    n_gt = [len(g) for g in gts]
    q, p_max, g_max = len(preds), max(n_pred, default=0), max(n_gt, default=0)
    iou = np.zeros((q, max(p_max, 1), max(g_max, 1)))
    for i, (pred, gt) in enumerate(zip(preds, gts)):
        if n_pred[i] and n_gt[i]:
            iou[i, : n_pred[i], : n_gt[i]] = iou_fn(pred[: n_pred[i], :2], gt)
    pred_mask = np.arange(iou.shape[1])[None, :] < np.asarray(n_pred, dtype=int).reshape(-1, 1)
    gt_mask = np.arange(iou.shape[2])[None, :] < np.asarray(n_gt, dtype=int).reshape(-1, 1)
    return iou, pred_mask, gt_mask


def top1_iou(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> np.ndarray:
    """``[Q]``: IoU of each query's first listed window with its best-overlapping GT window.

    As published, the best GT window is chosen with ``matching_iou`` (first one on ties) and
    the reported IoU is ``pairwise_temporal_iou`` with it.
    """
    iou, pred_mask, gt_mask = _iou_tensor(preds, gts, max_preds=1)
    chooser, _, _ = _iou_tensor(preds, gts, max_preds=1, iou_fn=matching_iou)
    best = np.where(gt_mask, chooser[:, 0, :], -np.inf).argmax(axis=1)
    return np.where(pred_mask[:, 0], iou[np.arange(len(iou)), 0, best], 0.0)


def average_precision(
    preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], thresholds: Sequence[float] = IOU_THRESHOLDS
) -> np.ndarray:
    """``[Q, K]``: per-query AP at each IoU threshold (the protocol in the module docstring)."""
    iou, pred_mask, gt_mask = _iou_tensor(preds, gts, max_preds=MAX_PRED_WINDOWS, iou_fn=matching_iou)
    q, p, g = iou.shape
    scores = np.zeros((q, p))
    for i, pred in enumerate(preds):
        kept = pred[:MAX_PRED_WINDOWS, 2]
        scores[i, : len(kept)] = kept
    # Rank by score; padding goes last; the stable sort keeps the listed order on ties.
    order = np.argsort(np.where(pred_mask, -scores, np.inf), axis=1, kind="stable")
    iou = np.take_along_axis(iou, order[:, :, None], axis=1)
    pred_mask = np.take_along_axis(pred_mask, order, axis=1)

    thr = np.asarray(thresholds, dtype=np.float64)[None, :, None]  # [1, K, 1]
    locked = np.zeros((q, len(thresholds), g), dtype=bool)  # GT window already matched
    tp = np.zeros((q, len(thresholds), p))
    rows = np.arange(q)[:, None]
    cols = np.arange(len(thresholds))[None, :]
    for rank in range(p):
        iou_r = iou[:, None, rank, :]  # [Q, 1, G]
        candidate = (iou_r >= thr) & ~locked & gt_mask[:, None, :] & pred_mask[:, rank, None, None]
        # Highest IoU wins; argmax over the reversed axis makes ties go to the later GT window.
        ranked = np.where(candidate, iou_r, -1.0)[..., ::-1]
        chosen = g - 1 - ranked.argmax(axis=-1)  # [Q, K]
        hit = candidate.any(axis=-1)
        locked[rows, cols, chosen] |= hit
        tp[:, :, rank] = hit

    # All-point interpolation: each true positive adds 1/G times the best precision at its rank
    # or any later rank (padded ranks have precision 0 and no true positive).
    precision = np.cumsum(tp, axis=-1) / np.arange(1, p + 1)
    precision = np.where(pred_mask[:, None, :], precision, 0.0)
    interpolated = np.maximum.accumulate(precision[..., ::-1], axis=-1)[..., ::-1]
    n_gt = gt_mask.sum(axis=1).astype(np.float64)[:, None]
    return (tp * interpolated).sum(axis=-1) / np.maximum(n_gt, 1.0)


def bucket_ground_truth(gts: Sequence[np.ndarray], bucket: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """Indices of the queries in ``bucket`` and their GT windows restricted to it."""
    if bucket == "full":
        return np.arange(len(gts)), list(gts)
    lo, hi = BUCKETS[bucket]
    keep, kept_gts = [], []
    for i, gt in enumerate(gts):
        length = gt[:, 1] - gt[:, 0]
        inside = gt[(length > lo) & (length <= hi)]
        if len(inside):
            keep.append(i)
            kept_gts.append(inside)
    return np.asarray(keep, dtype=int), kept_gts


def moment_retrieval_section(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> dict:
    """One bucket's section: ``{"MR-mAP": {"0.5": .., "average": ..}, "MR-R1": {"0.3": ..}, "MR-mIoU": ..}``.

    Values are rounded percentages; None when the bucket has no query.
    """
    if len(gts):
        ap = average_precision(preds, gts).mean(axis=0)  # [K]
        ious = top1_iou(preds, gts)
        average, miou = float(ap.mean()), float(ious.mean())
    else:
        ap, ious, average, miou = np.full(len(IOU_THRESHOLDS), np.nan), np.zeros(0), np.nan, np.nan
    mean_ap = {str(t): percent(v) for t, v in zip(IOU_THRESHOLDS, ap)}
    mean_ap["average"] = percent(average)
    recall = {str(t): percent(float(np.mean(ious >= t))) if len(ious) else None for t in R1_THRESHOLDS}
    return {"MR-mAP": mean_ap, "MR-R1": recall, "MR-mIoU": percent(miou)}


def moment_retrieval_metrics(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> tuple[dict, dict]:
    """Sections ``full``/``short``/``middle``/``long`` and the number of queries in each."""
    sections, counts = {}, {}
    for bucket in ("full", *BUCKETS):
        index, bucket_gts = bucket_ground_truth(gts, bucket)
        sections[bucket] = moment_retrieval_section([preds[i] for i in index], bucket_gts)
        counts[bucket] = len(index)
    return sections, counts
