"""Attention-light fusions by modulation: ``avde`` and ``lcam``.

The public SMS code does not contain these two modules (only their names and, per the project's
issue, two defects of ``lcam``). They implement the evident intent of each name; the docstrings
say what each is based on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lavis.common.constraints import AnyFloat, DropoutRate, PositiveInt
from lavis.common.registry import registry
from lavis.models.fusion.attention import CrossAttention
from lavis.models.fusion.base import Fusion
from lavis.models.fusion.config import GATE_INIT, FusionConfig, check_at_least_one, check_dropout


@dataclass
class AudioVisualDualEnhancementConfig(FusionConfig):
    """``model.fusion`` keys of ``avde``."""

    name: str = "avde"
    dropout: DropoutRate = 0.0  # on the enhancement branch, before the gate
    gate_init: AnyFloat = GATE_INIT  # starting value of the tanh gate (see config.GATE_INIT)

    def __post_init__(self) -> None:
        check_dropout(self.dropout)


@dataclass
class LocalCrossAttentionModulationConfig(FusionConfig):
    """``model.fusion`` keys of ``lcam``."""

    name: str = "lcam"
    num_heads: PositiveInt = 8  # attention heads; must divide the fused width
    dropout: DropoutRate = 0.0  # attention-probability dropout
    gate_init: AnyFloat = GATE_INIT  # starting value of the tanh gate (see config.GATE_INIT)

    def __post_init__(self) -> None:
        check_at_least_one("num_heads", self.num_heads)
        check_dropout(self.dropout)


@registry.register_fusion("avde")
class AudioVisualDualEnhancement(Fusion):
    """Audio-visual dual enhancement: each modality gates the other's channels, both are added.

    Based on the name and the audio-guided channel attention of audio-visual event localisation
    (e.g. Tian et al. 2018; Xu et al. 2020): the sound selects which visual channels to enhance,
    the frame (its mean token) selects which audio channels to pass on::

        a = audio_proj(audio)                                           [N, D]
        video_enh = video * sigmoid(audio_to_video(a))                  [N, Q, D]
        audio_enh = a * sigmoid(video_to_audio(mean_q video))           [N, D]
        out = video + tanh(gate) * (video_enh + audio_enh)               [N, Q, D]

    The tanh gate starts at ``fusion.gate_init``. Per-frame only (no batch statistics).
    """

    config_class = AudioVisualDualEnhancementConfig

    def __init__(self, cfg: AudioVisualDualEnhancementConfig, dim: int, audio_dim: int):
        super().__init__(dim, audio_dim)
        self.audio_proj = nn.Linear(audio_dim, dim)
        self.audio_to_video = nn.Linear(dim, dim)
        self.video_to_audio = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(cfg.dropout)
        self.gate = nn.Parameter(torch.full((1,), float(cfg.gate_init)))

    def fuse(self, video: Tensor, audio: Tensor) -> Tensor:
        """The class docstring's formula: both enhancements, added through the tanh gate."""
        a = self.audio_proj(audio)
        video_enh = video * torch.sigmoid(self.audio_to_video(a)).unsqueeze(1)
        audio_enh = a * torch.sigmoid(self.video_to_audio(video.mean(dim=1)))
        delta = self.dropout(video_enh + audio_enh.unsqueeze(1))
        return video + torch.tanh(self.gate) * delta


@registry.register_fusion("lcam")
class LocalCrossAttentionModulation(Fusion):
    """Local cross-attention modulation: each token reads the sound and is FiLM-modulated by it.

    Based on the name (local = per token, not one modulation per frame) and FiLM (Perez et al.
    2018)::

        a = audio_proj(audio)                                  [N, 1, D]
        x = norm(video)                                        [N, Q, D], per-token LayerNorm
        ctx = cross_attn(query=x, key/value=[a; null])         [N, Q, D]
        scale, shift = film(ctx)                               [N, Q, D] each
        out = video + tanh(gate) * (x * scale + shift)         [N, Q, D]

    The audio is projected to the token width first, so early and late fusion both work; the
    normalization is per token, so a sample's output never depends on the rest of the batch; the
    attention has a learned null key/value so that over a single audio embedding it is not a
    constant (see ``CrossAttention``). The tanh gate starts at ``fusion.gate_init``.
    docs/differences.md says how SMS's own ``lcam`` differs.
    """

    config_class = LocalCrossAttentionModulationConfig

    def __init__(self, cfg: LocalCrossAttentionModulationConfig, dim: int, audio_dim: int):
        super().__init__(dim, audio_dim)
        self.audio_proj = nn.Linear(audio_dim, dim)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)  # FiLM supplies scale and shift
        self.cross_attn = CrossAttention(dim, cfg.num_heads, cfg.dropout, null_kv=True)
        self.film = nn.Linear(dim, 2 * dim)
        self.gate = nn.Parameter(torch.full((1,), float(cfg.gate_init)))

    def fuse(self, video: Tensor, audio: Tensor) -> Tensor:
        """The class docstring's formula: per-token FiLM from attention over the audio, gated."""
        a = self.audio_proj(audio).unsqueeze(1)
        x = self.norm(video)
        ctx = self.cross_attn(x, a)
        scale, shift = self.film(ctx).chunk(2, dim=-1)
        return video + torch.tanh(self.gate) * (x * scale + shift)
