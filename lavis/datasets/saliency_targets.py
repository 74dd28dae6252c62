"""How relevant each sampled frame is to the query: the per-frame training target of a saliency
head (``model.saliency``), from the annotation alone.

- A frame outside every ground-truth window: 0.
- Inside a window: 1, or, when the record carries QVHighlights' ``saliency_scores`` (three
  annotators' 0..4 scores for each 2 s clip in ``relevant_clip_ids``), its clip's mean score / 4,
  so "very good" frames count more than "fair" ones. (QVHighlights' relevant clips are the
  clips of its windows; the synthetic benchmark scores every clip its events touch 4.)
Targets are computed before a train-time temporal crop, which then keeps the targets of the frames
it keeps (a frame's relevance does not depend on where the crop starts).
"""

from __future__ import annotations

import numpy as np
import torch

from lavis.datasets.schema import MomentRecord

CLIP_LENGTH = 2.0  # seconds per saliency clip (QVHighlights)
MAX_SCORE = 4.0  # the annotators' top score


def frame_relevance(record: MomentRecord, timestamps: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """``float32 [T]`` in [0, 1] for the frames at ``timestamps [T]`` (seconds on the record's
    clock); 0 where ``frame_mask [T]`` is False."""
    times = timestamps.double().numpy()
    inside = np.zeros(len(times), dtype=bool)
    for start, end in record.windows:
        inside |= (times >= start) & (times <= end)
    values = inside.astype(np.float64)
    if record.saliency_scores and record.relevant_clip_ids:
        # Clips are coarser than windows: a clip's score counts only inside the windows.
        scores = np.asarray(record.saliency_scores, dtype=np.float64).mean(axis=1) / MAX_SCORE
        by_clip = dict(zip(record.relevant_clip_ids, scores.tolist()))
        values *= np.array([by_clip.get(int(t // CLIP_LENGTH), 0.0) for t in times])
    return torch.from_numpy(values.astype(np.float32)) * frame_mask.float()
