"""`python -m lavis.submission`: QVHighlights leaderboard files from a run, predicted where the run
has no prediction, zipped, accepted by the project's evaluator, and scored on test when labels exist."""

import json
import shutil
import zipfile

import pytest

from lavis.datasets.schema import load_annotations
from lavis.submission import main as submission_main
from lavis.tasks.mr_eval import main as mr_eval_main

NAMES = ["hl_val_submission.jsonl", "hl_test_submission.jsonl"]


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_files(out, qids: dict[str, list], durations: dict | None = None) -> None:
    """Both files: one line per query in annotation order, the public keys only; with
    ``durations`` (a model with the saliency head, as the tiny run's) one highlight score per 2 s
    clip, without them none; the zip holds them."""
    with zipfile.ZipFile(out / "submission.zip") as zf:
        assert sorted(zf.namelist()) == sorted(NAMES)  # at the top level, nothing else
        for name in NAMES:
            assert zf.read(name).decode() == (out / name).read_text()
    for split in ("val", "test"):
        lines = read_lines(out / f"hl_{split}_submission.jsonl")
        assert [line["qid"] for line in lines] == qids[split]
        for line in lines:
            if durations is None:
                assert set(line) == {"qid", "query", "vid", "pred_relevant_windows"}
            else:
                assert set(line) == {"qid", "query", "vid", "pred_relevant_windows", "pred_saliency_scores"}
                assert len(line["pred_saliency_scores"]) == int(durations[line["qid"]] / 2)
            for window in line["pred_relevant_windows"]:
                assert len(window) == 3 and window[0] <= window[1]


def test_submission_from_the_runs_predictions(tiny_run, tmp_path, capsys):
    out = tmp_path / "sub"
    assert submission_main(["--run-dir", str(tiny_run.run_dir), "--out", str(out)]) == 0
    records = {s: load_annotations(tiny_run.data / f"{s}.jsonl") for s in ("val", "test")}
    durations = {r.qid: r.duration for rs in records.values() for r in rs}
    check_files(out, {s: [r.qid for r in rs] for s, rs in records.items()}, durations)
    printed = capsys.readouterr().out
    assert f"TEST split, scored against {tiny_run.data / 'test.jsonl'}" in printed and "no saliency" not in printed
    saved = json.loads((out / "metrics_test.json").read_text())
    assert saved["split"] == "test" and saved["ground_truth"] == str(tiny_run.data / "test.jsonl")
    run_metrics = json.loads((tiny_run.run_dir / "metrics_test.json").read_text())
    assert saved["brief"]["MR-full-mAP"] == run_metrics["brief"]["MR-full-mAP"]
    assert saved["brief"]["HL-min-VeryGood-mAP"] == run_metrics["brief"]["HL-min-VeryGood-mAP"]  # highlights scored
    for split in ("val", "test"):  # the project's evaluator accepts the files as they are
        assert (
            mr_eval_main(
                [
                    "--submission_path",
                    str(out / f"hl_{split}_submission.jsonl"),
                    "--gt_path",
                    str(tiny_run.data / f"{split}.jsonl"),
                ]
            )
            == 0
        )


def test_queries_without_a_prediction_are_predicted_with_the_runs_model(tiny_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "run_info.json", "checkpoint_best.pt"):
        shutil.copy(tiny_run.run_dir / name, run / name)
    original = read_lines(tiny_run.run_dir / "preds_test.jsonl")
    (run / "preds_test.jsonl").write_text(json.dumps(original[0]) + "\n")  # val: none at all, test: one
    assert submission_main(["--run-dir", str(run)]) == 0
    out = run / "submission"
    records = {s: load_annotations(tiny_run.data / f"{s}.jsonl") for s in ("val", "test")}
    durations = {r.qid: r.duration for rs in records.values() for r in rs}
    check_files(out, {s: [r.qid for r in rs] for s, rs in records.items()}, durations)
    predicted = {line["qid"]: line["pred_relevant_windows"] for line in read_lines(out / "hl_test_submission.jsonl")}
    for pred in original:  # the same windows the runner's evaluation wrote
        assert predicted[pred["qid"]] == pytest.approx(pred["pred_relevant_windows"], abs=1e-4)


def test_the_qvhighlights_release_files_and_test_labels(shared_data, tiny_run, tmp_path, capsys):
    qvh = shared_data / "qvhighlights"
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(tiny_run.run_dir / "config.yaml", run / "config.yaml")
    # Perfect predictions (the labels as windows), in a shuffled order with an extra query
    # the submission must leave out.
    for split, source in (("val", "highlight_val_release.jsonl"), ("test", "highlight_test_with_gt.jsonl")):
        records = load_annotations(qvh / source)
        preds = [
            {
                "qid": r.qid,
                "query": r.query,
                "vid": r.vid,
                "invalid": False,
                "pred_text": "",
                "pred_relevant_windows": [[s, e, 1.0 - 0.01 * k] for k, (s, e) in enumerate(r.windows)],
            }
            for r in reversed(records)
        ]
        preds.append({"qid": -1, "pred_relevant_windows": [[0, 1, 1.0]]})
        (run / f"preds_{split}.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
    argv = [
        "--run-dir",
        str(run),
        "--val-ann",
        str(qvh / "highlight_val_release.jsonl"),
        "--test-ann",
        str(qvh / "highlight_test_release.jsonl"),
        "--test-gt",
        str(qvh / "highlight_test_with_gt.jsonl"),
    ]
    assert submission_main(argv) == 0
    out = run / "submission"
    release = {
        "val": load_annotations(qvh / "highlight_val_release.jsonl"),
        "test": load_annotations(qvh / "highlight_test_release.jsonl", allow_no_windows=True),
    }
    check_files(out, {s: [r.qid for r in rs] for s, rs in release.items()})
    assert len(release["test"]) == 1542
    saved = json.loads((out / "metrics_test.json").read_text())
    assert saved["split"] == "test" and saved["ground_truth"].endswith("highlight_test_with_gt.jsonl")
    # Labels as predictions: every top window is right (mAP caps at 10 windows per query, a few have more).
    assert saved["brief"]["MR-full-R1@0.7"] == 100.0 and saved["brief"]["MR-full-mAP"] > 99.0
    assert "TEST split, scored against" in capsys.readouterr().out
    assert (
        mr_eval_main(
            [
                "--submission_path",
                str(out / "hl_test_submission.jsonl"),
                "--gt_path",
                str(qvh / "highlight_test_with_gt.jsonl"),
            ]
        )
        == 0
    )


def test_bad_input_is_one_clear_line_and_exit_2(tiny_run, tmp_path, capsys):
    assert submission_main(["--run-dir", str(tmp_path)]) == 2
    assert "no config.yaml" in capsys.readouterr().err
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "run_info.json"):
        shutil.copy(tiny_run.run_dir / name, run / name)
    lines = (tiny_run.run_dir / "preds_val.jsonl").read_text().splitlines()
    (run / "preds_val.jsonl").write_text(lines[0] + "\n{not json\n")
    assert submission_main(["--run-dir", str(run)]) == 2
    assert "preds_val.jsonl: line 2: not valid JSON" in capsys.readouterr().err
    (run / "preds_val.jsonl").write_text(lines[0] + "\n")  # incomplete, and the run has no checkpoint
    assert submission_main(["--run-dir", str(run)]) == 2
    assert "no checkpoint_best.pt" in capsys.readouterr().err
