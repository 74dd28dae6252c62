"""Video frame processors (LAVIS names): resize, CLIP normalization, train-time random resized crop.

A processor maps the decoded frames of one video, uint8 ``[t, H, W, 3]`` RGB, to the model's
input, float32 ``[t, 3, S, S]`` with ``S = image_size``. The train processor draws one crop per
video and applies it to every frame: the frames of a clip must stay spatially consistent, and a
per-frame crop would make a still object look like it moves.

YAML (LAVIS layout, under a dataset)::

    vis_processor:
      train: {name: blip2_video_train, image_size: 224}
      eval: {name: blip_video_eval, image_size: 224}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from lavis.common.constraints import PositiveFloat, PositiveInt, Range, UnitInterval
from lavis.common.registry import RegistryError, registry
from lavis.common.typed import ConfigError, from_dict

# The normalization the EVA/CLIP ViT of BLIP-2 was trained with.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class VideoEvalProcessorConfig:
    """``vis_processor.eval``: resize to ``image_size`` and normalize (CLIP's mean and std)."""

    image_size: PositiveInt = 224
    mean: tuple[UnitInterval, UnitInterval, UnitInterval] = CLIP_MEAN
    std: tuple[PositiveFloat, PositiveFloat, PositiveFloat] = CLIP_STD
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"

    def __post_init__(self) -> None:
        if self.image_size <= 0:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        if min(self.std) <= 0:
            raise ValueError(f"std must be positive, got {self.std}")


@dataclass
class VideoTrainProcessorConfig(VideoEvalProcessorConfig):
    """``vis_processor.train``: the eval steps after a random resized crop, the same for all of a
    video's frames."""

    min_scale: Annotated[float, Range(gt=0, le=1)] = 0.5  # crop area as a fraction of the frame (LAVIS video defaults)
    max_scale: Annotated[float, Range(gt=0, le=1)] = 1.0
    min_ratio: PositiveFloat = 3 / 4  # crop aspect ratio (width / height) range
    max_ratio: PositiveFloat = 4 / 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.min_scale <= self.max_scale <= 1:
            raise ValueError(f"need 0 < min_scale <= max_scale <= 1, got {self.min_scale}, {self.max_scale}")
        if not 0 < self.min_ratio <= self.max_ratio:
            raise ValueError(f"need 0 < min_ratio <= max_ratio, got {self.min_ratio}, {self.max_ratio}")


def _as_uint8_frames(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    frames = torch.as_tensor(frames)
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [t, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    return frames


@registry.register_processor("blip_video_eval")
@registry.register_processor("blip2_video_eval")
class BlipVideoEvalProcessor:
    """uint8 ``[t, H, W, 3]`` -> float32 ``[t, 3, S, S]``: resize the whole frame, normalize."""

    config_class = VideoEvalProcessorConfig

    def __init__(self, cfg: VideoEvalProcessorConfig | None = None):
        self.cfg = cfg or self.config_class()
        self.mean = torch.tensor(self.cfg.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(self.cfg.std, dtype=torch.float32).view(1, 3, 1, 1)

    @classmethod
    def from_config(cls, cfg: VideoEvalProcessorConfig | None = None) -> BlipVideoEvalProcessor:
        """The processor of ``cfg`` (the defaults when None), as the registry's builders call it."""
        return cls(cfg)

    def _resize_normalize(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[t, h, w, 3]`` (any crop) -> normalized float32 ``[t, 3, S, S]``."""
        size = self.cfg.image_size
        # A channels-last uint8 view takes torch's fast antialiased path (~20x faster than
        # float) and rounds/clamps like PIL, so bicubic overshoot never leaves [0, 255].
        resized = F.interpolate(
            frames.permute(0, 3, 1, 2), size=(size, size), mode=self.cfg.interpolation, antialias=True
        )
        return (resized.float().div_(255.0) - self.mean) / self.std

    def __call__(self, frames: np.ndarray | torch.Tensor, generator: np.random.Generator | None = None) -> torch.Tensor:
        return self._resize_normalize(_as_uint8_frames(frames))


@registry.register_processor("blip2_video_train")
@registry.register_processor("blip_video_train")
class BlipVideoTrainProcessor(BlipVideoEvalProcessor):
    """Like the eval processor, after one random resized crop shared by all frames."""

    config_class = VideoTrainProcessorConfig

    def crop_box(self, height: int, width: int, generator: np.random.Generator) -> tuple[int, int, int, int]:
        """(top, left, crop height, crop width), torchvision's RandomResizedCrop rule."""
        cfg = self.cfg
        area = height * width
        log_ratio = (math.log(cfg.min_ratio), math.log(cfg.max_ratio))
        for _ in range(10):
            target_area = area * generator.uniform(cfg.min_scale, cfg.max_scale)
            ratio = math.exp(generator.uniform(*log_ratio))
            w = int(round(math.sqrt(target_area * ratio)))
            h = int(round(math.sqrt(target_area / ratio)))
            if 0 < w <= width and 0 < h <= height:
                return int(generator.integers(0, height - h + 1)), int(generator.integers(0, width - w + 1)), h, w
        # Fallback: the largest centred crop with an allowed aspect ratio.
        in_ratio = width / height
        if in_ratio < cfg.min_ratio:
            w, h = width, int(round(width / cfg.min_ratio))
        elif in_ratio > cfg.max_ratio:
            h, w = height, int(round(height * cfg.max_ratio))
        else:
            h, w = height, width
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, frames: np.ndarray | torch.Tensor, generator: np.random.Generator | None = None) -> torch.Tensor:
        if generator is None:
            raise ValueError("the train processor needs a seeded generator for its random crop")
        frames = _as_uint8_frames(frames)
        top, left, h, w = self.crop_box(frames.shape[1], frames.shape[2], generator)
        return self._resize_normalize(frames[:, top : top + h, left : left + w, :])


def build_processor(spec: Mapping[str, Any], source: str) -> Any:
    """A processor from a ``{name: ..., <its config fields>}`` mapping; errors name ``source``."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise ConfigError(f"{source}: a processor needs a 'name' key, got {spec!r}")
    try:
        cls = registry.get("processor", spec["name"])
    except RegistryError as err:
        raise ConfigError(f"{source}: {err}") from None
    fields = {k: v for k, v in spec.items() if k != "name"}
    return cls(from_dict(cls.config_class, fields, source, source))
