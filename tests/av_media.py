"""Tiny test videos with known content: a bright square in chosen frames, a tone in a time range."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Optional

import av
import numpy as np

from mr_data.media import write_av_file

SIZE = 64
DARK, BRIGHT = 16, 240
SQUARE = (slice(8, 40), slice(8, 40))  # rows, cols of the bright square


def make_video(
    path: Path,
    num_frames: int = 60,
    fps: float = 10.0,
    square_frames: Iterable[int] = (),
    tone: Optional[tuple[float, float]] = None,
    tone_hz: float = 1000.0,
    audio_seconds: Optional[float] = None,
    with_audio: bool = True,
    sample_rate: int = 16000,
    gop: Optional[int] = 10,
) -> Path:
    """A 64x64 video: dark frames, a bright square in ``square_frames``; a ``tone_hz`` sine in
    ``tone = (start, end)`` seconds of an otherwise silent track (``audio_seconds`` long,
    default the video's length); no audio stream when ``with_audio`` is False."""
    frames = np.full((num_frames, SIZE, SIZE, 3), DARK, dtype=np.uint8)
    for index in square_frames:
        frames[index][SQUARE] = BRIGHT
    audio = None
    if with_audio:
        seconds = num_frames / fps if audio_seconds is None else audio_seconds
        audio = np.zeros(int(round(seconds * sample_rate)), dtype=np.float32)
        if tone is not None:
            lo, hi = (int(round(t * sample_rate)) for t in tone)
            t = np.arange(hi - lo) / sample_rate
            audio[lo:hi] = 0.5 * np.sin(2 * np.pi * tone_hz * t)
    return write_av_file(path, frames, fps, audio, sample_rate, crf=18, gop=gop)


def square_brightness(frame: np.ndarray) -> float:
    """Mean value inside the square region of an ``[H, W, 3]`` uint8 frame."""
    return float(frame[SQUARE].mean())


def remux_faststart(src: Path, dst: Path) -> Path:
    """Copy ``src`` with its index (moov) at the front, as streaming-ready MP4s have it."""
    import av

    with av.open(str(src)) as source, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in source.streams}
        for packet in source.demux():
            if packet.dts is None:
                continue  # flush packets
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return dst


def make_late_video(path: Path, first_pts: int = 5, num_frames: int = 30, fps: int = 10) -> Path:
    """A video stream whose first frame is shown at ``first_pts / fps`` s, after a silent
    audio track that starts at 0 (so the file's clock starts with the audio)."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = SIZE, SIZE, "yuv420p"
        sound = container.add_stream("aac", rate=16000)
        sound.layout = "mono"
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(np.full((SIZE, SIZE, 3), DARK, np.uint8), format="rgb24")
            frame.pts, frame.time_base = first_pts + i, Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        seconds = (first_pts + num_frames) / fps
        for start in range(0, int(seconds * 16000), 1024):
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 16000, start
            container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
    return path


def make_stereo_audio(path: Path, left: np.ndarray, right: np.ndarray, sample_rate: int = 16000) -> Path:
    """An AAC-only MP4 with two channels (float ``[S]`` each)."""
    import av

    samples = np.stack([left, right]).astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=sample_rate)
        stream.layout = "stereo"
        for start in range(0, samples.shape[1], 1024):
            chunk = np.ascontiguousarray(samples[:, start : start + 1024])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = sample_rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def decode_av(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(uint8 [N, H, W, 3] frames, their times in s, mono float audio, its sample rate)."""
    with av.open(str(path)) as container:
        frames = [(f.to_ndarray(format="rgb24"), float(f.time)) for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        chunks = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
        rate = container.streams.audio[0].rate
    return np.stack([f for f, _ in frames]), np.asarray([t for _, t in frames]), np.concatenate(chunks), rate


CLOCK_SIZE = 16
CLOCK_STEP = 16  # colour levels per digit: flat frames survive H.264 and YUV 4:2:0 within +-7
CLOCK_TONES = (250.0, 450.0, 750.0, 1150.0, 1700.0, 2450.0, 3400.0)  # Hz, a second's sound: below 4 kHz


def clock_colour(second: int) -> tuple[int, int, int]:
    """The RGB colour of the clock video's frame at ``second``: its base-16 digits (up to 4095 s)."""
    return tuple(int(d) * CLOCK_STEP + CLOCK_STEP // 2 for d in (second % 16, second // 16 % 16, second // 256))


def clock_second(rgb: np.ndarray) -> int:
    """The second a clock frame shows, from its mean RGB (0-255) values ``[3]``."""
    r, g, b = (int(round((float(v) - CLOCK_STEP // 2) / CLOCK_STEP)) for v in rgb)
    return r + 16 * g + 256 * b


def make_clock_video(path: Path, duration: float, sample_rate: int = 8000) -> Path:
    """A ``CLOCK_SIZE`` px video at 1 fps lasting ``round(duration)`` s whose frame at second i is
    flat ``clock_colour(i)`` and whose sound around second i (``[i - 0.5, i + 0.5)``) is a tone of
    ``CLOCK_TONES[i % 7]`` Hz, phase-continuous, as PCM in a ``.mov`` (nothing to encode, where AAC
    takes seconds per 20 minutes): a clip centred on a frame is loudest at its second's tone."""
    seconds = int(round(duration))
    frames = (np.full((CLOCK_SIZE, CLOCK_SIZE, 3), clock_colour(i), dtype=np.uint8) for i in range(seconds))
    second_of_sample = np.floor(np.arange(seconds * sample_rate) / sample_rate + 0.5).astype(np.int64)
    frequency = np.asarray(CLOCK_TONES)[second_of_sample % len(CLOCK_TONES)]
    audio = (0.5 * np.sin(2 * np.pi * np.cumsum(frequency) / sample_rate)).astype(np.float32)
    return write_av_file(path, frames, 1.0, audio, sample_rate, crf=18, audio_codec="pcm_s16le")
