"""The typed config of the audio-visual fusion module (``model.fusion`` in a YAML config)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class FusionConfig:
    """Which fusion fuses the per-frame audio embedding into the frame's visual tokens, and where.

    The defaults reproduce SMS's published setup: ``gca`` on the Q-Former tokens (``early``).
    """

    name: str = "gca"  # a registered fusion: none, gca, bigca, avde, lcam, concat
    # early: on the Q-Former tokens (768-d) before the projection; late: after it (LLM width).
    position: Literal["early", "late"] = "early"
    num_heads: int = 8  # attention heads of gca, bigca and lcam; must divide the fused width
    # gca/bigca/lcam: attention-probability dropout; bigca: also in its feed-forward;
    # avde/concat: dropout on the audio branch. SMS trains gca without dropout.
    dropout: float = 0.0
    # Starting value of the tanh gates of bigca, avde and lcam. Flamingo starts at 0, which
    # leaves every weight behind the gate without a gradient in the first step (DDP then needs
    # find_unused_parameters); a small non-zero value trains all of them from step one while
    # the fused tokens still start close to the (pretrained) visual tokens.
    gate_init: float = 0.1
    ff_mult: int = 4  # bigca's feed-forward hidden width, in multiples of the fused width
    num_audio_tokens: int = 1  # concat: audio tokens appended to each frame's tokens

    def __post_init__(self) -> None:
        if self.num_heads < 1:
            raise ValueError(f"fusion.num_heads must be >= 1, got {self.num_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"fusion.dropout must be in [0, 1), got {self.dropout}")
        if self.ff_mult < 1:
            raise ValueError(f"fusion.ff_mult must be >= 1, got {self.ff_mult}")
        if self.num_audio_tokens < 1:
            raise ValueError(f"fusion.num_audio_tokens must be >= 1, got {self.num_audio_tokens}")
