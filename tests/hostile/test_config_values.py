"""Values a config or a command line accepts that cannot work (issue 20, class 3): each is refused
when the config loads (not minutes later) with one ``error:`` line naming the key, and a NaN loss
stops a run with one line naming the step and its queries."""

import importlib.util

import pytest
from helpers.toy_run import toy_experiment

from hostile.context import Case, assert_one_error_line
from lavis import inspect_model, predict, report
from lavis import train as train_cli
from lavis.common.cli import cli_errors
from lavis.runners.runner import RunnerBase
from lavis.tasks import mr_eval
from mr_data import convert, synthetic


def _predict(c, *extra: str) -> list[str]:
    video = str(sorted((c.data / "videos").iterdir())[0])
    return ["--run-dir", str(c.run), "--video", video, "--query", "q", *extra]


def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


CASES: list[Case] = [
    (
        "train_lr_nan",
        train_cli.main,
        lambda c: c.train("run.init_lr=.nan"),
        "'run.init_lr' must be a finite number, got nan",
    ),
    (
        "train_lr_inf",
        train_cli.main,
        lambda c: c.train("run.init_lr=.inf"),
        "'run.init_lr' must be a finite number, got inf",
    ),
    (
        "train_max_minutes_nan",
        train_cli.main,
        lambda c: c.train("run.max_minutes=.nan"),
        "'run.max_minutes' must be a finite number",
    ),
    (
        "train_min_lr_negative_inf",
        train_cli.main,
        lambda c: c.train("run.min_lr=-.inf"),
        "'run.min_lr' must be a finite number",
    ),
    (
        "train_grad_clip_nan",
        train_cli.main,
        lambda c: c.train("run.grad_clip_norm=.nan"),
        "'run.grad_clip_norm' must be a finite number",
    ),
    (
        "train_lr_scale_nan",
        train_cli.main,
        lambda c: c.train("run.lr_scale={qformer: .nan}"),
        "'run.lr_scale.qformer' must be a finite number",
    ),
    (
        "train_seed_negative",
        train_cli.main,
        lambda c: c.train("run.seed=-1"),
        "'run.seed' must be >= 0 and < 2147483648, got -1",
    ),
    (
        "train_hop_length_zero",
        train_cli.main,
        lambda c: c.train("datasets.synthetic_av.audio.hop_length=0"),
        "'datasets.synthetic_av.audio.hop_length' must be >= 1, got 0",
    ),
    (
        "train_clip_len_nan",
        train_cli.main,
        lambda c: c.train("datasets.synthetic_av.audio.clip_len=.nan"),
        "'datasets.synthetic_av.audio.clip_len' must be a finite number",
    ),
    (
        "train_num_frames_zero",
        train_cli.main,
        lambda c: c.train("datasets.synthetic_av.num_frames=0"),
        "'datasets.synthetic_av.num_frames' must be >= 1",
    ),
    (
        "train_crop_probability_two",
        train_cli.main,
        lambda c: c.train("datasets.synthetic_av.temporal_crop.prob=2"),
        "'datasets.synthetic_av.temporal_crop.prob' must be >= 0 and <= 1",
    ),
    (
        "train_dropout_one",
        train_cli.main,
        lambda c: c.train("model.fusion.dropout=1.0"),
        "'model.fusion.dropout' must be >= 0 and < 1",
    ),
    (
        "train_num_beams_zero",
        train_cli.main,
        lambda c: c.train("model.generation.num_beams=0"),
        "'model.generation.num_beams' must be >= 1",
    ),
    (
        "train_processor_std_zero",
        train_cli.main,
        lambda c: c.train("datasets.synthetic_av.vis_processor.eval.std=[0.5,0,0.5]"),
        "std[1]' must be > 0",
    ),
    (
        "train_warmup_fraction_one",
        train_cli.main,
        lambda c: c.train("run.warmup_steps=null", "run.warmup_fraction=1.0"),
        "'run.warmup_fraction' must be >= 0 and < 1",
    ),
    (
        "train_warmup_twice",
        train_cli.main,
        lambda c: c.train("run.warmup_fraction=0.1"),
        "warmup_steps and warmup_fraction are both set",
    ),
    (
        "train_global_batch_and_accumulation",
        train_cli.main,
        lambda c: c.train("run.global_batch_size=4", "run.accum_grad_iters=2"),
        "accum_grad_iters is derived from global_batch_size=4",
    ),
    (
        "train_global_batch_too_big",
        train_cli.main,
        lambda c: c.train("run.global_batch_size=4096"),
        "training samples are too few",
    ),
    (
        "train_misspelt_key",
        train_cli.main,
        lambda c: c.train("run.max_epochs=3"),
        "unknown key 'run.max_epochs' (did you mean max_epoch?)",
    ),
    (
        "train_misspelt_nested_key",
        train_cli.main,
        lambda c: c.train("model.generation.num_beam=3"),
        "(did you mean num_beams?)",
    ),
    ("train_misspelt_fusion", train_cli.main, lambda c: c.train("model.fusion.name=gcaa"), "(did you mean gca?)"),
    (
        "train_misspelt_choice",
        train_cli.main,
        lambda c: c.train("run.lr_sched=constant"),
        "(did you mean constant_lr?)",
    ),
    (
        "predict_span_nan",
        predict.main,
        lambda c: _predict(c, "--span", "nan"),
        "argument --span: not a finite number: 'nan'",
    ),
    (
        "predict_span_inf",
        predict.main,
        lambda c: _predict(c, "--span", "inf"),
        "argument --span: not a finite number: 'inf'",
    ),
    (
        "predict_overlap_nan",
        predict.main,
        lambda c: _predict(c, "--overlap", "nan"),
        "argument --overlap: not a finite number",
    ),
    (
        "predict_nms_iou_zero",
        predict.main,
        lambda c: _predict(c, "--nms-iou", "0"),
        "nms_iou must be > 0 and <= 1, got 0.0",
    ),
    (
        "predict_batch_size_zero",
        predict.main,
        lambda c: _predict(c, "--batch-size", "0"),
        "batch_size must be >= 1, got 0",
    ),
    (
        "inspect_dropout_nan",
        inspect_model.main,
        lambda c: [
            "--cfg-path",
            "configs/experiments/synthetic/sms_tiny.yaml",
            "--meta",
            "--options",
            "model.llm.dropout=.nan",
        ],
        "'model.llm.dropout' must be a finite number",
    ),
]
CASES += [  # Command-line numbers and argparse's own mistakes: one error line too.
    ("train_empty_output_dir", train_cli.main, lambda c: c.train('run.output_dir=""'), "output_dir must name a folder"),
    (
        "predict_gt_infinite",
        predict.main,
        lambda c: [
            "--run-dir",
            str(c.run),
            "--jsonl",
            str(c.file("q.jsonl", '{"video": "a.mp4", "query": "q", "gt": [[0, Infinity]]}')),
        ],
        "'gt' must be a list of [start, end] (finite",
    ),
    (
        "report_max_images_negative",
        report.main,
        lambda c: ["--run-dir", str(c.run), "--max-images", "-1"],
        "argument --max-images: must be >= 0, got -1",
    ),
    (
        "mr_eval_clip_length_nan",
        mr_eval.main,
        lambda c: [
            "--submission_path",
            str(c.run / "preds_test.jsonl"),
            "--gt_path",
            str(c.data / "test.jsonl"),
            "--clip_length",
            "nan",
        ],
        "argument --clip_length: not a finite number: 'nan'",
    ),
    (
        "synthetic_fps_nan",
        synthetic.main,
        lambda c: ["--out", str(c.tmp / "syn"), "--fps", "nan"],
        "argument --fps: not a finite number",
    ),
    (
        "convert_val_fraction_inf",
        convert.main,
        lambda c: ["--input", str(c.data / "test.jsonl"), "--out", str(c.tmp / "o.jsonl"), "--val-fraction", "inf"],
        "not a finite number",
    ),
    (
        "train_option_without_value",
        train_cli.main,
        lambda c: ["--cfg-path"],
        "argument --cfg-path: expected one argument",
    ),
    (
        "predict_misspelt_option",
        predict.main,
        lambda c: ["--run-dir", str(c.run), "--vidoe", "a.mp4"],
        "unrecognized arguments: --vidoe",
    ),
]
# Optional packages a config names are checked when it loads, with the install command.
for _module, _option in (
    ("decord", "datasets.synthetic_av.video_backend=decord"),
    ("wandb", "run.hooks=[metrics_jsonl,wandb]"),
    ("tensorboard", "run.hooks=[tensorboard]"),
    ("deepspeed", "run.strategy=deepspeed"),
):
    if _missing(_module):
        CASES.append(
            (f"train_needs_{_module}", train_cli.main, lambda c, o=_option: c.train(o), f"pip install -e .[{_module}]")
        )


