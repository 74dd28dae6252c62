"""Every experiment YAML in configs/ loads and validates (the data and weights need not exist); the
published settings are what the reference ran; each benchmark's experiments, made tiny, train two
steps on synthetic data of the benchmark's shape and evaluate."""

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from lavis.common.config import REPO_ROOT, load_experiment
from lavis.datasets.schema import load_annotations
from lavis.experiment import run_experiment
from lavis.runners.batch_layout import BatchLayout
from mr_data.synthetic import generate_dataset
from mr_data.synthetic_cli import PRESETS

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
        *(
            f"{name}/{variant}.yaml"
            for name in ("unav100", "anet", "anet_tal", "tacos")
            for variant in ("sms", "mrblip")
        ),
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
        ("unav100/sms.yaml", (4, 8, 1), 219, 1095),  # warm-up in steps, as the reference's (see the YAML)
        ("anet/sms.yaml", (8, 1, 4), 1170, 5848),
        ("anet_tal/sms.yaml", (8, 1, 4), 188, 940),
        ("tacos/sms.yaml", (8, 1, 4), 306, 1530),
    ],
)
def test_the_published_global_batch_and_warmup_hold_on_any_number_of_gpus(name, published, steps_per_epoch, warmup):
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


# The benchmarks of issue 21: each experiment, made tiny, trains two steps on synthetic data of its
# benchmark's shape and evaluates (with that benchmark's own metric where it has one).
BENCHMARKS = {  # name -> (synthetic preset, frames, audio clip s, detection protocol, valid_metric)
    "unav100": ("unav", 25, 1.7, "unav100", "DET-mAP"),
    "anet": ("long", 60, 2.0, None, "R1@0.5"),
    "anet_tal": ("unav", 60, 2.0, "activitynet", "DET-mAP"),
    "tacos": ("long", 60, 2.0, None, "R1@0.5"),
}
# Anet's longest video is 745.5 s, TACoS's 1,402.2 s (tests/test_long_videos.py takes those);
# here a few minutes keep the runs to seconds, still past the reference layout's 200 s numbers.
SHAPES = {
    "unav": dataclasses.replace(
        PRESETS["unav"], min_duration=12.0, max_duration=16.0, max_event_len=4, val_fraction=0.25, test_fraction=0.25
    ),
    "long": dataclasses.replace(
        PRESETS["long"], min_duration=200.0, max_duration=400.0, val_fraction=0.25, test_fraction=0.25
    ),
}
# The published model shrunk to the tiny preset: the built-in tokenizer (every second up to the
# longest video one token) in the plain layout, timestamps as tokens as in the published layout,
# no weight files; the dataset's frames and audio at the tiny model's sizes, its frames per video
# and clip length as published.
TINY_MODEL = [
    "model.model_type=tiny",
    "model.prompt.layout=plain",
    "model.prompt.timestamp_mode=token",
    "model.tokenizer.max_number=1500",
    "model.weights.blip2_hf_dir=null",
    "model.weights.clap_dir=null",
    "model.generation.num_beams=2",
    "model.generation.max_new_tokens=12",
]
TINY_AUDIO = {"sampling_rate": 16000, "n_mels": 32, "hop_length": 320, "fft_window_size": 512, "max_length_s": 2}
TWO_STEPS = [
    "run.strategy=single",
    "run.device=cpu",
    "run.amp=off",
    "run.max_iters=2",
    "run.max_epoch=1",
    "run.batch_size_train=2",
    "run.global_batch_size=null",  # two tiny steps, not the published 32
    "run.batch_size_eval=4",
    "run.num_workers=0",
    "run.warmup_steps=1",
    "run.torch_threads=null",
]


