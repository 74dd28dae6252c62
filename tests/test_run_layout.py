"""Issue 19, part 1: one owner of the run folder's layout (``RunDir``) and the run's record of
where its data was (``run_info.json``)."""

import json
from pathlib import Path

import pytest
import torch

from lavis.common.config import load_experiment
from lavis.common.run_dir import RUN_FILES, NotARunError, RunDir
from lavis.common.run_info import RUN_INFO_VERSION, DatasetLocation, RunInfo, parse_data_roots
from lavis.common.typed import ConfigError
from lavis.common.weights_file import write_trained_weights
from lavis.datasets.builders import SyntheticAVConfig
from lavis.datasets.dataset_config import SplitPaths

EXPERIMENT = "configs/experiments/synthetic/sms_tiny.yaml"


def test_every_file_of_a_run_is_named_by_the_layout(tmp_path):
    run = RunDir(tmp_path)
    assert run.config.name == "config.yaml" and run.info.name == "run_info.json"
    assert run.metrics_log.name == "metrics.jsonl" and run.lock.name == ".lock"
    assert run.best_checkpoint.name == "checkpoint_best.pt" and run.step_checkpoint(7).name == "checkpoint_step7.pt"
    assert run.preds("test").name == "preds_test.jsonl" and run.metrics("val").name == "metrics_val.json"
    assert run.exported_weights.name == "model.safetensors" and run.card.name == "README.md"
    assert run.predictions.name == "predictions" and run.submission.name == "submission"
    assert run.report("test").name == "report_test"
    assert run.run_files() == []
    for path in (run.config, run.info, run.metrics_log, run.step_checkpoint(3), run.preds("val"), run.metrics("val")):
        path.write_text("x")
    assert run.run_files() == sorted(p.name for p in tmp_path.iterdir())
    assert {"config.yaml", "run_info.json"} <= set(RUN_FILES)
    assert run.evaluated_splits() == {"val": run.metrics("val")}


def test_which_weights_stand_for_a_run(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(NotARunError, match="no config.yaml"):
        run.require()
    with pytest.raises(NotARunError, match="no checkpoint_best.pt or checkpoint_step"):
        run.find_weights()
    for step in (2, 5):
        torch.save({"model": {}, "step": step}, run.step_checkpoint(step))
    run.step_checkpoint(9).write_bytes(b"cut short")  # corrupt newest: skipped
    assert run.find_checkpoint() == run.step_checkpoint(5)
    assert [s for s, _ in run.step_checkpoints()] == [9, 5, 2]
    torch.save({"model": {}}, run.best_checkpoint)
    assert run.find_weights() == run.best_checkpoint  # the best validation score wins over the newest
    write_trained_weights({"w": torch.zeros(1)}, run.exported_weights, {"step": "5"})
    assert run.find_weights() == run.exported_weights and run.find_checkpoint() == run.best_checkpoint


def test_a_dataset_config_records_its_paths_and_takes_them_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = SyntheticAVConfig(root="data", annotations=SplitPaths(test=None), video_root="/elsewhere/videos")
    location = cfg.data_location()
    assert location.root == str(tmp_path / "data")
    assert location.paths == {
        "annotations.train": str(tmp_path / "data" / "train.jsonl"),
        "annotations.val": str(tmp_path / "data" / "val.jsonl"),
        "video_root": "/elsewhere/videos",
        "cached_features_dir": str(tmp_path / "data" / "features"),
    }
    moved = location.moved_to(tmp_path / "new")  # paths under the old root move, the others stay
    assert moved.paths["annotations.val"] == str(tmp_path / "new" / "val.jsonl")
    assert moved.paths["video_root"] == "/elsewhere/videos"
    monkeypatch.chdir("/")
    back = cfg.located_at(moved)
    assert back.annotation_file("val") == tmp_path / "new" / "val.jsonl" and back.annotation_file("test") is None
    assert back.video_dir == Path("/elsewhere/videos")
    assert back.feature_cache_dir("val") == tmp_path / "new" / "features" / "val"


def test_the_record_is_versioned_json_that_takes_new_fields(tmp_path):
    info = RunInfo(datasets={"synthetic_av": DatasetLocation("/d", {"video_root": "/d/videos"})}, span=30.0)
    data = json.loads(info.to_json())
    location = data["datasets"]["synthetic_av"]
    assert data == {"version": RUN_INFO_VERSION, "datasets": {"synthetic_av": location}, "batch": {}, "span": 30.0}
    assert RunInfo.from_json(info.to_json(), "run_info.json") == info
    assert RunInfo.from_json('{"version": 1}', "x") == RunInfo()  # absent fields take their defaults
    assert RunInfo().span is None  # a run recorded before the span was
    with pytest.raises(ConfigError, match="x: version 2 is not one this code reads"):
        RunInfo.from_json('{"version": 2, "span": 30}', "x")
    with pytest.raises(ConfigError, match="x: unknown key 'datasets.a.rot'"):
        RunInfo.from_json('{"version": 1, "datasets": {"a": {"rot": "/"}}}', "x")
    with pytest.raises(ConfigError, match="x: not valid JSON"):
        RunInfo.from_json("{", "x")


def test_data_root_names_the_dataset_when_a_run_has_several():
    assert parse_data_roots(["/new"], ["qvh"]) == {"qvh": Path("/new")}
    with pytest.raises(ValueError, match="the run has datasets \\['qvh', 'charades_sta'\\]: give NAME=DIR"):
        parse_data_roots(["/new"], ["qvh", "charades_sta"])
    assert set(parse_data_roots(["qvh=/a", "charades_sta=/b"], ["qvh", "charades_sta"])) == {"qvh", "charades_sta"}
    with pytest.raises(ValueError, match="--data-root: the run has no dataset 'nope'"):
        RunInfo(datasets={"qvh": DatasetLocation("/d")}).relocated(parse_data_roots(["nope=/x"], ["qvh"]))


def test_a_run_config_resolves_where_the_run_recorded_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_experiment(EXPERIMENT, ["datasets.synthetic_av.root=data"])
    run = RunDir(tmp_path / "run")
    run.write_config(cfg)
    run.write_info(RunInfo.of(cfg))
    assert "root: data\n" in run.config.read_text()  # the config stays as the user wrote it
    monkeypatch.chdir("/")
    loaded = run.load_config().datasets["synthetic_av"]
    assert loaded.annotation_file("test") == tmp_path / "data" / "test.jsonl"
    moved = run.load_config(data_roots=[str(tmp_path / "moved")]).datasets["synthetic_av"]
    assert moved.annotation_file("test") == tmp_path / "moved" / "test.jsonl"
    assert moved.video_dir == tmp_path / "moved" / "videos"
    run.info.unlink()  # a run from before the record: its paths resolve from the current directory
    assert run.load_config().datasets["synthetic_av"].annotation_file("test") == Path("/data/test.jsonl")
