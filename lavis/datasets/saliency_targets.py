"""How relevant each sampled frame is to the query: the per-frame training target of a saliency
head (``model.saliency``), from the annotation alone.

- A frame outside every ground-truth window: 0.
- Inside a window: 1, or, when the record carries QVHighlights' ``saliency_scores`` (three
  annotators' 0..4 scores for each 2 s clip in ``relevant_clip_ids``), its clip's mean score / 4,
  so "very good" frames count more than "fair" ones. (QVHighlights' relevant clips are the
  clips of its windows; the synthetic benchmark scores every clip its events touch 4.)
- A window that no sampled frame falls in (a 5 s TACoS moment between two frames 23 s apart at
  60 frames of a 23-minute video; a 1 s UnAV-100 event at 25 frames of 60 s) marks the frame
  nearest its centre instead, with the window's score (1, or the mean score of its clips / 4):
  that frame is what the model sees of the moment, and without it such a query's targets would
  all be 0, teaching the head that nothing in the video is relevant. The inference side reads the
  frames' relevance the same way: linearly between frames (``answer.relevance_inside``).
Targets are computed before a train-time temporal crop, which then keeps the targets of the frames
it keeps (a frame's relevance does not depend on where the crop starts).
"""

from __future__ import annotations

import numpy as np
import torch

from lavis.datasets.schema import MomentRecord

CLIP_LENGTH = 2.0  # seconds per saliency clip (QVHighlights)
MAX_SCORE = 4.0  # the annotators' top score


def clip_scores(record: MomentRecord) -> dict[int, float]:
    """Clip id -> its annotators' mean score / 4 (empty without QVHighlights-style scores)."""
    if not (record.saliency_scores and record.relevant_clip_ids):
        return {}
    scores = np.asarray(record.saliency_scores, dtype=np.float64).mean(axis=1) / MAX_SCORE
    return dict(zip(record.relevant_clip_ids, scores.tolist()))


def window_score(start: float, end: float, by_clip: dict[int, float]) -> float:
    """The score of a window as a whole: 1, or the mean score of the clips it overlaps."""
    if not by_clip:
        return 1.0
    first, last = int(start // CLIP_LENGTH), int(np.ceil(end / CLIP_LENGTH))
    return float(np.mean([by_clip.get(k, 0.0) for k in range(first, max(last, first + 1))]))


def frame_relevance(record: MomentRecord, timestamps: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """``float32 [T]`` in [0, 1] for the frames at ``timestamps [T]`` (seconds on the record's
    clock); 0 where ``frame_mask [T]`` is False."""
    times = timestamps.double().numpy()
    real = frame_mask.numpy().astype(bool)
    inside = np.zeros(len(times), dtype=bool)
    for start, end in record.windows:
        inside |= (times >= start) & (times <= end)
    values = inside.astype(np.float64)
    by_clip = clip_scores(record)
    if by_clip:
        # Clips are coarser than windows: a clip's score counts only inside the windows.
        values *= np.array([by_clip.get(int(t // CLIP_LENGTH), 0.0) for t in times])
    if real.any():
        candidates = np.flatnonzero(real)
        for start, end in record.windows:
            if not (real & (times >= start) & (times <= end)).any():
                nearest = candidates[np.argmin(np.abs(times[candidates] - (start + end) / 2))]
                values[nearest] = max(values[nearest], window_score(start, end, by_clip))
    return torch.from_numpy(values.astype(np.float32)) * frame_mask.float()
