"""Every experiment YAML in configs/ loads and validates (the data and weights need not exist)."""

from pathlib import Path

import pytest

from lavis.common.config import REPO_ROOT, load_experiment

EXPERIMENTS = sorted((REPO_ROOT / "configs" / "experiments").rglob("*.yaml"))


def test_there_are_experiments_for_each_dataset():
    names = {p.relative_to(REPO_ROOT / "configs" / "experiments").as_posix() for p in EXPERIMENTS}
    for expected in (
        "charades_sta/sms.yaml",
        "charades_sta/mrblip.yaml",
        "qvh/sms.yaml",
        "qvh/mrblip.yaml",
        "charades_sta/sms_1gpu.yaml",
        "qvh/sms_1gpu.yaml",
        "synthetic/sms_tiny.yaml",
    ):
        assert expected in names


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_experiment_validates(path: Path):
    cfg = load_experiment(path)
    assert cfg.run.task == "moment_retrieval"
    for dataset in cfg.datasets.values():
        assert dataset.num_frames > 0
        if cfg.model.fusion.name == "none":
            assert not dataset.with_audio, "a video-only model should not pay for audio decoding"
        else:
            assert dataset.with_audio


def test_published_settings():
    charades = load_experiment(REPO_ROOT / "configs/experiments/charades_sta/sms.yaml")
    ds = charades.datasets["charades_sta"]
    assert (ds.num_frames, ds.audio.clip_len, charades.model.fusion.name) == (20, 1.5, "gca")
    qvh = load_experiment(REPO_ROOT / "configs/experiments/qvh/sms.yaml")
    ds = qvh.datasets["qvh"]
    assert (ds.num_frames, ds.audio.clip_len) == (60, 2.5)
    for cfg in (charades, qvh):
        assert (cfg.run.init_lr, cfg.run.max_epoch, cfg.model.generation.num_beams) == (3e-4, 50, 5)
        assert cfg.run.valid_splits == ["val"] and cfg.run.test_splits == ["test"]


@pytest.mark.parametrize("dataset", ["charades_sta", "qvh"])
def test_saliency_variants_are_the_published_setup_plus_the_head(dataset):
    published = load_experiment(REPO_ROOT / f"configs/experiments/{dataset}/sms.yaml").to_dict()
    variant = load_experiment(REPO_ROOT / f"configs/experiments/{dataset}/sms_saliency.yaml").to_dict()
    assert published["model"]["saliency"]["enabled"] is False
    assert variant["model"]["saliency"]["enabled"] is True
    variant["model"]["saliency"] = published["model"]["saliency"]
    variant["run"]["output_dir"] = published["run"]["output_dir"]
    assert variant == published


@pytest.mark.parametrize(
    "name, published, steps_per_epoch, warmup",
    [
        ("charades_sta/sms.yaml", (4, 8, 1), 349, 1745),  # 11.2 k queries / 32; 10 % of 50 epochs
        ("charades_sta/mrblip.yaml", (4, 8, 1), 349, 1745),
        ("qvh/sms.yaml", (8, 2, 4), 113, 565),  # the YAML said 564 for 10 % of 50 x 113
        ("qvh/mrblip.yaml", (8, 2, 4), 113, 565),
    ],
)
def test_the_published_global_batch_and_warmup_hold_on_any_number_of_gpus(name, published, steps_per_epoch, warmup):
    from lavis.runners.batch_layout import BatchLayout
    from lavis.runners.optim import warmup_steps

    rc = load_experiment(REPO_ROOT / "configs/experiments" / name).run
    world, per_device, accumulation = published
    assert BatchLayout.of(rc, world).record() == {
        "world_size": world,
        "per_device": per_device,
        "accumulation": accumulation,
        "derived": True,
        "global_batch": rc.global_batch_size,
    }
    for gpus in (1, 2, 4, 8, 16, 32):
        layout = BatchLayout.of(rc, gpus)
        assert layout.global_batch == rc.global_batch_size and layout.per_device <= rc.batch_size_train
    assert warmup_steps(rc, rc.max_epoch * steps_per_epoch) == warmup
