"""The whole path a user takes: synthetic videos -> `python -m lavis.train` with the tiny SMS ->
checkpoints, predictions and metrics on disk."""

import json
import subprocess
import sys

import pytest

from lavis.datasets.schema import load_annotations
from mr_data.synthetic import SyntheticSpec, generate_dataset

SPEC = SyntheticSpec(
    min_duration=8.0, max_duration=10.0, max_event_len=3, max_events=2, val_fraction=0.25, test_fraction=0.25
)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root, num_videos=8, seed=1, spec=SPEC, workers=1)
    return root


def test_train_then_evaluate_from_the_command_line(synthetic_root, tmp_path):
    out = tmp_path / "run"
    options = [
        f"datasets.synthetic_av.root={synthetic_root}",
        f"run.output_dir={out}",
        "run.max_iters=3",
        "run.max_epoch=1",
        "run.batch_size_train=2",
        "run.batch_size_eval=4",
        "run.num_workers=0",
        "run.warmup_steps=1",
        "datasets.synthetic_av.num_frames=6",
        "model.generation.num_beams=2",
        "model.generation.max_new_tokens=8",
    ]
    cmd = [
        sys.executable,
        "-m",
        "lavis.train",
        "--cfg-path",
        "configs/experiments/synthetic/sms_tiny.yaml",
        "--options",
        *options,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test:" in done.stdout

    test_records = load_annotations(synthetic_root / "test.jsonl")
    preds = [json.loads(line) for line in (out / "preds_test.jsonl").read_text().splitlines()]
    assert sorted(p["qid"] for p in preds) == sorted(r.qid for r in test_records)  # each query once
    for pred in preds:
        assert all(len(w) == 3 and w[0] <= w[1] for w in pred["pred_relevant_windows"])
    metrics = json.loads((out / "metrics_test.json").read_text())
    assert metrics["num_queries"]["full"] == len(test_records)
    assert {"MR-full-R1@0.5", "MR-full-mAP", "R1@0.7", "mIoU", "invalid_rate"} <= set(metrics["brief"])
    assert set(metrics["by_kind"]) <= {"visual", "audio", "audio_visual"}
    assert (out / "metrics_val.json").exists() and (out / "checkpoint_best.pt").exists()
    assert (out / "config.yaml").exists() and (out / "metrics.jsonl").exists()

    # Evaluate-only from the best checkpoint gives the same test metrics.
    cmd = [
        sys.executable,
        "-m",
        "lavis.evaluate",
        "--cfg-path",
        str(out / "config.yaml"),
        "--options",
        f"run.output_dir={tmp_path / 'eval'}",
        f"run.resume_ckpt_path={out / 'checkpoint_best.pt'}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    again = json.loads((tmp_path / "eval" / "metrics_test.json").read_text())
    assert again["brief"] == metrics["brief"]


def test_bad_config_is_one_clear_line_and_exit_2(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "lavis.train",
        "--cfg-path",
        "configs/experiments/synthetic/sms_tiny.yaml",
        "--options",
        "model.fusion.nmae=gca",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "--options: unknown key 'model.fusion.nmae'" in done.stderr and "Traceback" not in done.stderr
