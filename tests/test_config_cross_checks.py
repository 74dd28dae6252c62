"""Settings of the model and of a dataset that contradict each other fail when the experiment
config loads, naming both keys (not at the first forward pass)."""

import pytest

from lavis.common.config import load_experiment
from lavis.common.typed import ConfigError

DEMO = "configs/experiments/synthetic/sms_tiny.yaml"
DS = "datasets.synthetic_av"


def test_the_demo_config_is_consistent():
    cfg = load_experiment(DEMO)
    assert cfg.model.vision.image_size == 64 and cfg.datasets["synthetic_av"].audio.n_mels == 32


@pytest.mark.parametrize(
    "options, keys",
    [
        (
            [f"{DS}.vis_processor.eval.image_size=96"],
            [f"{DS}.vis_processor.eval.image_size=96", "model.vision.image_size=64"],
        ),
        (["model.vision.image_size=128"], [f"{DS}.vis_processor.train.image_size=64", "model.vision.image_size=128"]),
        ([f"{DS}.audio.n_mels=16"], [f"{DS}.audio.n_mels=16", "model.audio.num_mel_bins=32"]),
        ([f"{DS}.with_audio=false"], ["model.fusion.name=gca", f"{DS}.with_audio=false"]),
    ],
)
def test_a_contradiction_names_both_keys(options, keys):
    with pytest.raises(ConfigError) as err:
        load_experiment(DEMO, options)
    for key in keys:
        assert key in str(err.value)


def test_what_a_model_does_not_read_is_not_checked():
    # Video only: no audio is read, so mel bins do not matter.
    load_experiment(DEMO, ["model.fusion.name=none", f"{DS}.with_audio=false", f"{DS}.audio.n_mels=16"])
    # Cached features: no pixels are fed (the cache's frozen key guards what they were made with).
    load_experiment(
        DEMO,
        [
            f"{DS}.use_cached_features=true",
            f"{DS}.cache_decoded=false",
            f"{DS}.vis_processor.eval.image_size=96",
            "model.freeze_vit=true",
            "model.freeze_vit_ln=true",
            "model.freeze_qformer=true",
            "model.freeze_audio=true",
        ],
    )
