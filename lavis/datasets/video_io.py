"""Frame sampling and seek-based decoding: T frames of a video, never the whole video.

Sampling (``sample_frame_indices``, the one definition): the video's N frames (in presentation
order) are cut into T equal intervals; eval takes the middle frame of each, train a uniformly
random frame of each (from a seeded generator, so a run is reproducible). A video with fewer than
T frames gives all its N frames; the caller pads to T with a ``frame_mask``. With a ``span``
(start, end) in seconds, the same rule applies to the frames shown in ``[start, end)`` only (how
a long video is covered window by window at inference).

Decoding (PyAV, the default): the video packets are demuxed once per opened file (no decoding) to
get every frame's presentation time and the keyframes (``open_video``: a long video's chunks are
sampled from one index). For each sampled frame we seek to the keyframe at or
before it and decode forward to it (letting the decoder skip non-reference frames that are not
sampled); when the next sampled frame lies in the GOP already being decoded we keep decoding
instead of seeking again. Only the sampled frames are converted to RGB.
decord (optional, x86 wheels only) gives the same frame indices and timestamps.

Timestamps are the decoded frames' presentation times in seconds on the file's clock
(``pts * time_base - container start``), the clock that annotation windows and audio use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import av
import numpy as np

from lavis.common.errors import UserError

VideoBackend = Literal["pyav", "decord"]
TRUNCATED_FRACTION = 0.9  # fewer readable frames than this share of the index's count: truncated


class VideoDecodeError(UserError, RuntimeError):
    """A video that cannot be used (missing, empty, truncated, undecodable); names the file."""


@dataclass
class SampledFrames:
    frames: np.ndarray  # uint8 [t, H, W, 3] RGB, t = min(T, num_video_frames)
    indices: np.ndarray  # int64 [t], frame indices in presentation order
    timestamps: np.ndarray  # float32 [t], seconds from the start of the file's clock
    num_video_frames: int
    duration: float  # seconds, from the container
    num_decoded: Optional[int] = None  # frames the decoder output to reach them (PyAV only)


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


def container_origin(container: av.container.InputContainer) -> float:
    """Seconds to subtract from ``pts * time_base`` so the file's clock starts at 0."""
    return container.start_time / av.time_base if container.start_time is not None else 0.0


def _duration(container: av.container.InputContainer, last_frame_end: float) -> float:
    return container.duration / av.time_base if container.duration else last_frame_end


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise VideoDecodeError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise VideoDecodeError(f"{path}: empty file (0 bytes)")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as err:
        raise VideoDecodeError(f"{path}: cannot open ({err})") from None


def _decode_targets(
    path: Path,
    container: av.container.InputContainer,
    stream: av.VideoStream,
    targets: np.ndarray,
    keyframes: np.ndarray,
) -> tuple[list[av.VideoFrame], int]:
    """The frames whose pts are ``targets`` (increasing), by seek + forward decoding, and the
    number of frames decoded on the way.

    While decoding forward we let the decoder skip non-reference frames that are not targets
    (``skip_frame``, set per packet): nothing references them, so the targets decode exactly
    the same, and a long GOP costs about half as much. This needs synchronous (not frame-
    threaded) decoding, which is also the right choice inside one DataLoader worker.
    """
    context = stream.codec_context
    wanted = set(targets.tolist())

    def decoded_from_here():
        for packet in container.demux(stream):
            context.skip_frame = "DEFAULT" if packet.pts in wanted else "NONREF"
            yield from context.decode(packet)

    found: list[av.VideoFrame] = []
    frames, last_pts, num_decoded = None, None, 0
    for target in targets:
        keyframe = keyframes[max(np.searchsorted(keyframes, target, side="right") - 1, 0)]
        # Seek unless the target is ahead in the GOP being decoded (decoding on is cheaper).
        if frames is None or last_pts is None or last_pts >= target or keyframe > last_pts:
            container.seek(int(keyframe), stream=stream, backward=True, any_frame=False)
            frames = decoded_from_here()
        match = None
        try:
            for frame in frames:
                num_decoded += 1
                if frame.pts is None:
                    continue
                last_pts = frame.pts
                if frame.pts >= target:
                    match = frame
                    break
        except av.error.FFmpegError as err:
            raise VideoDecodeError(f"{path}: decoding failed near pts {target} ({err})") from None
        if match is None:
            raise VideoDecodeError(
                f"{path}: stream ended before sampled frame {len(found)} of {len(targets)} "
                f"(at {float(target * stream.time_base):.3f} s); truncated file?"
            )
        found.append(match)
    return found, num_decoded


