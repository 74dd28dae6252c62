"""Issue 19, part 1: a run is usable from anywhere. The tiny run trained from its data's parent
folder with a relative dataset root (``helpers/tiny_run.py``); here it is copied elsewhere and
read from yet another directory by every command that reads a run, and when its data has moved,
each command names ``--data-root`` in one ``error:`` line and works with it."""

import dataclasses
import json
import logging
import shutil

import pytest

from lavis import load_model
from lavis.common.run_dir import RunDir
from lavis.datasets.schema import load_annotations
from lavis.evaluate import main as evaluate_main
from lavis.export import main as export_main
from lavis.report import main as report_main
from lavis.submission import main as submission_main
from lavis.train import main as train_main


@pytest.fixture
def copied(tiny_run, tmp_path, monkeypatch):
    """The run copied to another folder, and the working directory a third one."""
    run = tmp_path / "copy"
    shutil.copytree(tiny_run.run_dir, run, ignore=shutil.ignore_patterns(".lock", "report_*", "submission"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return run


@pytest.fixture
def moved_data(tiny_run, copied, tmp_path):
    """The copied run's record says its data was in a folder that is gone; the data is in ``moved``."""
    moved = tmp_path / "moved"
    shutil.copytree(tiny_run.data, moved)
    info = RunDir(copied).info
    info.write_text(info.read_text().replace(str(tiny_run.data), str(tmp_path / "gone")))
    return moved


def error_lines(capsys):
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


def test_the_run_records_its_data_resolved_beside_the_config_as_written(tiny_run):
    run = RunDir(tiny_run.run_dir)
    assert "root: data\n" in run.config.read_text()
    location = run.read_info().datasets["synthetic_av"]
    assert location.root == str(tiny_run.data)
    assert location.paths["annotations.test"] == str(tiny_run.data / "test.jsonl")
    assert location.paths["video_root"] == str(tiny_run.data / "videos")


def test_report_submission_predict_and_export_from_another_directory(tiny_run, copied, tmp_path, capsys, caplog):
    with caplog.at_level(logging.WARNING):
        assert report_main(["--run-dir", str(copied), "--split", "test"]) == 0
    assert "not found under" not in caplog.text  # every timeline has its frames and sound
    assert (copied / "report_test" / "index.html").is_file()
    assert submission_main(["--run-dir", str(copied)]) == 0
    assert f"TEST split, scored against {tiny_run.data / 'test.jsonl'}" in capsys.readouterr().out
    span = max(r.duration for r in load_annotations(tiny_run.data / "train.jsonl"))
    assert load_model(copied, device="cpu").span == span  # the run's training span, read from its data
    assert export_main(["--run-dir", str(copied), "--out", str(tmp_path / "export")]) == 0
    assert RunDir(tmp_path / "export").read_info() == RunDir(copied).read_info()
    assert load_model(tmp_path / "export", device="cpu").span == span


def test_the_trained_span_is_recorded_and_read_from_anywhere_even_with_the_data_gone(
    tiny_run, copied, moved_data, tmp_path, caplog
):
    span = max(r.duration for r in load_annotations(tiny_run.data / "train.jsonl"))
    assert RunDir(tiny_run.run_dir).read_info().span == span  # written when it trained
    # The copied run's record points at data that is gone: the span does not need it.
    with caplog.at_level(logging.INFO):
        assert load_model(copied, device="cpu").span == span
        assert export_main(["--run-dir", str(copied), "--out", str(tmp_path / "export")]) == 0
        assert load_model(tmp_path / "export", device="cpu").span == span
    assert "records no span" not in caplog.text


def test_an_old_run_without_the_span_falls_back_and_says_so(tiny_run, copied, moved_data, tmp_path, caplog):
    span = max(r.duration for r in load_annotations(tiny_run.data / "train.jsonl"))
    info = RunDir(copied).info
    record = json.loads(info.read_text())
    record.pop("span")
    info.write_text(json.dumps(record))
    with caplog.at_level(logging.INFO):
        assert load_model(copied, device="cpu").span == 150.0  # its annotations are gone too
    assert "records no span" in caplog.text and "using a 150 s span" in caplog.text
    caplog.clear()
    record["datasets"]["synthetic_av"] = dataclasses.asdict(
        RunDir(tiny_run.run_dir).read_info().datasets["synthetic_av"]
    )
    info.write_text(json.dumps(record))
    with caplog.at_level(logging.INFO):
        assert load_model(copied, device="cpu").span == span
    assert "records no span" in caplog.text and "read from its training annotations" in caplog.text
    # Its export records the span it found, so the export no longer needs the annotations.
    assert export_main(["--run-dir", str(copied), "--out", str(tmp_path / "export")]) == 0
    assert RunDir(tmp_path / "export").read_info().span == span


def test_evaluate_a_run_in_its_folder_from_another_directory(tiny_run, copied):
    original = json.loads((tiny_run.run_dir / "metrics_test.json").read_text())["brief"]
    (copied / "metrics_test.json").unlink()
    assert evaluate_main(["--run-dir", str(copied)]) == 0
    assert json.loads((copied / "metrics_test.json").read_text())["brief"] == original
    assert (copied / "preds_val.jsonl").is_file()


def test_moved_data_names_data_root_and_works_with_it(moved_data, copied, tmp_path, capsys, caplog):
    gone = tmp_path / "gone"
    assert report_main(["--run-dir", str(copied), "--split", "test"]) == 2
    (line,) = error_lines(capsys)
    assert f"ground truth for split 'test' not found: {gone / 'test.jsonl'}" in line and "--data-root DIR" in line
    assert evaluate_main(["--run-dir", str(copied)]) == 2
    (line,) = error_lines(capsys)
    assert str(gone / "train.jsonl") in line and "--data-root DIR" in line

    moved = ["--data-root", str(moved_data)]
    with caplog.at_level(logging.WARNING):
        assert report_main(["--run-dir", str(copied), "--split", "test", *moved]) == 0
    assert "not found under" not in caplog.text
    assert submission_main(["--run-dir", str(copied), *moved]) == 0
    assert f"scored against {moved_data / 'test.jsonl'}" in capsys.readouterr().out
    assert evaluate_main(["--run-dir", str(copied), *moved]) == 0

    # Queries without a prediction are predicted from the run's videos: gone, then moved.
    copied.joinpath("preds_test.jsonl").unlink()
    anns = ["--val-ann", str(moved_data / "val.jsonl"), "--test-ann", str(moved_data / "test.jsonl")]
    assert submission_main(["--run-dir", str(copied), *anns]) == 2
    (line,) = error_lines(capsys)
    assert str(gone / "videos") in line and "--data-root DIR" in line
    assert submission_main(["--run-dir", str(copied), *anns, *moved]) == 0


def test_report_with_another_ground_truth_finds_the_videos_through_video_root(moved_data, copied, caplog):
    ann = ["--ann", str(moved_data / "test.jsonl")]
    with caplog.at_level(logging.WARNING):
        assert report_main(["--run-dir", str(copied), *ann, "--out", "a"]) == 0
    assert "not found under" in caplog.text and "--video-root" in caplog.text  # the recorded videos are gone
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert report_main(["--run-dir", str(copied), *ann, "--video-root", str(moved_data / "videos")]) == 0
    assert "not found under" not in caplog.text and "without frames" not in caplog.text


def test_a_moved_run_resumes(tiny_run, copied):
    # The checkpoint's config has the relative root; the resumed run names where the data is now.
    argv = [
        "--cfg-path",
        str(copied / "config.yaml"),
        "--options",
        f"run.output_dir={copied}",
        f"run.resume_ckpt_path={copied}",
        "run.max_iters=3",
        f"datasets.synthetic_av.root={tiny_run.data}",
    ]
    assert train_main(argv) == 0
    run = RunDir(copied)
    assert [step for step, _ in run.step_checkpoints()][0] == 3
    assert run.read_info().datasets["synthetic_av"].root == str(tiny_run.data)
