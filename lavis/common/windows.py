"""Temporal windows: the one definition of temporal IoU in the project."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Window = Sequence[float]  # [start, end] or [start, end, score]


def temporal_iou(pred: Window, gt: Window) -> float:
    """IoU of two [start, end] windows (extra entries such as a score are ignored)."""
    inter = min(pred[1], gt[1]) - max(pred[0], gt[0])
    if inter <= 0:
        return 0.0
    union = max(pred[1], gt[1]) - min(pred[0], gt[0])
    return float(inter / union) if union > 0 else 0.0


def pairwise_temporal_iou(preds: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """IoU of every pred against every gt: ``[P, >=2]`` x ``[G, >=2]`` -> ``[P, G]``."""
    preds = np.asarray(preds, dtype=np.float64).reshape(-1, np.shape(preds)[-1] if len(preds) else 2)
    gts = np.asarray(gts, dtype=np.float64).reshape(-1, np.shape(gts)[-1] if len(gts) else 2)
    if len(preds) == 0 or len(gts) == 0:
        return np.zeros((len(preds), len(gts)))
    start = np.maximum(preds[:, None, 0], gts[None, :, 0])
    end = np.minimum(preds[:, None, 1], gts[None, :, 1])
    inter = np.clip(end - start, 0.0, None)
    union = np.maximum(preds[:, None, 1], gts[None, :, 1]) - np.minimum(preds[:, None, 0], gts[None, :, 0])
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
