"""Train-time temporal crop: a training sample shows a random stretch of the video that contains
the query's moment, and its windows, timestamps and duration are shifted into the stretch.

Why: with few videos read for many epochs, a model can lower its training loss by recognising
the video (its background, its sound) and recalling where the moment was, instead of finding it.
A crop moves the moment to a new place in a new duration every time the video is read, so only
grounding pays (the README's demo section has the measured effect).

The crop ``[c0, c1)`` is on whole seconds (the targets are whole seconds in the default time
format), covers every ground-truth window of the query, and is at least ``min_fraction`` of the
video. The sample keeps the frames it already has whose timestamps fall inside the crop (so it
shows fewer frames; nothing is decoded again), re-padded to the same length. The same function
crops live samples (pixels + log-mels) and cached-feature samples (Q-Former tokens + CLAP
embeddings), since both carry their per-frame tensors under ``collate.FRAME_KEYS``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Optional

import numpy as np
import torch

from lavis.common.constraints import Range, UnitInterval
from lavis.datasets.collate import FRAME_KEYS, pad_frames


@dataclass
class TemporalCropConfig:
    """``datasets.<name>.temporal_crop``: how often and how short a training video may be cropped."""

    prob: UnitInterval = 0.0  # chance that a training sample is cropped (0: never; evaluation never is)
    min_fraction: Annotated[float, Range(gt=0, le=1)] = 0.5  # shortest crop, as a fraction of the video's duration

    def __post_init__(self) -> None:
        if not 0.0 <= self.prob <= 1.0:
            raise ValueError(f"temporal_crop.prob must lie in [0, 1], got {self.prob}")
        if not 0.0 < self.min_fraction <= 1.0:
            raise ValueError(f"temporal_crop.min_fraction must lie in (0, 1], got {self.min_fraction}")


def draw_crop(
    windows: Sequence[Sequence[float]], duration: float, cfg: TemporalCropConfig, generator: np.random.Generator
) -> Optional[tuple[int, float]]:
    """``(c0, c1)`` seconds, or None (no crop this time: not drawn, or no crop fits).

    ``c0`` is a whole second at or before every window's start; ``c1`` a whole second at or after
    every window's end (or the video's end), with ``c1 - c0 >= min_fraction * duration``.
    ``c0`` is drawn uniformly, then ``c1`` uniformly among the ends that keep the crop long enough.
    """
    if cfg.prob <= 0.0 or not windows or generator.random() >= cfg.prob:
        return None
    first = min(w[0] for w in windows)
    last = max(w[1] for w in windows)
    if first < 0 or last > duration + 1e-6:
        return None  # a window outside the video: leave the sample as it is
    shortest = cfg.min_fraction * duration
    top = math.floor(duration + 1e-9)  # the last whole second inside the video
    lowest_end = math.ceil(last - 1e-9)
    if lowest_end > top:  # the moment runs into the final partial second: the crop keeps it
        ends_at_video_end = True
        top_end: float = duration
    else:
        ends_at_video_end = False
        top_end = top
    max_start = min(math.floor(first + 1e-9), math.floor(top_end - shortest + 1e-9))
    if max_start < 0:
        return None
    c0 = int(generator.integers(0, max_start + 1))
    if ends_at_video_end:
        return (c0, duration) if duration - c0 >= shortest - 1e-9 else None
    low = max(lowest_end, math.ceil(c0 + shortest - 1e-9))
    if low > top:
        return None
    return c0, float(generator.integers(low, top + 1))


def apply_crop(sample: dict[str, Any], crop: tuple[int, float]) -> dict[str, Any]:
    """The sample restricted to ``[c0, c1)``: its frames inside (re-padded), timestamps and
    windows minus ``c0``, duration ``c1 - c0``. Unchanged if no frame falls inside."""
    c0, c1 = crop
    mask = sample["frame_mask"] & (sample["timestamps"] >= c0) & (sample["timestamps"] < c1)
    if not bool(mask.any()):
        return sample
    length = sample["frame_mask"].shape[0]
    out = dict(sample)
    for key in FRAME_KEYS:
        if key in sample:
            out[key] = pad_frames(sample[key][mask], length)
    out["timestamps"] = torch.where(out["frame_mask"], out["timestamps"] - c0, torch.zeros_like(out["timestamps"]))
    out["duration"] = float(c1 - c0)
    out["windows"] = [(float(s) - c0, float(e) - c0) for s, e in sample["windows"]]
    return out


def maybe_crop(sample: dict[str, Any], cfg: TemporalCropConfig, generator: np.random.Generator) -> dict[str, Any]:
    """``apply_crop`` with a crop from ``draw_crop`` (the sample as it is when none is drawn)."""
    crop = draw_crop(sample["windows"], sample["duration"], cfg, generator)
    return sample if crop is None else apply_crop(sample, crop)
