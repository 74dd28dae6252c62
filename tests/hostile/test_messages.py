"""Messages (issue 20, class 6): one ``error:`` line that says what was found and which option
takes it (a folder given for a file and the reverse), a file and its line for a malformed
prediction or a cut metrics file, and text that is not UTF-8 never crashes a drawing."""

import json
import os
import shutil
from pathlib import Path

import pytest

from hostile.context import Case, assert_one_error_line, exported
from lavis import evaluate as evaluate_cli
from lavis import export, predict, report, submission
from lavis import train as train_cli
from lavis.tasks import mr_eval


def _video(c) -> str:
    return str(sorted((c.data / "videos").iterdir())[0])


def _preds_with(c, line: str, at: int = 1) -> Path:
    """The run's preds_test.jsonl with line ``at`` (1-based) replaced."""
    lines = (c.run / "preds_test.jsonl").read_text().splitlines()
    lines[at - 1] = line
    (c.run / "preds_test.jsonl").write_text("\n".join(lines) + "\n")
    return c.run


def _first_qid(c) -> str:
    return json.loads((c.run / "preds_test.jsonl").read_text().splitlines()[0])["qid"]


NOT_UTF8_QUERY = os.fsdecode(b"caf\xe9 au lait")  # what a Latin-1 terminal gives Python's argv

