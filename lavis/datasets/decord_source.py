"""The decord reader (optional, x86 wheels only): the same frame indices and timestamps as PyAV."""

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


class DecordSource(FrameSource):
    """A video opened by ``decord.VideoReader``, on the file's clock like ``PyAVSource``."""

    def __init__(self, path: Path):
        import decord  # optional dependency; imported here so the package imports without it

        self.path, self._errors = path, decord.DECORDError
        # decord's timestamps count from the video stream's first frame; ours from the file's
        # time 0 (the earliest stream), which is where the audio and the annotations are measured.
        with open_container(path) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream_start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
            self.origin = container_origin(container) - stream_start
            duration = container.duration / av.time_base if container.duration else None
            # decord ignores the display rotation: read it from the first frame, as PyAV gives it.
            first = next(container.decode(stream), None)
            self.rotation = first.rotation if first is not None else 0
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
        self.duration = stated_duration(path, duration, last_end)

    def sample(self, num_samples, train=False, generator=None, span=None) -> SampledFrames:
        """See ``FrameSource.sample``; frame times come from decord's own index."""
        try:
            first, last = 0, self.num_video_frames
            if span is not None:
                all_frames = list(range(self.num_video_frames))
                starts = self.reader.get_frame_timestamp(all_frames)[:, 0] - self.origin
                first, last = span_range(self.path, starts, checked_span(span))
            indices = first + sample_frame_indices(last - first, num_samples, train, generator)
            frames = np.stack(
                [upright(f, self.rotation, self.path) for f in self.reader.get_batch(indices.tolist()).asnumpy()]
            )
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

    def close(self) -> None:
        """Free the reader (and with it the file)."""
        # decord has no close(): its VideoReader closes the file when it is freed.
        del self.reader
