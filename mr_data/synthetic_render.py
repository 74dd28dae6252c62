"""Pixels and samples of a planned synthetic video (see ``synthetic_plan``).

The background is mildly noisy on purpose, so no single pixel or sample gives an event away:
- picture: a dull two-colour gradient with a blocky texture that drifts slowly (so P-frames
  carry motion, as in real footage), plus fresh per-frame noise;
- sound: a low hiss everywhere.
Events are strong and clean on top of it (big saturated shapes, loud tones with 10 ms fades so
the AAC encoder does not smear clicks), so a tiny model can learn them on a CPU in minutes.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from mr_data.synthetic_plan import COLOURS, SOUNDS, Event, SyntheticSpec, VideoPlan

NOISE_POOL = 8  # distinct per-frame noise images, drawn at random per frame (cheap at 480p)
TEXTURE_BLOCK = 8  # pixels per texture cell at 64 px; scaled with the frame size
FADE_S = 0.01  # seconds of raised-cosine fade at each end of a sound


def shape_mask(event: Event, height: int, width: int) -> np.ndarray:
    """bool ``[H, W]``: the pixels covered by the event's shape."""
    side = event.size * min(height, width)
    cx, cy = event.centre[0] * width, event.centre[1] * height
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    dx, dy = xs - cx, ys - cy
    half = side / 2
    if event.shape == "square":
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    if event.shape == "circle":
        return dx**2 + dy**2 <= half**2
    if event.shape == "triangle":  # apex up, base at the bottom of the bounding square
        inside_rows = (dy >= -half) & (dy <= half)
        return inside_rows & (np.abs(dx) <= (dy + half) / 2)
    raise ValueError(f"unknown shape {event.shape!r}")


def _background(
    rng: np.random.Generator, height: int, width: int, levels: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """int16 ``[H, W, 3]`` gradient and a wider int16 ``[H, 2W, 3]`` texture to drift across it."""
    low, high = rng.uniform(*levels, size=(2, 3))
    low = low.mean() + 0.4 * (low - low.mean())  # desaturate: events own the saturated colours
    high = high.mean() + 0.4 * (high - high.mean())
    ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    gradient = np.broadcast_to(low + (high - low) * ramp, (height, width, 3)).astype(np.int16)
    block = max(2, TEXTURE_BLOCK * min(height, width) // 64)
    cells = rng.integers(-12, 13, size=(height // block + 1, 2 * width // block + 1, 1), dtype=np.int16)
    texture = np.repeat(np.repeat(cells, block, axis=0), block, axis=1)[:height, : 2 * width]
    return gradient, np.broadcast_to(texture, (height, 2 * width, 3))


def render_frames(plan: VideoPlan, spec: SyntheticSpec, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Yield the video's ``plan.num_frames`` frames, uint8 ``[H, W, 3]`` RGB, one at a time.

    Frame ``i`` is shown at ``i / fps`` s; a shape is on screen in the frames whose time lies in
    ``[start, end)`` of its event.
    """
    height, width = spec.height, spec.width
    gradient, texture = _background(rng, height, width, spec.background_levels)
    noise = rng.normal(0.0, spec.visual_noise, size=(NOISE_POOL, height, width, 3)).astype(np.int16)
    drift = rng.uniform(2.0, 6.0) * width / 64  # pixels per second, so the texture moves slowly
    shapes = [
        (event, shape_mask(event, height, width), np.asarray(COLOURS[event.colour], dtype=np.int16))
        for event in plan.events
        if event.shape is not None
    ]
    for i in range(plan.num_frames):
        t = i / spec.fps
        offset = int(t * drift) % width
        frame = gradient + texture[:, offset : offset + width]
        for event, mask, colour in shapes:
            if event.start <= t < event.end:
                frame[mask] = colour
        frame += noise[rng.integers(NOISE_POOL)]
        yield np.clip(frame, 0, 255).astype(np.uint8)


def render_audio(plan: VideoPlan, spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    """Mono float32 ``[round(duration * sample_rate)]`` in [-1, 1]: hiss plus the events' sounds
    in the samples of ``[start, end)``."""
    rate = spec.sample_rate
    audio = rng.normal(0.0, spec.audio_noise, size=round(plan.duration * rate)).astype(np.float32)
    for event in plan.events:
        if event.sound is None:
            continue
        first, last = event.start * rate, min(event.end * rate, len(audio))
        t = np.arange(last - first, dtype=np.float64) / rate
        if event.sound == SOUNDS[2]:  # noise burst: broadband, about as loud (RMS) as a tone
            wave = np.clip(rng.normal(0.0, 0.7, size=len(t)), -1.0, 1.0)
        else:
            hz = spec.tone_hz[SOUNDS.index(event.sound)]
            wave = np.sin(2 * np.pi * hz * t)
        fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / FADE_S)
        envelope = 0.5 - 0.5 * np.cos(np.pi * fade)
        audio[first:last] += (event.loudness * wave * envelope).astype(np.float32)
    return np.clip(audio, -1.0, 1.0)
