"""Write real MP4 files (H.264 video + AAC audio) with PyAV, for the synthetic benchmark and tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

AAC_FRAME = 1024  # samples per AAC frame


def write_av_file(
    path: str | Path,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 48000,
    crf: int = 23,
    gop: int | None = None,
    audio_codec: str = "aac",
) -> Path:
    """Encode ``frames`` (uint8 ``[N, H, W, 3]``, RGB; H and W even) and optional mono ``audio``
    (float ``[S]`` in [-1, 1]) into an MP4. ``frames`` may also be an iterable of uint8
    ``[H, W, 3]`` frames, so long high-resolution videos (30 s of 480p is ~1 GB raw) are encoded
    without holding them in memory. ``gop`` is the keyframe interval in frames (default: the
    encoder's); real videos have keyframes every few seconds, which is what seeking must cope with.
    ``audio_codec="pcm_s16le"`` (in a ``.mov`` path: MP4 holds no PCM) costs nothing to encode,
    where AAC takes ~4 s per 20 minutes of 8 kHz sound: for tests of very long videos.
    """
    if isinstance(frames, np.ndarray) and frames.ndim != 4:
        raise ValueError(f"frames must be uint8 [N, H, W, 3], got {frames.dtype} {frames.shape}")
    stream_of_frames = iter(frames)
    first = next(stream_of_frames, None)
    if first is None:
        raise ValueError("frames is empty: a video needs at least one frame")
    if first.ndim != 3 or first.shape[-1] != 3 or first.dtype != np.uint8:
        raise ValueError(f"each frame must be uint8 [H, W, 3], got {first.dtype} {first.shape}")
    height, width = first.shape[:2]
    if height % 2 or width % 2:
        raise ValueError(f"H.264 needs even frame sizes, got {width}x{height}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        options = {"crf": str(crf), "preset": "veryfast"}
        if gop is not None:
            options.update({"g": str(gop), "keyint_min": str(gop)})
        video.options = options
        sound = None
        if audio is not None:
            sound = container.add_stream(audio_codec, rate=sample_rate)
            sound.layout = "mono"
        for frame in itertools.chain([first], stream_of_frames):
            if frame.shape != first.shape or frame.dtype != np.uint8:
                raise ValueError(f"frame of {frame.dtype} {frame.shape} differs from the first, {first.shape}")
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode(None))
        if sound is not None:
            samples = np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0)
            for start in range(0, len(samples), AAC_FRAME):
                chunk = samples[start : start + AAC_FRAME]
                out = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                out.sample_rate, out.pts = sample_rate, start
                container.mux(sound.encode(out))
            container.mux(sound.encode(None))
    return path
