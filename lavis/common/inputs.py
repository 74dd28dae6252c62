"""What a dataset feeds a model, as config values with the keys that set them.

An experiment config has three sections that nothing ties together: a dataset may resize frames
to 64 px while the model's ViT expects 224, compute 32 mel bins for a CLAP tower built for 64, or
read no audio for a model whose fusion needs it. Such a run used to fail at its first forward
pass (or, worse, run). ``load_experiment`` asks each dataset config for its ``DatasetInputs`` and
the model class to check them, so the mismatch is one error at load time naming both keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DatasetInputs:
    """One dataset's inputs, each with the full config key that sets it."""

    image_sizes: dict[str, int] = field(default_factory=dict)  # key -> frame size in px (per stage)
    reads_audio: bool = True
    reads_audio_key: str = ""  # the key that turns audio off
    num_mel_bins: int = 0  # log-mel bins per audio clip
    num_mel_bins_key: str = ""
    # Cached frozen features replace pixels and log-mels: sizes and mel bins are not fed at all
    # (the cache's own key check covers them).
    cached_features: bool = False
