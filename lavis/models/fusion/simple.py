"""The two fusions without mixing: ``none`` (video only) and ``concat`` (audio as extra tokens)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from lavis.common.constraints import DropoutRate, PositiveInt
from lavis.common.registry import registry
from lavis.models.fusion.base import Fusion
from lavis.models.fusion.config import FusionConfig, check_at_least_one, check_dropout


@dataclass
class NoFusionConfig(FusionConfig):
    """``model.fusion`` of ``none``: no keys of its own."""

    name: str = "none"
    reads_audio: ClassVar[bool] = False


@dataclass
class ConcatFusionConfig(FusionConfig):
    """``model.fusion`` keys of ``concat``."""

    name: str = "concat"
    num_audio_tokens: PositiveInt = 1  # audio tokens appended to each frame's tokens
    dropout: DropoutRate = 0.0  # on the projected audio tokens

    def __post_init__(self) -> None:
        check_at_least_one("num_audio_tokens", self.num_audio_tokens)
        check_dropout(self.dropout)


@registry.register_fusion("none")
class NoFusion(Fusion):
    """Video only (Mr. BLIP / Chrono): the tokens pass unchanged and the audio is ignored.

    ``audio`` and ``audio_mask`` are not even looked at, so a model without an audio tower may
    pass ``None`` for both.
    """

    config_class = NoFusionConfig

    def __init__(self, cfg: NoFusionConfig, dim: int, audio_dim: int):
        super().__init__(dim, audio_dim)

    def forward(self, video: Tensor, audio: Tensor | None, audio_mask: Tensor | None) -> Tensor:
        """video ``[N, Q, D]`` -> the same tensor."""
        if video.dim() != 3 or video.shape[-1] != self.dim:
            raise ValueError(f"NoFusion: video tokens must be [N, Q, {self.dim}], got {list(video.shape)}")
        return video

    def fuse(self, video: Tensor, audio: Tensor) -> Tensor:
        """The tokens themselves (never reached: ``forward`` returns them first)."""
        return video


@registry.register_fusion("concat")
class ConcatFusion(Fusion):
    """The audio as ``fusion.num_audio_tokens`` extra tokens after each frame's visual tokens.

    ``audio_proj`` maps the embedding to ``k`` tokens: ``[N, Da] -> [N, k, D]``; the output is
    ``[N, Q + k, D]``. A frame without audio gets the learned ``missing`` tokens instead, so the
    sequence layout stays fixed and silence has its own embedding rather than ``audio_proj(0)``.
    """

    config_class = ConcatFusionConfig

    def __init__(self, cfg: ConcatFusionConfig, dim: int, audio_dim: int):
        super().__init__(dim, audio_dim)
        self.added_tokens = cfg.num_audio_tokens
        self.audio_proj = nn.Linear(audio_dim, cfg.num_audio_tokens * dim)
        self.dropout = nn.Dropout(cfg.dropout)
        self.missing = nn.Parameter(torch.empty(cfg.num_audio_tokens, dim))
        nn.init.normal_(self.missing, std=0.02)

    def fuse(self, video: Tensor, audio: Tensor) -> Tensor:
        """The visual tokens followed by the ``num_audio_tokens`` projected audio tokens."""
        tokens = self.dropout(self.audio_proj(audio)).view(-1, self.added_tokens, self.dim)
        return torch.cat([video, tokens.to(video.dtype)], dim=1)

    def without_audio(self, video: Tensor) -> Tensor:
        """The visual tokens followed by the learned ``missing`` tokens."""
        missing = self.missing.to(video.dtype).expand(video.shape[0], -1, -1)
        return torch.cat([video, missing], dim=1)