@pytest.fixture(scope="module")
def synthetic_shapes(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shapes")
    for name, spec in SHAPES.items():
        generate_dataset(root / name, num_videos=4 if name == "long" else 6, seed=3, spec=spec, workers=1)
    return {name: root / name for name in SHAPES}


def test_benchmark_experiments_have_the_reference_settings():
    for name, (_, frames, clip_len, detection, metric) in BENCHMARKS.items():
        sms = load_experiment(REPO_ROOT / f"configs/experiments/{name}/sms.yaml")
        mrblip = load_experiment(REPO_ROOT / f"configs/experiments/{name}/mrblip.yaml")
        ds = sms.datasets[name]
        assert (ds.num_frames, ds.audio.clip_len, ds.audio.sampling_rate) == (frames, clip_len, 48000), name
        assert (sms.run.detection, sms.run.valid_metric, sms.model.prompt.layout) == (detection, metric, "reference")
        # The ablation: the same run without the audio, and nothing else.
        published, ablation = sms.to_dict(), mrblip.to_dict()
        assert ablation["model"]["fusion"]["name"] == "none" and not mrblip.datasets[name].with_audio
        for cfg in (published, ablation):
            cfg["model"].pop("fusion"), cfg["datasets"][name].pop("with_audio"), cfg["datasets"][name].pop("audio")
            cfg["run"].pop("output_dir")
        assert ablation == published, name
    unav = load_experiment(REPO_ROOT / "configs/experiments/unav100/sms.yaml").run
    anet = load_experiment(REPO_ROOT / "configs/experiments/anet/sms.yaml").run
    tal = load_experiment(REPO_ROOT / "configs/experiments/anet_tal/mrblip.yaml").run
    # unav100.yaml L43-63; anet.yaml L43-59 and anet_TAL.yaml L36-53, whose warmup counts batches
    # of one where a step here is 4 of them.
    assert (unav.init_lr, unav.min_lr, unav.warmup_steps, unav.max_epoch) == (3e-4, 0, 1095, 50)
    assert (unav.global_batch_size, BatchLayout.of(unav, 4).per_device, BatchLayout.of(unav, 4).accumulation) == (
        32,
        8,
        1,
    )
    assert (anet.init_lr, anet.min_lr, anet.max_epoch) == (3e-4, 3e-5, 50)
    assert (anet.global_batch_size, BatchLayout.of(anet, 8).per_device, BatchLayout.of(anet, 8).accumulation) == (
        32,
        1,
        4,
    )
    assert anet.warmup_steps == -(-23390 // 4)
    assert (tal.max_epoch, tal.min_lr, tal.warmup_steps) == (30, 3e-5, -(-3759 // 4))


@pytest.mark.parametrize("variant", ["sms", "mrblip"])
@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_experiment_trains_two_steps_and_evaluates(name, variant, synthetic_shapes, tmp_path, one_thread):
    shape, _, _, detection, metric = BENCHMARKS[name]
    data = synthetic_shapes[shape]
    options = [f"datasets.{name}.root={data}", f"run.output_dir={tmp_path / 'run'}", *TINY_MODEL, *TWO_STEPS]
    options += [f"datasets.{name}.vis_processor.{stage}.image_size=64" for stage in ("train", "eval")]
    if variant == "sms":
        options += [f"datasets.{name}.audio.{key}={value}" for key, value in TINY_AUDIO.items()]
        options += [f"datasets.{name}.audio.frequency_max=8000"]
    cfg_path = REPO_ROOT / f"configs/experiments/{name}/{variant}.yaml"
    assert run_experiment(str(cfg_path), options, evaluate_only=False) == 0
    metrics = json.loads((tmp_path / "run" / "metrics_test.json").read_text())
    assert metrics["num_queries"]["full"] == len(load_annotations(data / "test.jsonl"))
    assert {"R1@0.5", "mIoU", "MR-full-mAP", metric} <= set(metrics["brief"])
    assert (metrics.get("detection") or {}).get("protocol") == detection
    # The benchmark's metric chose the best checkpoint on the val split.
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in log if r.get("type") == "eval" and r.get("split") == "val"]
    epoch = [r for r in log if r.get("type") == "epoch"]
    assert val and epoch and epoch[-1]["valid_score"] == val[-1][metric]


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_scripts_launch_its_experiment(name, tmp_path):
    """``run_scripts/<name>/{train,eval}.sh`` hand ``launch.sh`` the benchmark's sms.yaml (CFG picks
    another) and the extra arguments; eval.sh needs CKPT (here launch.sh only prints its arguments)."""
    (tmp_path / "run_scripts" / name).mkdir(parents=True)
    for script in ("train.sh", "eval.sh"):
        shutil.copy(REPO_ROOT / "run_scripts" / name / script, tmp_path / "run_scripts" / name / script)
    (tmp_path / "run_scripts" / "launch.sh").write_text('echo "$@"\n')

    def run(script, **env):
        cmd = ["bash", str(tmp_path / "run_scripts" / name / script), "--options", "run.max_epoch=1"]
        return subprocess.run(cmd, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **env})

    sms = f"configs/experiments/{name}/sms.yaml"
    assert (REPO_ROOT / sms).is_file() and (REPO_ROOT / sms.replace("sms", "mrblip")).is_file()
    assert run("train.sh").stdout.split() == ["lavis.train", sms, "--options", "run.max_epoch=1"]
    mrblip = f"configs/experiments/{name}/mrblip.yaml"
    assert run("train.sh", CFG=mrblip).stdout.split()[:2] == ["lavis.train", mrblip]
    done = run("eval.sh", CKPT="runs/x/checkpoint_best.pt")
    expected = ["lavis.evaluate", sms, "--options", "run.resume_ckpt_path=runs/x/checkpoint_best.pt", "--options"]
    assert done.stdout.split()[:5] == expected
    assert run("eval.sh").returncode != 0  # no CKPT: one line saying to set it