def _span_range(path: Path, times: np.ndarray, span: Optional[tuple[float, float]]) -> tuple[int, int]:
    """``[first, last)`` indices of the frames whose times (seconds, increasing) lie in ``span``."""
    if span is None:
        return 0, len(times)
    first, last = (int(i) for i in np.searchsorted(times, span, side="left"))
    if last <= first:
        raise VideoDecodeError(f"{path}: no video frame in [{span[0]:.3f}, {span[1]:.3f}) s")
    return first, last


class FrameSource:
    """An open video whose frames are indexed once; ``sample`` decodes the sampled frames of the
    whole video or of a span, as often as needed (a long video's chunks share one demux)."""

    path: Path
    duration: float  # seconds, from the container

    def sample(
        self,
        num_samples: int,
        train: bool = False,
        generator: np.random.Generator | None = None,
        span: Optional[tuple[float, float]] = None,
    ) -> SampledFrames:
        raise NotImplementedError

    def close(self) -> None: ...

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _PyAVSource(FrameSource):
    def __init__(self, path: Path):
        self.path = path
        self.container = _open(path)
        try:
            self._index()
        except BaseException:
            self.container.close()
            raise

    def _index(self) -> None:
        path, container = self.path, self.container
        if not container.streams.video:
            raise VideoDecodeError(f"{path}: no video stream")
        stream = self.stream = container.streams.video[0]
        stream.thread_type, stream.thread_count = "SLICE", 1  # see _decode_targets
        # Demuxing reads packets but decodes nothing: cheap, and exact for variable frame
        # rates, unlike multiplying an index by the nominal fps.
        pts, keyframe_pts = [], []
        try:
            for packet in container.demux(stream):
                if packet.pts is None or packet.size == 0:
                    continue  # the demuxer's end-of-stream flush packet
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keyframe_pts.append(packet.pts)
        except av.error.FFmpegError as err:
            raise VideoDecodeError(f"{path}: cannot read packets ({err})") from None
        if not pts:
            raise VideoDecodeError(f"{path}: no video frames")
        # A truncated file whose index sits at the front demuxes without error but stops early.
        # The index's frame count can differ a little from what demuxes (edit lists), so only a
        # clear shortfall counts.
        if stream.frames and len(pts) < TRUNCATED_FRACTION * stream.frames:
            raise VideoDecodeError(
                f"{path}: truncated file: its index lists {stream.frames} video frames, only {len(pts)} can be read"
            )
        self.all_pts = np.sort(np.asarray(pts, dtype=np.int64))
        self.keyframes = np.sort(np.asarray(keyframe_pts or [self.all_pts[0]], dtype=np.int64))
        self.origin = container_origin(container)
        self.times = self.all_pts * float(stream.time_base) - self.origin
        frame_step = int(self.all_pts[-1] - self.all_pts[-2]) if len(self.all_pts) > 1 else 0
        last_end = float((int(self.all_pts[-1]) + frame_step) * stream.time_base) - self.origin
        self.duration = _duration(container, last_end)

    def sample(self, num_samples, train=False, generator=None, span=None) -> SampledFrames:
        first, last = _span_range(self.path, self.times, _checked(span))
        indices = first + sample_frame_indices(last - first, num_samples, train, generator)
        decoded, num_decoded = _decode_targets(
            self.path, self.container, self.stream, self.all_pts[indices], self.keyframes
        )
        times = np.asarray([float(f.pts * f.time_base) - self.origin for f in decoded], dtype=np.float32)
        return SampledFrames(
            frames=np.stack([f.to_ndarray(format="rgb24") for f in decoded]),
            indices=indices,
            timestamps=times,
            num_video_frames=len(self.all_pts),
            duration=self.duration,
            num_decoded=num_decoded,
        )

    def close(self) -> None:
        self.container.close()


