"""A video's soundtrack, read once, cut into one clip per sampled frame.

The soundtrack is decoded once per video (all audio packets, no video decoding), resampled to
the audio encoder's rate with PyAV's ``AudioResampler`` and averaged over its channels (mono).
It is placed on the file's clock by the first decoded frame's presentation time (AAC encoder
priming is removed by the demuxer's edit list, so counting samples from the file start would
shift it).

Clip i is centred on frame i's timestamp and lasts ``clip_len`` seconds; the part of a clip that
falls before the file's start or outside the decoded audio is zeros. Nothing wraps around: a
short video's first clip never comes from its end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from lavis.datasets.frame_source import VideoDecodeError, container_origin


@dataclass
class Waveform:
    """A file's audio track, mono, with where its first sample lies on the file's clock."""

    samples: np.ndarray  # float32 [S], mono, in [-1, 1]
    sample_rate: int
    start: float  # seconds on the file's clock of samples[0]


def read_audio(path: str | Path, sample_rate: int) -> Waveform | None:
    """The first audio stream of ``path`` as mono at ``sample_rate``; None if there is none.

    Raises ``VideoDecodeError`` when the file cannot be opened or its audio cannot be decoded.
    """
    path = Path(path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as err:
        raise VideoDecodeError(f"{path}: cannot open ({err})") from None
    with container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        # Resample every channel (planar float, [C, S] arrays), then average them: the mono
        # that librosa, and so CLAP's training data, uses. swresample's own down-mix adds the
        # channels at -3 dB each, which is 3 dB louder than the mean for correlated channels.
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)
        chunks, start = [], None
        try:
            for frame in container.decode(stream):
                if start is None and frame.pts is not None:
                    start = float(frame.pts * frame.time_base) - container_origin(container)
                chunks.extend(out.to_ndarray().mean(axis=0) for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray().mean(axis=0) for out in resampler.resample(None))
        except av.error.FFmpegError as err:
            raise VideoDecodeError(f"{path}: audio decoding failed ({err})") from None
    if not chunks:
        return None  # an audio stream without a single decodable frame
    samples = np.concatenate(chunks).astype(np.float32, copy=False)
    return Waveform(samples=samples, sample_rate=sample_rate, start=start if start is not None else 0.0)


def cut_clips(
    waveform: Waveform | None, centers: np.ndarray, clip_len: float, sample_rate: int
) -> tuple[np.ndarray, np.ndarray]:
    """Clips ``float32 [t, L]`` (``L = round(clip_len * sample_rate)``) centred on ``centers``
    (seconds, ``[t]``) and ``mask`` ``bool [t]``: False where a clip holds no audio at all (no
    audio stream, or a clip entirely outside the decoded audio)."""
    num_samples = int(round(clip_len * sample_rate))
    clips = np.zeros((len(centers), num_samples), dtype=np.float32)
    mask = np.zeros(len(centers), dtype=bool)
    if waveform is None:
        return clips, mask
    if waveform.sample_rate != sample_rate:
        raise ValueError(f"waveform is at {waveform.sample_rate} Hz, clips asked at {sample_rate} Hz")
    samples = waveform.samples
    # Sample positions inside ``samples``; time 0 of the file may lie after samples[0] when the
    # audio starts early, and nothing before time 0 belongs to the video.
    first_valid = max(0, int(round(-waveform.start * sample_rate)))
    for i, center in enumerate(np.asarray(centers, dtype=np.float64)):
        begin = int(round((center - clip_len / 2 - waveform.start) * sample_rate))
        lo, hi = max(begin, first_valid), min(begin + num_samples, len(samples))
        if hi > lo:
            clips[i, lo - begin : hi - begin] = samples[lo:hi]
            mask[i] = True
    return clips, mask
