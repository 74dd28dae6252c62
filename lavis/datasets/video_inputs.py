"""One video -> the model's per-frame inputs: the one composition of frame sampling and seek
decoding (``video_io``), the soundtrack (``audio_io``), one audio clip per sampled frame, CLAP
log-mels (``audio_features``), the frame processor and the padded tensors (``collate``).

The training/eval dataset, inference on a user's video and the loader benchmarks all read videos
through ``VideoInputReader``. A video is opened and its frames indexed once however many spans are
sampled (a long video's chunks), and its soundtrack is decoded once; each span's clips are cut on
the video's clock around that span's frames.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import av
import numpy as np
import torch

from lavis.datasets.audio_features import AudioClipConfig, ClapLogMel
from lavis.datasets.audio_io import Waveform, cut_clips, read_audio
from lavis.datasets.collate import frame_tensors
from lavis.datasets.video_io import SampledFrames, VideoBackend, VideoDecodeError, open_video

Span = Optional[tuple[float, float]]  # [start, end) seconds on the video's clock; None: the whole video
# The spans to sample, or a function of the video's duration that gives them (a long video's
# chunks depend on its length, known once the video is open).
Spans = Union[Sequence[Span], Callable[[float], Sequence[Span]]]


@dataclass
class DecodedSpan:
    """The sampled frames of one span and their audio, before the frame processor."""

    frames: SampledFrames  # frames uint8 [t, H, W, 3], timestamps [t] on the video's clock
    mel: Optional[torch.Tensor]  # float32 [t, F, n_mels] log-mel per frame clip; None without audio
    audio_mask: Optional[np.ndarray]  # bool [t], False: the clip holds no audio; None without audio


@dataclass
class DecodedVideo:
    """A video decoded for inference: its frames per requested span and its audio track."""

    path: Path
    duration: float  # seconds, from the container
    spans: list[DecodedSpan]  # in the order asked
    waveform: Optional[Waveform]  # None: audio not read, or no (decodable) audio stream


class VideoInputReader:
    """Reads videos at ``num_frames`` frames with the given audio settings and backend;
    ``with_audio=False`` reads no audio at all (video-only models get no audio keys)."""

    def __init__(
        self, num_frames: int, audio: AudioClipConfig, backend: VideoBackend = "pyav", with_audio: bool = True
    ):
        if num_frames <= 0:
            raise ValueError(f"num_frames must be positive, got {num_frames}")
        self.num_frames = num_frames
        self.audio = audio
        self.backend = backend
        self.with_audio = with_audio
        self.log_mel = ClapLogMel(audio)

    def read(
        self,
        path: str | Path,
        spans: Spans = (None,),
        train: bool = False,
        generator: np.random.Generator | None = None,
    ) -> DecodedVideo:
        """Decode the sampled frames of each span (train: a random frame per interval from
        ``generator``; else the middle ones) and their audio; raises ``VideoDecodeError``."""
        path = Path(path)
        try:
            with open_video(path, self.backend) as source:
                duration = float(source.duration)
                wanted = spans(duration) if callable(spans) else spans
                sampled = [source.sample(self.num_frames, train, generator, span) for span in wanted]
            waveform = self.waveform(path)
        except av.error.FFmpegError as err:  # anything the readers did not already wrap
            raise VideoDecodeError(f"{path}: {err}") from None
        decoded = [DecodedSpan(frames, *self.audio_features(waveform, frames.timestamps)) for frames in sampled]
        return DecodedVideo(path, duration, decoded, waveform)

    def waveform(self, path: Path) -> Optional[Waveform]:
        """The soundtrack at the clips' sampling rate (None: not read, or there is none)."""
        return read_audio(path, self.audio.sampling_rate) if self.with_audio else None

    def audio_features(
        self, waveform: Optional[Waveform], timestamps: np.ndarray
    ) -> tuple[Optional[torch.Tensor], Optional[np.ndarray]]:
        """Log-mels ``[t, F, n_mels]`` of the clips centred on ``timestamps`` and their mask
        ``[t]``; ``(None, None)`` when the reader reads no audio."""
        if not self.with_audio:
            return None, None
        clips, mask = cut_clips(waveform, timestamps, self.audio.clip_len, self.audio.sampling_rate)
        return self.log_mel(clips), mask

    def tensors(
        self,
        span: DecodedSpan,
        processor: Any,
        generator: np.random.Generator | None = None,
        origin: float = 0.0,
    ) -> dict[str, torch.Tensor]:
        """The span's per-frame batch tensors padded to ``num_frames`` (``collate.FRAME_KEYS``),
        with timestamps relative to ``origin`` (a chunk's start: it is shown as a video of its own)."""
        pixels = processor(span.frames.frames, generator)  # [t, 3, S, S]
        times = span.frames.timestamps - np.float32(origin)
        return frame_tensors(pixels, times, self.num_frames, span.mel, span.audio_mask)