@pytest.mark.parametrize("name, main, argv, message", CASES, ids=[c[0] for c in CASES])
def test_a_value_that_cannot_work_is_one_line_when_the_config_loads(ctx, capsys, name, main, argv, message):
    code = main(argv(ctx))
    assert_one_error_line(code, capsys.readouterr().err, message)


def test_a_nan_loss_stops_the_run_with_one_line_naming_the_step_and_the_queries(tmp_path, capsys):
    cfg, task, model, datasets = toy_experiment(tmp_path / "run", nan_at_qid=["t5"])
    code = cli_errors(lambda: RunnerBase(cfg, task, model, datasets).train())()
    err = capsys.readouterr().err
    assert_one_error_line(code, err, "non-finite loss (nan) at step")
    assert "on the queries: " in err and "qid t5" in err and "run.nonfinite_loss: skip" in err


def test_the_python_api_checks_the_same_numbers():
    from lavis.common.errors import InputError
    from lavis.inference.predictor import PredictConfig

    for bad in ({"span": float("nan")}, {"overlap": float("inf")}, {"nms_iou": 0.0}, {"batch_size": 0}):
        with pytest.raises(InputError, match=f"{next(iter(bad))} must be"):
            PredictConfig(**bad)


def test_a_global_batch_the_processes_cannot_share_is_one_line_before_the_model_is_built(ctx, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")  # what torchrun --nproc_per_node=3 sets
    code = train_cli.main(ctx.train("run.global_batch_size=4", "run.batch_size_train=2"))
    assert_one_error_line(
        code, capsys.readouterr().err, "run.global_batch_size=4 cannot be shared exactly by 3 processes"
    )
    assert not (ctx.tmp / "new").exists()  # refused before anything was written
