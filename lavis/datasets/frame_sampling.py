"""Which frames of a video are read: the one definition of frame sampling.

The video's N frames (in presentation order) are cut into T equal intervals; eval takes the
middle frame of each, train a uniformly random frame of each (from a seeded generator, so a run is
reproducible). A video with fewer than T frames gives all its N frames; the caller pads to T with
a ``frame_mask``. With a ``span`` (start, end) in seconds, the same rule applies to the frames
shown in ``[start, end)`` only (how a long video is covered window by window at inference).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from lavis.datasets.frame_source import VideoDecodeError


def sample_frame_indices(
    num_video_frames: int, num_samples: int, train: bool, generator: np.random.Generator | None = None
) -> np.ndarray:
    """Indices (int64 ``[min(T, N)]``, increasing) of the frames to decode; see the module doc.

    Interval k covers frames ``[k*N//T, (k+1)*N//T)``; eval picks ``(2k+1)*N // (2T)``, the middle.
    """
    if num_video_frames <= 0:
        raise ValueError(f"a video needs at least one frame, got {num_video_frames}")
    if num_samples <= 0:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    n, t = num_video_frames, num_samples
    if n <= t:
        return np.arange(n, dtype=np.int64)
    k = np.arange(t, dtype=np.int64)
    if not train:
        return (2 * k + 1) * n // (2 * t)
    if generator is None:
        raise ValueError("train-time sampling needs a seeded generator")
    starts, ends = k * n // t, (k + 1) * n // t
    return starts + (generator.random(t) * (ends - starts)).astype(np.int64)


def checked_span(span: Optional[tuple[float, float]]) -> Optional[tuple[float, float]]:
    """``span`` itself, after checking that it is ``(start, end)`` with ``start < end``."""
    if span is not None and not span[0] < span[1]:
        raise ValueError(f"span must be (start, end) with start < end, got {span}")
    return span


def span_range(path: Path, times: np.ndarray, span: Optional[tuple[float, float]]) -> tuple[int, int]:
    """``[first, last)`` indices of the frames whose times (seconds, increasing) lie in ``span``
    (all frames without one); no frame in the span is a ``VideoDecodeError`` naming ``path``."""
    if span is None:
        return 0, len(times)
    first, last = (int(i) for i in np.searchsorted(times, span, side="left"))
    if last <= first:
        raise VideoDecodeError(f"{path}: no video frame in [{span[0]:.3f}, {span[1]:.3f}) s")
    return first, last
