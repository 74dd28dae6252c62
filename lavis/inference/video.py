"""One user video -> model inputs, with the dataset's own code (sampling, decoding, processor,
audio clips, CLAP log-mel); nothing here re-implements any of them.

The frames of each chunk (``long_video.Chunk``) are sampled by ``read_frames`` with the chunk as
its ``span`` (for a video that fits the model's span: the whole video, exactly as the eval
dataset samples it), the soundtrack is decoded once, and each frame's clip is cut on the
video's clock. A chunk's sample has the batch keys of ``lavis.datasets.collate`` with timestamps
relative to the chunk's start and the chunk's length as its duration: a window of a long video is
shown to the model as a short video of its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import av
import numpy as np
import torch

from lavis.datasets.audio_features import AudioClipConfig, ClapLogMel
from lavis.datasets.audio_io import Waveform, cut_clips, read_audio
from lavis.datasets.collate import frame_tensors
from lavis.datasets.video_io import SampledFrames, VideoBackend, VideoDecodeError, read_frames
from lavis.inference.long_video import Chunk, chunk_spans

logger = logging.getLogger(__name__)


@dataclass
class ChunkInput:
    chunk: Chunk
    frames: SampledFrames  # timestamps on the video's clock
    # video [T,3,S,S], frame_mask/timestamps [T]; audio_features [T,F,M], audio_mask [T] with audio
    tensors: dict[str, torch.Tensor]


@dataclass
class DecodedVideo:
    path: Path
    duration: float  # seconds, from the container
    overview: SampledFrames  # frames sampled across the whole video (a timeline's strip)
    chunks: list[ChunkInput]
    waveform: Optional[Waveform]  # None: no (decodable) audio stream, or audio not read
    has_audio: bool  # the model was given audio: some sampled frame's clip holds sound


class VideoReader:
    """Reads videos the way a run's eval dataset does (its ``num_frames``, eval processor, audio
    settings, video backend, and ``with_audio``: False for video-only models, which get no audio
    keys at all)."""

    def __init__(
        self, num_frames: int, processor: Any, audio: AudioClipConfig, backend: VideoBackend = "pyav",
        with_audio: bool = True,
    ):
        self.num_frames = num_frames
        self.processor = processor
        self.audio = audio
        self.backend = backend
        self.with_audio = with_audio
        self.log_mel = ClapLogMel(audio)

    def read(self, path: str | Path, span: float, overlap: float) -> DecodedVideo:
        """Decode ``path`` into the chunks that cover it at ``span`` seconds with ``overlap``;
        raises ``VideoDecodeError`` (naming the file) when it cannot be used."""
        path = Path(path)
        try:
            whole = read_frames(path, self.num_frames, self.backend)
            waveform = read_audio(path, self.audio.sampling_rate) if self.with_audio else None
        except av.error.FFmpegError as err:  # anything the readers did not already wrap
            raise VideoDecodeError(f"{path}: {err}") from None
        duration = float(whole.duration)
        if not duration > 0:
            raise VideoDecodeError(f"{path}: the container reports no duration")
        chunks = chunk_spans(duration, span, overlap)
        inputs = []
        for chunk in chunks:
            frames = whole if len(chunks) == 1 else self._read_span(path, chunk)
            inputs.append(ChunkInput(chunk, frames, self._tensors(frames, waveform, chunk.start)))
        has_audio = any(bool(c.tensors["audio_mask"].any()) for c in inputs if "audio_mask" in c.tensors)
        if waveform is None and self.with_audio:
            logger.warning("%s has no audio stream: predicting from the frames only (audio masked)", path)
        return DecodedVideo(path, duration, whole, inputs, waveform, has_audio)

    def _read_span(self, path: Path, chunk: Chunk) -> SampledFrames:
        try:
            return read_frames(path, self.num_frames, self.backend, span=(chunk.start, chunk.end))
        except av.error.FFmpegError as err:
            raise VideoDecodeError(f"{path}: {err}") from None

    def _tensors(self, frames: SampledFrames, waveform: Optional[Waveform], origin: float) -> dict[str, torch.Tensor]:
        """The per-frame tensors of one chunk, padded to ``num_frames`` (shapes in the class doc)."""
        local_times = frames.timestamps - np.float32(origin)
        mel = audio_mask = None
        if self.with_audio:  # clips are cut on the video's clock, like the frames' own times
            clips, audio_mask = cut_clips(waveform, frames.timestamps, self.audio.clip_len, self.audio.sampling_rate)
            mel = self.log_mel(clips)
        return frame_tensors(self.processor(frames.frames), local_times, self.num_frames, mel, audio_mask)
