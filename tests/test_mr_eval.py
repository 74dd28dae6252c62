"""The lavis.tasks.mr_eval command line, end to end on small files the tests write."""

import json
import subprocess
import sys

import pytest

from lavis.tasks.mr_eval import main

GT = [
    {
        "qid": 7,
        "vid": "a",
        "query": "dog barks",
        "duration": 30,
        "relevant_windows": [[0, 8]],
        "relevant_clip_ids": [0, 1],
        "saliency_scores": [[4, 4, 2], [1, 2, 3]],
    },
    {
        "qid": 8,
        "vid": "b",
        "query": "car passes",
        "duration": 60,
        "relevant_windows": [[10, 40]],
        "relevant_clip_ids": [5],
        "saliency_scores": [[3, 3, 3]],
    },
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def gt_path(tmp_path):
    return write_jsonl(tmp_path / "gt.jsonl", GT)


def preds(saliency=False):
    rows = [
        {"qid": 7, "pred_relevant_windows": [[0, 8, 0.9], [20, 25, 0.1]]},
        {"qid": 8, "pred_relevant_windows": [[10, 25, 0.8]]},  # IoU 0.5
    ]
    if saliency:
        rows[0]["pred_saliency_scores"] = [1.0] + [0.0] * 14
        rows[1]["pred_saliency_scores"] = [0.0] * 5 + [1.0] + [0.0] * 24
    return rows


def test_cli_end_to_end(tmp_path, gt_path, capsys):
    sub = write_jsonl(tmp_path / "preds.jsonl", preds(saliency=True))
    save = tmp_path / "out" / "metrics.json"
    assert main(["--submission_path", str(sub), "--gt_path", str(gt_path), "--save_path", str(save)]) == 0
    metrics = json.loads(save.read_text())
    assert metrics["brief"]["MR-full-R1@0.5"] == 100.0 and metrics["brief"]["MR-full-R1@0.7"] == 50.0
    assert metrics["brief"]["HL-min-VeryGood-Hit1"] == 50.0  # query 8's best clip scores 3 at most
    assert metrics["brief"]["HL-min-Good-Hit1"] == 100.0
    out = capsys.readouterr().out
    assert "MR-full-mAP" in out and "HL-min-Fair-mAP" in out
    assert "queries evaluated: 2 (short 1, middle 1, long 0)" in out


def test_mrblip_json_list_with_repeated_qids(tmp_path, capsys):
    gt = [
        {
            "video": "V1",
            "qid": "Charades-STA_V1",
            "query": "person opens door",
            "duration": 30.0,
            "relevant_windows": [[2, 8]],
        },
        {
            "video": "V1",
            "qid": "Charades-STA_V1",
            "query": "person sits",
            "duration": 30.0,
            "relevant_windows": [[10, 20]],
        },
    ]
    gt_path = tmp_path / "test.json"
    gt_path.write_text(json.dumps(gt))
    good = write_jsonl(
        tmp_path / "good.jsonl",
        [
            {"qid": "Charades-STA_V1#0", "pred_relevant_windows": [[2, 8, 1.0]]},
            {"qid": "Charades-STA_V1#1", "pred_relevant_windows": [[10, 15, 1.0]]},
        ],
    )
    assert main(["--submission_path", str(good), "--gt_path", str(gt_path)]) == 0
    assert "queries evaluated: 2" in capsys.readouterr().out
    # The reference's per-video ids do not name a query: refused.
    raw = write_jsonl(tmp_path / "raw.jsonl", [{"qid": "Charades-STA_V1", "pred_relevant_windows": [[2, 8, 1.0]]}])
    assert main(["--submission_path", str(raw), "--gt_path", str(gt_path)]) == 2
    assert "qid Charades-STA_V1: not in the ground truth" in capsys.readouterr().err


def test_cli_errors_are_one_line_with_nonzero_exit(tmp_path, gt_path, capsys):
    rows = preds() + [{"qid": 7, "pred_relevant_windows": [[0, 8, 0.9]]}]
    sub = write_jsonl(tmp_path / "dup.jsonl", rows)
    assert main(["--submission_path", str(sub), "--gt_path", str(gt_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: qid 7: more than one prediction") and err.count("\n") == 1

    sub.write_text(json.dumps(preds()[0]) + "\n{not json\n")
    assert main(["--submission_path", str(sub), "--gt_path", str(gt_path)]) == 2
    assert "dup.jsonl: line 2: not valid JSON" in capsys.readouterr().err

    assert main(["--submission_path", str(tmp_path / "nope.jsonl"), "--gt_path", str(gt_path)]) == 2
    assert "prediction file not found" in capsys.readouterr().err
    assert main(["--submission_path", str(sub), "--gt_path", str(tmp_path / "nope.json")]) == 2
    assert "annotation file not found" in capsys.readouterr().err


def test_cli_lenient_counts_and_reports(tmp_path, gt_path, capsys):
    sub = tmp_path / "preds.jsonl"
    sub.write_text(
        json.dumps(preds()[0]) + "\n{not json\n" + json.dumps({"qid": 99, "pred_relevant_windows": []}) + "\n"
    )
    save = tmp_path / "m.json"
    assert main(["--submission_path", str(sub), "--gt_path", str(gt_path), "--save_path", str(save), "--lenient"]) == 0
    metrics = json.loads(save.read_text())
    assert metrics["validation"]["counts"] == {"malformed": 1, "missing": 1, "unknown": 1}
    assert metrics["brief"]["MR-full-R1@0.5"] == 50.0  # query 8 had no prediction: a miss
    assert "lenient: 1 malformed, 1 missing, 1 unknown" in capsys.readouterr().out


def test_module_runs_as_a_script(tmp_path, gt_path):
    sub = write_jsonl(tmp_path / "preds.jsonl", preds())
    result = subprocess.run(
        [sys.executable, "-m", "lavis.tasks.mr_eval", "--submission_path", str(sub), "--gt_path", str(gt_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "MR-full-R1@0.5" in result.stdout and "queries evaluated: 2" in result.stdout
