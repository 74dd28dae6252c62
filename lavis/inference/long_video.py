"""Long videos: overlapping windows at the trained span, and their predictions merged back.

A model trained on videos of at most ``span`` seconds sees a longer video one window at a time:
windows of ``span`` seconds every ``span * (1 - overlap)`` seconds, the last one ending at the
video's end (``chunk_spans``: a grid chunk that ends within ``STRETCH`` of a span before the end
is stretched to it rather than followed by a near-copy of itself). Each window is predicted as a video of its own (its frames' timestamps relative to
its start, its length as the duration), its ``[start, end, score]`` windows are shifted back to
the video's clock, and the union is merged by score-ordered non-maximum suppression: a moment
seen by two overlapping windows is kept once, with the better score.

Scores are only comparable across chunks as far as the model's scores are. The beam vote alone
(``windows_from_beams``: the share of a chunk's beam probability that voted for a window) is
relative to that chunk, so every chunk contributes a confident-looking best guess. A model with a
saliency head scores each window by its vote times the frames' relevance inside it
(``answer.rescore_windows``), an absolute measure: a chunk without the moment then ranks low.
The frames' relevance is merged onto the video's clock too (``merge_frame_relevance``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lavis.common.windows import temporal_iou


@dataclass(frozen=True)
class Chunk:
    """A window of the video that is predicted on its own (seconds on the video's clock)."""

    start: float
    end: float

    @property
    def length(self) -> float:
        """The chunk's length in seconds."""
        return self.end - self.start


# How far (a share of the span) the last grid chunk may be stretched to reach the video's end.
# A 60.06 s video at a 30 s span: 30-60.06 instead of 30-60 plus a near-copy 30.06-60.06 (a third
# more compute, and windows like 47.06 s). 5 % keeps the stretched chunk's duration and timestamps
# within about a second of what the model trained on at the spans used (10-150 s).
STRETCH = 0.05


def chunk_spans(duration: float, span: float, overlap: float = 0.5) -> list[Chunk]:
    """Windows covering ``[0, duration]``: one when the video fits the span, else windows of
    ``span`` s starting every ``span * (1 - overlap)`` s. The last one ends at ``duration``: the
    last grid window, stretched by at most ``STRETCH * span``, or else one more window of ``span``
    s ending there.

    Example:
        >>> [(c.start, c.end) for c in chunk_spans(60.06, 30.0)]
        [(0.0, 30.0), (15.0, 45.0), (30.0, 60.06)]
        >>> [(c.start, c.end) for c in chunk_spans(64.0, 30.0)]
        [(0.0, 30.0), (15.0, 45.0), (30.0, 60.0), (34.0, 64.0)]
    """
    if duration <= 0 or span <= 0:
        raise ValueError(f"duration and span must be > 0 seconds, got {duration} and {span}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if duration <= span * (1.0 + STRETCH):
        return [Chunk(0.0, float(duration))]
    stride = span * (1.0 - overlap)
    # The grid windows that fit inside the video (starts rounded: no 14.549999999999999 s).
    grid = [round(i * stride, 6) for i in range(math.floor((duration - span) / stride + 1e-9) + 1)]
    chunks = [Chunk(float(s), round(s + span, 6)) for s in grid]
    if duration - chunks[-1].end <= STRETCH * span:
        chunks[-1] = Chunk(chunks[-1].start, float(duration))
    else:
        chunks.append(Chunk(round(duration - span, 6), float(duration)))
    return chunks


def to_video_clock(windows: Sequence[Sequence[float]], chunk: Chunk) -> list[list[float]]:
    """``[start, end, score]`` relative to ``chunk`` -> on the video's clock, clipped to the chunk."""
    out = []
    for start, end, score in windows:
        lo = min(max(chunk.start + float(start), chunk.start), chunk.end)
        hi = min(max(chunk.start + float(end), chunk.start), chunk.end)
        if hi > lo:
            out.append([lo, hi, float(score)])
    return out


def non_maximum_suppression(
    windows: Sequence[Sequence[float]], iou_threshold: float, max_windows: int | None = None
) -> list[list[float]]:
    """Best-first ``[start, end, score]`` windows, dropping each window whose temporal IoU with an
    already kept (better) one is ``>= iou_threshold``. Ties keep the input order."""
    kept: list[list[float]] = []
    for window in sorted(windows, key=lambda w: -w[2]):
        if all(temporal_iou(window[:2], k[:2]) < iou_threshold for k in kept):
            kept.append([float(window[0]), float(window[1]), float(window[2])])
            if max_windows is not None and len(kept) >= max_windows:
                break
    return kept


def merge_chunk_windows(
    per_chunk: Sequence[Sequence[Sequence[float]]], chunks: Sequence[Chunk], iou_threshold: float, max_windows: int
) -> list[list[float]]:
    """Each chunk's local ``[start, end, score]`` windows -> one best-first list on the video's
    clock (NMS at ``iou_threshold``, at most ``max_windows``)."""
    if len(per_chunk) != len(chunks):
        raise ValueError(f"{len(per_chunk)} window lists for {len(chunks)} chunks")
    pooled = [w for windows, chunk in zip(per_chunk, chunks) for w in to_video_clock(windows, chunk)]
    return non_maximum_suppression(pooled, iou_threshold, max_windows)


def merge_frame_relevance(
    per_chunk: Sequence[tuple[Sequence[float], Sequence[float]]], chunks: Sequence[Chunk]
) -> tuple[list[float], list[float]]:
    """Each chunk's ``(frame times relative to the chunk, relevance)`` -> ``(times, relevance)``
    on the video's clock, sorted by time; a time two chunks both sampled gets their mean."""
    pooled: dict[float, list[float]] = {}
    for (times, scores), chunk in zip(per_chunk, chunks):
        for t, s in zip(times, scores):
            pooled.setdefault(round(chunk.start + float(t), 4), []).append(float(s))
    times = sorted(pooled)
    return times, [sum(pooled[t]) / len(pooled[t]) for t in times]
