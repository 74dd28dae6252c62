"""One user video -> the model inputs of each chunk, through the dataset's own reader
(``lavis.datasets.video_inputs.VideoInputReader``: sampling, decoding, processor, audio clips,
CLAP log-mel); nothing here re-implements any of them.

The video is opened and indexed once: frames are sampled across the whole video (the timeline's
strip, and the model's input when the video fits the span, exactly as the eval dataset samples
it) and, for a longer video, inside each chunk (``long_video.Chunk``); the soundtrack is decoded
once and each frame's clip cut on the video's clock. A chunk's sample has the batch keys of
``lavis.datasets.collate`` with timestamps relative to the chunk's start and the chunk's length
as its duration: a window of a long video is shown to the model as a short video of its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from lavis.common.typed import to_dict
from lavis.datasets.audio_io import Waveform
from lavis.datasets.video_inputs import Span, VideoInputReader
from lavis.datasets.video_io import SampledFrames, VideoDecodeError
from lavis.inference.long_video import Chunk, chunk_spans

logger = logging.getLogger(__name__)


@dataclass
class ChunkInput:
    """One chunk of a video as the model reads it: its sampled frames and the batch tensors made from them."""

    chunk: Chunk
    frames: SampledFrames  # timestamps on the video's clock
    # video [T,3,S,S], frame_mask/timestamps [T]; audio_features [T,F,M], audio_mask [T] with audio
    tensors: dict[str, torch.Tensor]


@dataclass
class ChunkedVideo:
    """A user's video read once for prediction: the model's inputs per chunk, plus what a timeline draws."""

    path: Path
    duration: float  # seconds, from the container
    overview: SampledFrames  # frames sampled across the whole video (a timeline's strip)
    chunks: list[ChunkInput]
    waveform: Optional[Waveform]  # None: no (decodable) audio stream, or audio not read
    has_audio: bool  # the model was given audio: some sampled frame's clip holds sound


class VideoReader:
    """Reads videos the way a run's eval dataset does: ``inputs`` and ``processor`` are the
    dataset config's ``reader()`` and eval ``processor`` (``from_dataset``). A video-only model's
    reader (``with_audio`` False) gives no audio keys at all."""

    def __init__(self, inputs: VideoInputReader, processor: Any):
        self.inputs = inputs
        self.processor = processor

    @classmethod
    def from_dataset(cls, dataset_cfg: Any) -> VideoReader:
        """The reader of a dataset config (``MomentDatasetConfig``): its frames, audio, backend
        and eval processor."""
        return cls(dataset_cfg.reader(), dataset_cfg.processor("eval"))

    def settings(self) -> dict[str, Any]:
        """What shapes the model's inputs of a video (JSON values): frames, frame processor,
        audio clips and decoding backend. Part of the video index's key."""
        processor = {"name": type(self.processor).__name__, **to_dict(getattr(self.processor, "cfg", None) or {})}
        return {
            "num_frames": self.inputs.num_frames,
            "processor": processor,
            "audio": to_dict(self.inputs.audio) if self.with_audio else None,
            "backend": self.inputs.backend,
        }

    @property
    def with_audio(self) -> bool:
        """Whether the audio is read (False for a video-only model's run)."""
        return self.inputs.with_audio

    def read(self, path: str | Path, span: float, overlap: float) -> ChunkedVideo:
        """Decode ``path`` into the chunks that cover it at ``span`` seconds with ``overlap``;
        raises ``VideoDecodeError`` (naming the file) when it cannot be used."""
        path = Path(path)
        chunks: list[Chunk] = []

        def spans(duration: float) -> list[Span]:
            if not duration > 0:
                raise VideoDecodeError(f"{path}: the container reports no duration")
            chunks.extend(chunk_spans(duration, span, overlap))
            return [None] + ([(c.start, c.end) for c in chunks] if len(chunks) > 1 else [])

        video = self.inputs.read(path, spans)
        overview, per_chunk = video.spans[0], video.spans[1:] or video.spans[:1]
        inputs = [
            ChunkInput(chunk, decoded.frames, self.inputs.tensors(decoded, self.processor, origin=chunk.start))
            for chunk, decoded in zip(chunks, per_chunk)
        ]
        has_audio = any(bool(c.tensors["audio_mask"].any()) for c in inputs if "audio_mask" in c.tensors)
        if video.waveform is None and self.with_audio:
            logger.warning("%s has no audio stream: predicting from the frames only (audio masked)", path)
        return ChunkedVideo(path, video.duration, overview.frames, inputs, video.waveform, has_audio)
