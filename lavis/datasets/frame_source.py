"""What a video reader gives (``SampledFrames``), its interface (``FrameSource``) and its error.

Timestamps are the decoded frames' presentation times in seconds on the file's clock
(``pts * time_base - container start``), the clock that annotation windows and audio use
(``container_origin``).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import av
import numpy as np

from lavis.common.errors import UserError


class VideoDecodeError(UserError, RuntimeError):
    """A video that cannot be used (missing, empty, truncated, undecodable); names the file."""


@dataclass
class SampledFrames:
    """The sampled frames of one video (or of a span of it) and where they are."""

    frames: np.ndarray  # uint8 [t, H, W, 3] RGB, t = min(T, num_video_frames)
    indices: np.ndarray  # int64 [t], frame indices in presentation order
    timestamps: np.ndarray  # float32 [t], seconds from the start of the file's clock
    num_video_frames: int
    duration: float  # seconds, from the container
    num_decoded: Optional[int] = None  # frames the decoder output to reach them (PyAV only)


# A container that says it lasts this much longer than its streams' packets is refused: the clock
# of its chunks, its annotations and its audio would not be the frames' (a cut or damaged file).
DURATION_SLACK_S, DURATION_SLACK = 5.0, 0.1


def stated_duration(path: Path, container_s: Optional[float], streams_end: float) -> float:
    """The video's duration: the container's, unless it is far longer than its streams' packets
    (``streams_end``): then a ``VideoDecodeError`` that says so (None: the container states none)."""
    if not container_s or container_s <= 0:
        return streams_end
    if container_s > streams_end + max(DURATION_SLACK_S, DURATION_SLACK * streams_end):
        raise VideoDecodeError(
            f"{path}: its container says it lasts {container_s:.1f} s, but its streams end at {streams_end:.1f} s "
            f"(a cut or damaged file? re-encode or remux it)"
        )
    return container_s


def upright(frame: np.ndarray, rotation: float, path: Path) -> np.ndarray:
    """``frame`` [H, W, 3] as a player shows it: turned by the container's display rotation
    (``rotation``: degrees counterclockwise, FFmpeg's display-matrix convention, e.g. a phone's
    portrait video); only quarter turns can be undone exactly, others are refused."""
    if not rotation:
        return frame
    quarters = rotation / 90
    if not float(quarters).is_integer():
        raise VideoDecodeError(
            f"{path}: its container rotates the picture by {rotation:g} degrees; only quarter turns are supported"
        )
    return np.ascontiguousarray(np.rot90(frame, int(quarters) % 4))


def container_origin(container: av.container.InputContainer) -> float:
    """Seconds to subtract from ``pts * time_base`` so the file's clock starts at 0."""
    return container.start_time / av.time_base if container.start_time is not None else 0.0


def open_container(path: Path) -> av.container.InputContainer:
    """``path`` opened by PyAV; a missing, empty or unopenable file is a ``VideoDecodeError``."""
    if path.is_dir():
        raise VideoDecodeError(f"{path}: a folder, not a video file")
    if not path.is_file():
        raise VideoDecodeError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise VideoDecodeError(f"{path}: empty file (0 bytes)")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as err:
        raise VideoDecodeError(f"{path}: cannot open ({err})") from None


class FrameSource(abc.ABC):
    """An open video whose frames are indexed once; ``sample`` decodes the sampled frames of the
    whole video or of a span, as often as needed (a long video's chunks share one demux)."""

    path: Path
    duration: float  # seconds, from the container

    @abc.abstractmethod
    def sample(
        self,
        num_samples: int,
        train: bool = False,
        generator: np.random.Generator | None = None,
        span: Optional[tuple[float, float]] = None,
    ) -> SampledFrames:
        """Decode ``num_samples`` frames sampled by ``frame_sampling.sample_frame_indices``
        (train: random within each interval, from ``generator``), over the whole video or the
        frames shown in ``span`` = ``[start, end)`` seconds; raises ``VideoDecodeError``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the open file."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