class _DecordSource(FrameSource):
    def __init__(self, path: Path):
        import decord  # optional dependency; imported here so the package imports without it

        self.path, self._errors = path, decord.DECORDError
        # decord's timestamps count from the video stream's first frame; ours from the file's
        # time 0 (the earliest stream), which is where the audio and the annotations are measured.
        with _open(path) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream_start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
            self.origin = container_origin(container) - stream_start
            duration = container.duration / av.time_base if container.duration else None
        try:
            self.reader = decord.VideoReader(str(path), num_threads=1)
        except decord.DECORDError as err:
            raise VideoDecodeError(f"{path}: decord cannot open ({err})") from None
        self.num_video_frames = len(self.reader)
        if self.num_video_frames == 0:
            raise VideoDecodeError(f"{path}: no video frames")
        try:
            last_end = float(self.reader.get_frame_timestamp([self.num_video_frames - 1])[0, 1]) - self.origin
        except decord.DECORDError as err:
            raise VideoDecodeError(f"{path}: decord decoding failed ({err})") from None
        self.duration = duration if duration else last_end

    def sample(self, num_samples, train=False, generator=None, span=None) -> SampledFrames:
        try:
            first, last = 0, self.num_video_frames
            if span is not None:
                all_frames = list(range(self.num_video_frames))
                starts = self.reader.get_frame_timestamp(all_frames)[:, 0] - self.origin
                first, last = _span_range(self.path, starts, _checked(span))
            indices = first + sample_frame_indices(last - first, num_samples, train, generator)
            frames = self.reader.get_batch(indices.tolist()).asnumpy()
            spans = self.reader.get_frame_timestamp(indices.tolist())  # [t, 2] start/end, seconds
        except self._errors as err:
            raise VideoDecodeError(f"{self.path}: decord decoding failed ({err})") from None
        return SampledFrames(
            frames=frames,
            indices=indices,
            timestamps=(spans[:, 0] - self.origin).astype(np.float32),
            num_video_frames=self.num_video_frames,
            duration=self.duration,
        )


def _checked(span: Optional[tuple[float, float]]) -> Optional[tuple[float, float]]:
    if span is not None and not span[0] < span[1]:
        raise ValueError(f"span must be (start, end) with start < end, got {span}")
    return span


def open_video(path: str | Path, backend: VideoBackend = "pyav") -> FrameSource:
    """Open ``path`` and index its frames (once); raises ``VideoDecodeError``. Use as a context
    manager; ``sample`` then decodes the sampled frames of the whole video or of a span."""
    if backend == "pyav":
        return _PyAVSource(Path(path))
    if backend == "decord":
        return _DecordSource(Path(path))
    raise ValueError(f"unknown video backend {backend!r}; valid: ['pyav', 'decord']")


def read_frames(
    path: str | Path,
    num_samples: int,
    backend: VideoBackend = "pyav",
    train: bool = False,
    generator: np.random.Generator | None = None,
    span: Optional[tuple[float, float]] = None,
) -> SampledFrames:
    """Decode the ``num_samples`` sampled frames of ``path`` (of its frames shown in ``span`` =
    [start, end) seconds, when given); raises ``VideoDecodeError``. ``indices`` stay indices into
    the whole video and ``timestamps`` stay on the file's clock."""
    _checked(span)
    with open_video(path, backend) as source:
        return source.sample(num_samples, train, generator, span)
