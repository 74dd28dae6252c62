"""``model.fusion`` in a YAML config: the base every fusion's own config extends.

``model.fusion.name`` picks a registered fusion, and with it the config class that fusion declares
(``config_class`` beside the module, e.g. ``GatedCrossAttentionConfig`` in ``gated.py``): only
that fusion's keys are valid under ``model.fusion``, and an unknown key fails at load listing
them (``lavis.common.typed``: a config chosen by name).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from lavis.common.registry import registry

# The tanh gates of bigca, avde and lcam start here. Flamingo starts at 0, which leaves every
# weight behind the gate without a gradient in the first step (DDP then needs
# find_unused_parameters); a small non-zero value trains all of them from step one while the
# fused tokens still start close to the (pretrained) visual tokens.
GATE_INIT = 0.1


@dataclass
class FusionConfig:
    """Which fusion mixes the per-frame audio embedding into the frame's visual tokens, and where.

    The defaults reproduce SMS's published setup: ``gca`` on the Q-Former tokens (``early``).
    Subclasses (one per fusion) add that fusion's keys and set ``name``'s default to its name.
    """

    name: str = "gca"  # a registered fusion: none, gca, bigca, avde, lcam, concat
    # early: on the Q-Former tokens (768-d) before the projection; late: after it (LLM width).
    position: Literal["early", "late"] = "early"

    variant_key: ClassVar[str] = "name"  # the field that picks the config class
    reads_audio: ClassVar[bool] = True  # False: the model needs no audio tower nor audio inputs

    @classmethod
    def variants(cls) -> dict[str, type[FusionConfig]]:
        """Registered fusion name -> its config class (what ``model.fusion.name`` may pick)."""
        return {name: registry.get("fusion", name).config_class for name in registry.names("fusion")}


def check_dropout(value: float) -> None:
    """Dropout probabilities of a fusion's config (``__post_init__``)."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"fusion.dropout must be in [0, 1), got {value}")


def check_at_least_one(key: str, value: int) -> None:
    """Counts of a fusion's config (heads, tokens, multipliers) (``__post_init__``)."""
    if value < 1:
        raise ValueError(f"fusion.{key} must be >= 1, got {value}")
