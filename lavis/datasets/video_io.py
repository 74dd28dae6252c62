"""Frame sampling and seek-based decoding: T frames of a video, never the whole video.

The package's video-reading API: ``open_video`` (a ``FrameSource`` to sample from, as often as
needed) and ``read_frames`` (one sampling of one file), with the names their callers need. The
parts, one concept per module:

- ``frame_sampling.py``: which frames (``sample_frame_indices``, the one definition: T equal
  intervals, the middle frame of each at eval, a seeded random one in training; a ``span``);
- ``frame_source.py``: what a reader returns (``SampledFrames``), its interface and its error,
  and the file's clock that timestamps are on;
- ``pyav_source.py``: decoding with PyAV (the default): one demux per file, then seek + decode
  forward to each sampled frame only;
- ``decord_source.py``: decoding with decord (optional), the same indices and timestamps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import numpy as np

from lavis.datasets.decord_source import DecordSource
from lavis.datasets.frame_sampling import checked_span, sample_frame_indices
from lavis.datasets.frame_source import FrameSource, SampledFrames, VideoDecodeError
from lavis.datasets.pyav_source import PyAVSource

__all__ = [
    "FrameSource",
    "SampledFrames",
    "VideoBackend",
    "VideoDecodeError",
    "open_video",
    "read_frames",
    "sample_frame_indices",
]

VideoBackend = Literal["pyav", "decord"]


def open_video(path: str | Path, backend: VideoBackend = "pyav") -> FrameSource:
    """Open ``path`` and index its frames once, to sample from as often as needed.

    Args:
        path: the video file.
        backend: ``"pyav"`` (default) or ``"decord"`` (optional; the same frames and times).

    Returns:
        A ``FrameSource``; use it as a context manager. Its ``sample(num_samples, train,
        generator, span)`` decodes the sampled frames of the whole video or of a span.

    Raises ``VideoDecodeError`` naming the file (missing, empty, no video stream, truncated).

    Example (``video``: a video file):
        >>> with open_video(video) as source:
        ...     halves = [source.sample(4, span=(0.0, source.duration / 2)), source.sample(4)]
        >>> [len(h.frames) for h in halves], bool(halves[0].timestamps[-1] < halves[1].timestamps[-1])
        ([4, 4], True)
    """
    if backend == "pyav":
        return PyAVSource(Path(path))
    if backend == "decord":
        return DecordSource(Path(path))
    raise ValueError(f"unknown video backend {backend!r}; valid: ['pyav', 'decord']")


def read_frames(
    path: str | Path,
    num_samples: int,
    backend: VideoBackend = "pyav",
    train: bool = False,
    generator: np.random.Generator | None = None,
    span: Optional[tuple[float, float]] = None,
) -> SampledFrames:
    """Decode the sampled frames of one video (never the whole video).

    Args:
        path: the video file.
        num_samples: T, the frames to sample (a video with fewer gives all of its frames).
        backend: ``"pyav"`` (default) or ``"decord"``.
        train: a random frame of each of the T intervals (from ``generator``) instead of the
            middle one.
        generator: a seeded ``np.random.Generator``; required when ``train``.
        span: ``(start, end)`` seconds: sample only the frames shown in ``[start, end)``.

    Returns:
        ``SampledFrames``: ``frames`` uint8 ``[t, H, W, 3]`` RGB with ``t = min(T, frames)``;
        ``indices`` stay indices into the whole video and ``timestamps`` (seconds) stay on the
        file's clock, with or without ``span``.

    Raises ``VideoDecodeError`` naming the file (missing, empty, truncated, undecodable).

    Example (``video``: a video file):
        >>> sampled = read_frames(video, num_samples=4)
        >>> sampled.frames.shape[0], sampled.frames.dtype, len(sampled.timestamps)
        (4, dtype('uint8'), 4)
    """
    checked_span(span)
    with open_video(path, backend) as source:
        return source.sample(num_samples, train, generator, span)
