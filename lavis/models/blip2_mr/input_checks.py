"""``blip2_mr``'s side of the load-time checks between the model and its datasets
(``lavis/common/inputs.py``): frame size, mel bins, audio present when the fusion needs it."""

from __future__ import annotations

from lavis.common.inputs import DatasetInputs
from lavis.common.typed import ConfigError
from lavis.models.blip2_mr.config import Blip2MRConfig


def check_dataset_inputs(cfg: Blip2MRConfig, inputs: DatasetInputs) -> None:
    """Raise ``ConfigError`` listing every setting of ``inputs`` that a model of ``cfg`` cannot
    take, each with both keys."""
    problems = []
    if cfg.uses_audio and not inputs.reads_audio:
        problems.append(
            f"model.fusion.name={cfg.fusion.name} fuses audio, but {inputs.reads_audio_key}=false "
            "(read audio, or use fusion none for a video-only model)"
        )
    if not inputs.cached_features:
        for key, size in inputs.image_sizes.items():
            if size != cfg.vision.image_size:
                problems.append(f"{key}={size}, but model.vision.image_size={cfg.vision.image_size}")
        if cfg.uses_audio and inputs.reads_audio and inputs.num_mel_bins != cfg.audio.num_mel_bins:
            problems.append(
                f"{inputs.num_mel_bins_key}={inputs.num_mel_bins}, but model.audio.num_mel_bins={cfg.audio.num_mel_bins}"
            )
    if problems:
        raise ConfigError("the model and a dataset do not fit:\n  " + "\n  ".join(problems))
