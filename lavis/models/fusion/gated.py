"""SMS's gated cross-attention fusions: ``gca`` (the published default) and ``bigca``.

Both follow the public SMS code (github.com/globc/mr-Audio, ``GatedCrossAttention.py`` and
``BiGatedCrossAttention.py``) and keep its parameter names, so its fusion weights map onto ours
key for key (``bigca``: see its docstring for the two tensors that differ).
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
class GatedCrossAttentionConfig(FusionConfig):
    """``model.fusion`` keys of ``gca``."""

    name: str = "gca"
    num_heads: PositiveInt = 8  # attention heads; must divide the fused width
    dropout: DropoutRate = 0.0  # attention-probability dropout (SMS trains gca without)

    def __post_init__(self) -> None:
        check_at_least_one("num_heads", self.num_heads)
        check_dropout(self.dropout)


@dataclass
class BiGatedCrossAttentionConfig(FusionConfig):
    """``model.fusion`` keys of ``bigca``."""

    name: str = "bigca"
    num_heads: PositiveInt = 8  # heads of both attentions; must divide the fused width
    dropout: DropoutRate = 0.0  # attention-probability dropout, and in the feed-forward
    gate_init: AnyFloat = GATE_INIT  # starting value of the tanh gate ``mix`` (see config.GATE_INIT)
    ff_mult: PositiveInt = 4  # the feed-forward's hidden width, in multiples of the fused width

    def __post_init__(self) -> None:
        check_at_least_one("num_heads", self.num_heads)
        check_at_least_one("ff_mult", self.ff_mult)
        check_dropout(self.dropout)


@registry.register_fusion("gca")
class GatedCrossAttention(Fusion):
    """SMS's gated cross-attention, as published.

    The frame's audio embedding, projected to ``D``, queries the frame's ``Q`` visual tokens; a
    sigmoid gate computed from the audio mixes that audio-selected summary into every token::

        a = audio_proj(audio)                       [N, 1, D]
        s = cross_attn(query=a, key/value=video)     [N, 1, D]
        g = sigmoid(gate(a))                         [N, 1, 1]
        out = g * s + (1 - g) * video                [N, Q, D]

    One audio query row gives what ``Q`` identical query rows would, at ``1/Q`` of the cost. The
    gate starts near 0.5 (a default Linear init), so every weight has a gradient from the first
    step. Frames without audio keep their tokens (docs/differences.md).
    """

    config_class = GatedCrossAttentionConfig

    def __init__(self, cfg: GatedCrossAttentionConfig, dim: int, audio_dim: int):
        super().__init__(dim, audio_dim)
        self.audio_proj = nn.Linear(audio_dim, dim)
        self.cross_attn = CrossAttention(dim, cfg.num_heads, cfg.dropout)
        self.gate = nn.Linear(dim, 1)

    def fuse(self, video: Tensor, audio: Tensor) -> Tensor:
        """The class docstring's formula: the audio-selected summary, gated into every token."""
        a = self.audio_proj(audio).unsqueeze(1)
        summary = self.cross_attn(a, video)
        g = torch.sigmoid(self.gate(a))
        return video + g * (summary - video)


@registry.register_fusion("bigca")
class BiGatedCrossAttention(Fusion):
    """Bidirectional gated cross-attention (SMS's block, with its two degeneracies fixed).

    The block: audio->vision attention (audio queries the tokens, as in ``gca``) and
    vision->audio attention (every token queries the audio), weighted by a softmax "modality
    gate", then ``norm1(fused + audio + video)``, a feed-forward with residual and ``norm2``::

        w = softmax(gate(a))                                       [N, 1, 2]
        fused = w0 * a2v + w1 * v2a                                [N, Q, D]
        h = norm1(fused + a + video);  h = norm2(h + ff(h))        [N, Q, D]
        out = video + tanh(mix) * (h - video)

    The modality gate is ``Linear(D, 2)`` (a softmax over two weights, one per direction); the
    vision->audio attention has a learned null key/value (``CrossAttention(null_kv)``), without
    which attention over a single audio embedding ignores its queries; the block's output is mixed
    into the tokens by a tanh gate ``mix`` (``fusion.gate_init``), so training starts near the
    pretrained tokens and frames without audio keep theirs. Parameter names are SMS's, plus
    ``mix`` and ``vision_to_audio_attn.bias_k/bias_v``; ``gate`` is ``[2, D]`` (what differs from
    SMS's own block, and why: docs/differences.md).
    """

    config_class = BiGatedCrossAttentionConfig

    def __init__(self, cfg: BiGatedCrossAttentionConfig, dim: int, audio_dim: int):
        super().__init__(dim, audio_dim)
        self.audio_proj = nn.Linear(audio_dim, dim)
        self.audio_to_vision_attn = CrossAttention(dim, cfg.num_heads, cfg.dropout)
        self.vision_to_audio_attn = CrossAttention(dim, cfg.num_heads, cfg.dropout, null_kv=True)
        self.gate = nn.Linear(dim, 2)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, cfg.ff_mult * dim), nn.ReLU(), nn.Linear(cfg.ff_mult * dim, dim))
        self.ff_dropout = nn.Dropout(cfg.dropout)  # outside ``ff``: keeps SMS's ff.0/ff.2 names
        self.mix = nn.Parameter(torch.full((1,), float(cfg.gate_init)))  # [1]: shardable (FSDP2)

    def fuse(self, video: Tensor, audio: Tensor) -> Tensor:
        """The class docstring's block, mixed into the tokens through the ``mix`` gate."""
        a = self.audio_proj(audio).unsqueeze(1)
        a2v = self.audio_to_vision_attn(a, video)
        v2a = self.vision_to_audio_attn(video, a)
        w = torch.softmax(self.gate(a), dim=-1)
        fused = w[..., :1] * a2v + w[..., 1:] * v2a
        h = self.norm1(fused + a + video)
        h = self.norm2(h + self.ff_dropout(self.ff(h)))
        return video + torch.tanh(self.mix) * (h - video)