CASES: list[Case] = [
    # A file where a folder is expected, and the reverse: what was found, which option takes it.
    (
        "predict_run_dir_is_a_checkpoint",
        predict.main,
        lambda c: ["--run-dir", str(c.run / "checkpoint_best.pt"), "--video", _video(c), "--query", "q"],
        "checkpoint_best.pt is a weights file, not a run folder",
    ),
    (
        "predict_checkpoint_is_a_folder",
        predict.main,
        lambda c: [
            "--cfg-path",
            str(c.run / "config.yaml"),
            "--checkpoint",
            str(c.run),
            "--video",
            _video(c),
            "--query",
            "q",
        ],
        "is a folder, not a file (a run's or an export's folder goes to --run-dir",
    ),
    (
        "predict_cfg_path_is_a_folder",
        predict.main,
        lambda c: [
            "--cfg-path",
            str(c.run),
            "--checkpoint",
            str(c.run / "checkpoint_best.pt"),
            "--video",
            _video(c),
            "--query",
            "q",
        ],
        "is a folder, not a file",
    ),
    (
        "predict_video_is_a_folder",
        predict.main,
        lambda c: ["--run-dir", str(c.run), "--video", str(c.data), "--query", "q"],
        "is a folder, not a file (--jsonl runs a batch of videos)",
    ),
    (
        "predict_jsonl_is_a_folder",
        predict.main,
        lambda c: ["--run-dir", str(c.run), "--jsonl", str(c.data)],
        "JSONL file",
    ),
    ("train_cfg_path_is_a_run_folder", train_cli.main, lambda c: ["--cfg-path", str(c.run)], "its run's config is"),
    (
        "evaluate_run_dir_is_a_file",
        evaluate_cli.main,
        lambda c: ["--run-dir", str(c.run / "config.yaml")],
        "config.yaml is a file, not a run folder",
    ),
    (
        "report_run_dir_is_a_checkpoint",
        report.main,
        lambda c: ["--run-dir", str(c.run / "checkpoint_best.pt")],
        "is a weights file, not a run folder",
    ),
    (
        "export_run_dir_is_a_checkpoint",
        export.main,
        lambda c: ["--run-dir", str(c.run / "checkpoint_best.pt"), "--out", str(c.tmp / "e")],
        "is a weights file, not a run folder",
    ),
    (
        "submission_run_dir_is_a_file",
        submission.main,
        lambda c: ["--run-dir", str(c.run / "preds_test.jsonl")],
        "is a file, not a run folder",
    ),
    (
        "report_ann_is_a_folder",
        report.main,
        lambda c: ["--run-dir", str(c.run), "--ann", str(c.data)],
        "is a folder, not a file",
    ),
    (
        "mr_eval_preds_is_a_folder",
        mr_eval.main,
        lambda c: ["--submission_path", str(c.run), "--gt_path", str(c.data / "test.jsonl")],
        "prediction file",
    ),
    (
        "mr_eval_gt_is_a_folder",
        mr_eval.main,
        lambda c: ["--submission_path", str(c.run / "preds_test.jsonl"), "--gt_path", str(c.data)],
        "annotation file",
    ),
    (
        "evaluate_an_export",
        evaluate_cli.main,
        lambda c: ["--run-dir", str(exported(c))],
        "is an exported folder (model.safetensors, no training checkpoint)",
    ),
    # A bad video, a query that cannot be read.
    (
        "predict_one_bad_video",
        predict.main,
        lambda c: ["--run-dir", str(c.run), "--video", str(c.file("bad.mp4", b"\x00" * 512)), "--query", "q"],
        "bad.mp4",
    ),
    (
        "predict_query_not_utf8",
        predict.main,
        lambda c: ["--run-dir", str(c.run), "--video", _video(c), "--query", NOT_UTF8_QUERY],
        "query 1 of 1 is not UTF-8 text",
    ),
    (
        "predict_query_unknown_characters",
        predict.main,
        lambda c: ["--run-dir", str(c.run), "--video", _video(c), "--query", "日本語の質問"],
        "has no character the model's tokenizer knows",
    ),
    # Malformed predictions and a cut metrics file: the file and the line.
    (
        "report_preds_line_not_an_object",
        report.main,
        lambda c: ["--run-dir", str(_preds_with(c, "7", at=2))],
        "preds_test.jsonl: line 2: expected an object with a 'qid'",
    ),
    (
        "report_preds_without_qid",
        report.main,
        lambda c: ["--run-dir", str(_preds_with(c, '{"pred_relevant_windows": []}'))],
        "preds_test.jsonl: line 1: expected an object with a 'qid'",
    ),
    (
        "report_preds_windows_not_a_list",
        report.main,
        lambda c: ["--run-dir", str(_preds_with(c, json.dumps({"qid": _first_qid(c), "pred_relevant_windows": "x"})))],
        "preds_test.jsonl: line 1: qid",
    ),
    (
        "report_preds_window_of_text",
        report.main,
        lambda c: [
            "--run-dir",
            str(_preds_with(c, json.dumps({"qid": _first_qid(c), "pred_relevant_windows": [["a", 2, 3]]}))),
        ],
        "must hold three finite numbers",
    ),
    (
        "report_preds_cut",
        report.main,
        lambda c: ["--run-dir", str(_preds_with(c, '{"qid": "x", "pred_rel'))],
        "preds_test.jsonl: line 1: not valid JSON",
    ),
    (
        "export_metrics_cut",
        export.main,
        lambda c: [
            "--run-dir",
            str(c.file("metrics_val.json", b'{"brief": {"mIoU": 1', c.run).parent),
            "--out",
            str(c.tmp / "e"),
        ],
        "metrics_val.json: line 1: not valid JSON",
    ),
    (
        "export_metrics_not_metrics",
        export.main,
        lambda c: ["--run-dir", str(c.file("metrics_val.json", b"[1, 2]", c.run).parent), "--out", str(c.tmp / "e")],
        "no 'brief' metrics object",
    ),
]


@pytest.mark.parametrize("name, main, argv, message", CASES, ids=[c[0] for c in CASES])
def test_a_hostile_input_is_one_line_and_exit_2(ctx, capsys, name, main, argv, message):
    code = main(argv(ctx))
    assert_one_error_line(code, capsys.readouterr().err, message)


def test_a_video_name_that_is_not_utf8_is_predicted_and_drawn(ctx, capsys):
    video = ctx.tmp / os.fsdecode(b"caf\xe9.mp4")
    shutil.copy(_video(ctx), video)
    out = ctx.tmp / "out"
    assert (
        predict.main(["--run-dir", str(ctx.run), "--video", str(video), "--query", "a red square", "--out", str(out)])
        == 0
    )
    [result] = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert Path(result["timeline"]).stat().st_size > 0 and "Traceback" not in capsys.readouterr().err
