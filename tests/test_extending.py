"""docs/extending.md, proven: a module outside the package (``helpers/extension.py``) registers a
fusion, a dataset, a metric and a hook, and a run uses all four with no edit to the package."""

import csv
import json
import re

import helpers.extension  # noqa: F401  (registers scaled_add, csv_moments, the task and the hook)
import pytest
import torch
from helpers.toy_run import toy_experiment, train_losses

from lavis.common.run_dir import RunDir
from lavis.datasets.schema import load_annotations
from lavis.runners.runner import RunnerBase
from lavis.train import main as train_main

EXPERIMENT = """
model:
  arch: blip2_mr
  model_type: tiny
  fusion: {{name: scaled_add}}
  generation: {{num_beams: 2, max_new_tokens: 8}}
datasets:
  csv_moments:
    root: {root}
    annotations: {{train: train.csv, val: val.csv, test: test.csv}}
    video_root: {videos}
    delimiter: ";"
    num_frames: 4
    vis_processor:
      train: {{name: blip2_video_train, image_size: 64}}
      eval: {{name: blip_video_eval, image_size: 64}}
    audio: {{sampling_rate: 16000, clip_len: 1.5, n_mels: 32, hop_length: 320, fft_window_size: 512,
            max_length_s: 2, frequency_max: 8000.0}}
run:
  task: moment_retrieval_with_overlap
  valid_metric: AnyOverlap@1
  hooks: [metrics_jsonl, stop_after_steps]
  device: cpu
  amp: off
  max_iters: 5
  batch_size_train: 2
  batch_size_eval: 4
  num_workers: 0
  warmup_steps: 1
  valid_every_epochs: 0
  log_freq: 1
  output_dir: {out}
"""


def write_csv(records, path):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=";")
        writer.writerow(["qid", "vid", "duration", "start", "end", "query"])
        for r in records:
            writer.writerow([r.qid, r.vid, r.duration, *r.windows[0], r.query])


def test_a_fusion_a_dataset_a_metric_and_a_hook_from_outside_the_package(tiny_run, tmp_path, one_thread):
    data = tmp_path / "csv"
    data.mkdir()
    for split in ("train", "val", "test"):
        records = load_annotations(tiny_run.data / f"{split}.jsonl")
        for r in records:  # the dataset's videos are <vid>.mp4 (no video_file column)
            assert r.video_file == f"{r.vid}.mp4"
        write_csv(records, data / f"{split}.csv")
    out = tmp_path / "run"
    exp = tmp_path / "exp.yaml"
    exp.write_text(EXPERIMENT.format(root=data, videos=tiny_run.data / "videos", out=out))
    assert train_main(["--cfg-path", str(exp)]) == 0

    run = RunDir(out)
    # The hook ended training after 2 of the 5 steps; the epoch's end and the final test followed.
    assert [step for step, _ in run.step_checkpoints()][0] == 2
    assert sorted(train_losses(out)) == [1, 2]
    # The fusion is the model's: its parameters were trained and saved.
    weights = torch.load(run.best_checkpoint, weights_only=False)["model"]
    assert {k for k in weights if re.match(r"fusion\.(proj|gate)", k)} >= {"fusion.gate", "fusion.proj.weight"}
    # The dataset: one prediction per CSV row, in the file's order.
    test = load_annotations(tiny_run.data / "test.jsonl")
    preds = [json.loads(line) for line in run.preds("test").read_text().splitlines()]
    assert [p["qid"] for p in preds] == [r.qid for r in test]
    # The metric: in the test metrics and in the evaluation records.
    assert 0.0 <= json.loads(run.metrics("test").read_text())["brief"]["AnyOverlap@1"] <= 100.0
    evals = [r for r in map(json.loads, run.metrics_log.read_text().splitlines()) if r["type"] == "eval"]
    assert {r["split"] for r in evals} == {"val", "test"} and all("AnyOverlap@1" in r for r in evals)


def test_an_early_stop_hook_needs_no_change_to_the_runner(tmp_path):
    cfg, task, model, datasets = toy_experiment(
        tmp_path / "run", max_epoch=5, hooks=["metrics_jsonl", "stop_after_steps"]
    )
    results = RunnerBase(cfg, task, model, datasets).train()
    assert sorted(train_losses(tmp_path / "run")) == [1, 2]  # 5 epochs of 6 steps asked, 2 done
    assert results["test"]["brief"]["n"] == 11  # the best checkpoint was still tested
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], "valid_score" in r) for r in records if r["type"] == "epoch"] == [(2, True)]


def test_a_hook_name_may_not_repeat(tmp_path):
    cfg, task, model, datasets = toy_experiment(tmp_path / "run", hooks=["metrics_jsonl", "metrics_jsonl"])
    with pytest.raises(ValueError, match="run.hooks names a hook twice"):
        RunnerBase(cfg, task, model, datasets)
