"""The PyAV reader (the default): seek-based decoding of the sampled frames only.

The video packets are demuxed once per opened file (no decoding) to get every frame's
presentation time and the keyframes, so a long video's chunks are sampled from one index. For
each sampled frame we seek to the keyframe at or before it and decode forward to it (letting the
decoder skip non-reference frames that are not sampled); when the next sampled frame lies in the
GOP already being decoded we keep decoding instead of seeking again. Only the sampled frames are
converted to RGB, and turned upright when the container says the picture is rotated (a phone's
portrait video). A container whose stated duration is far beyond its streams' packets is refused.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from lavis.datasets.frame_sampling import checked_span, sample_frame_indices, span_range
from lavis.datasets.frame_source import (
    FrameSource,
    SampledFrames,
    VideoDecodeError,
    container_origin,
    open_container,
    stated_duration,
    upright,
)

TRUNCATED_FRACTION = 0.9  # fewer readable frames than this share of the index's count: truncated


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


class PyAVSource(FrameSource):
    """A video opened and indexed by PyAV (see the module docstring)."""

    def __init__(self, path: Path):
        self.path = path
        self.container = open_container(path)
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
        pts, keyframe_pts, audio_end = [], [], 0.0
        try:
            # The audio packets' times too (no decoding): where the streams really end.
            for packet in container.demux(stream, *container.streams.audio):
                if packet.pts is None or packet.size == 0:
                    continue  # the demuxer's end-of-stream flush packet
                if packet.stream.type == "audio":
                    audio_end = max(audio_end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
                    continue
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
        streams_end = max(last_end, audio_end - self.origin)
        self.duration = stated_duration(
            path, container.duration / av.time_base if container.duration else None, streams_end
        )

    def sample(self, num_samples, train=False, generator=None, span=None) -> SampledFrames:
        """See ``FrameSource.sample``; ``num_decoded`` counts the frames decoded to reach the sampled ones."""
        first, last = span_range(self.path, self.times, checked_span(span))
        indices = first + sample_frame_indices(last - first, num_samples, train, generator)
        decoded, num_decoded = _decode_targets(
            self.path, self.container, self.stream, self.all_pts[indices], self.keyframes
        )
        times = np.asarray([float(f.pts * f.time_base) - self.origin for f in decoded], dtype=np.float32)
        return SampledFrames(
            frames=np.stack([upright(f.to_ndarray(format="rgb24"), f.rotation, self.path) for f in decoded]),
            indices=indices,
            timestamps=times,
            num_video_frames=len(self.all_pts),
            duration=self.duration,
            num_decoded=num_decoded,
        )

    def close(self) -> None:
        """Close the container (the file)."""
        self.container.close()
