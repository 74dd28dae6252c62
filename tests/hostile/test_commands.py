"""Hostile inputs to the other entry points (issue 13's list): evaluation, the evaluator, predict, submission, report, inspect_model and data preparation; each ends with exit status 2 and one ``error:`` line, never a traceback."""

import json

import pytest
from helpers.tiny_run import EXPERIMENT

from hostile.context import NOT_UTF8, Case, assert_one_error_line
from lavis import evaluate as evaluate_cli
from lavis import inspect_model, predict, report, submission
from lavis.tasks import mr_eval
from mr_data import cache_features, charades, convert, synthetic

CASES: list[Case] = [
    # Evaluation.
    (
        "evaluate_missing_checkpoint",
        evaluate_cli.main,
        lambda c: [
            "--cfg-path",
            str(c.run / "config.yaml"),
            "--options",
            f"datasets.synthetic_av.root={c.data}",
            f"run.output_dir={c.tmp / 'ev'}",
            f"run.resume_ckpt_path={c.tmp / 'no.pt'}",
        ],
        "checkpoint not found",
    ),
    (
        "evaluate_into_another_run",
        evaluate_cli.main,
        lambda c: [
            "--cfg-path",
            str(c.run / "config.yaml"),
            "--options",
            f"datasets.synthetic_av.root={c.data}",
            f"run.resume_ckpt_path={c.file('w.pt', 'x')}",
        ],
        "holds another run",
    ),
    # mr_eval.
    (
        "mr_eval_preds_not_utf8",
        mr_eval.main,
        lambda c: ["--submission_path", str(c.file("p.jsonl", NOT_UTF8)), "--gt_path", str(c.data / "test.jsonl")],
        "p.jsonl: not UTF-8",
    ),
    (
        "mr_eval_gt_not_utf8",
        mr_eval.main,
        lambda c: ["--submission_path", str(c.run / "preds_test.jsonl"), "--gt_path", str(c.file("g.jsonl", NOT_UTF8))],
        "g.jsonl: not UTF-8",
    ),
    (
        "mr_eval_unwritable_save_path",
        mr_eval.main,
        lambda c: [
            "--submission_path",
            str(c.run / "preds_test.jsonl"),
            "--gt_path",
            str(c.data / "test.jsonl"),
            "--save_path",
            str(c.file("f", "x") / "m.json"),
        ],
        "f: File exists",
    ),
    (
        "mr_eval_missing_preds",
        mr_eval.main,
        lambda c: ["--submission_path", str(c.tmp / "no.jsonl"), "--gt_path", str(c.data / "test.jsonl")],
        "prediction file not found",
    ),
    (
        "mr_eval_missing_gt",
        mr_eval.main,
        lambda c: ["--submission_path", str(c.run / "preds_test.jsonl"), "--gt_path", str(c.tmp / "no.jsonl")],
        "annotation file not found",
    ),
    (
        "mr_eval_preds_not_json",
        mr_eval.main,
        lambda c: ["--submission_path", str(c.file("p.jsonl", "{oops")), "--gt_path", str(c.data / "test.jsonl")],
        "not valid JSON",
    ),
    (
        "mr_eval_preds_of_another_split",
        mr_eval.main,
        lambda c: ["--submission_path", str(c.run / "preds_val.jsonl"), "--gt_path", str(c.data / "test.jsonl")],
        "qid",
    ),
    # predict.
    (
        "predict_missing_video",
        predict.main,
        lambda c: ["--run-dir", str(c.run), "--video", str(c.tmp / "no.mp4"), "--query", "q"],
        "file not found",
    ),
    (
        "predict_video_and_jsonl",
        predict.main,
        lambda c: ["--run-dir", str(c.run), "--video", "a.mp4", "--jsonl", "b.jsonl"],
        "give either --video",
    ),
    (
        "predict_no_query",
        predict.main,
        lambda c: ["--run-dir", str(c.run), "--video", "a.mp4"],
        "needs at least one --query",
    ),
    (
        "predict_empty_query",
        predict.main,
        lambda c: ["--run-dir", str(c.run), "--video", "a.mp4", "--query", " "],
        "is empty",
    ),
    (
        "predict_missing_run",
        predict.main,
        lambda c: [
            "--run-dir",
            str(c.tmp / "norun"),
            "--jsonl",
            str(c.file("q.jsonl", '{"video": "a.mp4", "query": "q"}')),
        ],
        "run directory not found",
    ),
    (
        "predict_jsonl_not_utf8",
        predict.main,
        lambda c: ["--run-dir", str(c.run), "--jsonl", str(c.file("q.jsonl", NOT_UTF8))],
        "q.jsonl: not UTF-8",
    ),
    (
        "predict_jsonl_bad_line",
        predict.main,
        lambda c: ["--run-dir", str(c.run), "--jsonl", str(c.file("q.jsonl", '{"video": 3}'))],
        "line 1",
    ),
    (
        "predict_bad_overlap",
        predict.main,
        lambda c: [
            "--run-dir",
            str(c.run),
            "--video",
            str(next((c.data / "videos").iterdir())),
            "--query",
            "q",
            "--overlap",
            "2",
        ],
        "overlap",
    ),
    # submission, report, inspect_model.
    ("submission_not_a_run", submission.main, lambda c: ["--run-dir", str(c.tmp)], "no config.yaml"),
    (
        "submission_missing_ann",
        submission.main,
        lambda c: ["--run-dir", str(c.run), "--val-ann", str(c.tmp / "no.jsonl")],
        "annotation file not found",
    ),
    ("report_not_a_run", report.main, lambda c: ["--run-dir", str(c.tmp)], "no config.yaml"),
    (
        "report_missing_preds",
        report.main,
        lambda c: ["--run-dir", str(c.run), "--split", "train"],
        "prediction file not found",
    ),
    (
        "inspect_missing_config",
        inspect_model.main,
        lambda c: ["--cfg-path", str(c.tmp / "no.yaml"), "--meta"],
        "config file not found",
    ),
    (
        "inspect_unknown_key",
        inspect_model.main,
        lambda c: ["--cfg-path", EXPERIMENT, "--meta", "--options", "model.nope=1"],
        "unknown key",
    ),
    # Data preparation.
    (
        "convert_missing_input",
        convert.main,
        lambda c: ["--input", str(c.tmp / "no.jsonl"), "--out", str(c.tmp / "o.jsonl")],
        "not found",
    ),
    (
        "convert_not_utf8",
        convert.main,
        lambda c: ["--input", str(c.file("in.jsonl", NOT_UTF8)), "--out", str(c.tmp / "o.jsonl")],
        "in.jsonl: not UTF-8",
    ),
    (
        "convert_negative_start",
        convert.main,
        lambda c: [
            "--input",
            str(
                c.file(
                    "in.jsonl",
                    json.dumps({"qid": 1, "vid": "v", "query": "q", "duration": 9.0, "relevant_windows": [[-3, 2]]}),
                )
            ),
            "--out",
            str(c.tmp / "o.jsonl"),
        ],
        "starts before 0",
    ),
    (
        "convert_bad_val_fraction",
        convert.main,
        lambda c: [
            "--input",
            str(c.data / "test.jsonl"),
            "--out",
            str(c.tmp / "o.jsonl"),
            "--val-out",
            str(c.tmp / "v.jsonl"),
            "--val-fraction",
            "1.5",
        ],
        "split fractions",
    ),
    (
        "charades_missing_sta",
        charades.main,
        lambda c: ["--sta", str(c.tmp / "no.txt"), "--csv", str(c.tmp / "no.csv"), "--out", str(c.tmp / "o.jsonl")],
        "not found",
    ),
    (
        "charades_bad_line",
        charades.main,
        lambda c: [
            "--sta",
            str(c.file("sta.txt", "V1 1.0 2.0 no hashes\n")),
            "--csv",
            str(c.file("c.csv", "id,length\nV1,30\n")),
            "--out",
            str(c.tmp / "o.jsonl"),
        ],
        "no '##'",
    ),
    (
        "synthetic_too_few_videos",
        synthetic.main,
        lambda c: ["--out", str(c.tmp / "syn"), "--num-videos", "1"],
        "num_videos must be >= 3",
    ),
    (
        "synthetic_out_is_a_file",
        synthetic.main,
        lambda c: ["--out", str(c.file("syn", "x")), "--num-videos", "3", "--workers", "1"],
        "syn",
    ),
    (
        "cache_features_unknown_dataset",
        cache_features.main,
        lambda c: [
            "--cfg-path",
            EXPERIMENT,
            "--split",
            "test",
            "--dataset",
            "nope",
            "--options",
            f"datasets.synthetic_av.root={c.data}",
        ],
        "pick one of",
    ),
    (
        "cache_features_missing_config",
        cache_features.main,
        lambda c: ["--cfg-path", str(c.tmp / "no.yaml"), "--split", "test"],
        "config file not found",
    ),
]


@pytest.mark.parametrize("name, main, argv, message", CASES, ids=[c[0] for c in CASES])
def test_a_hostile_input_is_one_line_and_exit_2(ctx, capsys, name, main, argv, message):
    code = main(argv(ctx))
    assert_one_error_line(code, capsys.readouterr().err, message)
