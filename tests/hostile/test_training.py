"""Hostile inputs to training (issue 13's list, rebuilt without root-only or machine-level faults): the config, the data, the run directory, resuming. Each must end with exit status 2 and one line ``error: ...`` naming what is wrong, never a traceback."""

import json
import shutil

import pytest

from hostile.context import NOT_UTF8, Case, assert_one_error_line, data_with, flipped, locked
from lavis import train as train_cli

CASES: list[Case] = [
    # Training: the config.
    (
        "train_missing_config",
        train_cli.main,
        lambda c: ["--cfg-path", str(c.tmp / "nope.yaml")],
        "config file not found",
    ),
    (
        "train_unknown_key",
        train_cli.main,
        lambda c: c.train("model.fusion.nmae=gca"),
        "unknown key 'model.fusion.nmae'",
    ),
    ("train_wrong_type", train_cli.main, lambda c: c.train("run.max_epoch=many"), "max_epoch"),
    ("train_negative_lr", train_cli.main, lambda c: c.train("run.init_lr=-1"), "'run.init_lr' must be >= 0, got -1.0"),
    (
        "train_batch_size_zero",
        train_cli.main,
        lambda c: c.train("run.batch_size_train=0"),
        "'run.batch_size_train' must be >= 1, got 0",
    ),
    (
        "train_batch_too_large",
        train_cli.main,
        lambda c: c.train("run.batch_size_train=1000"),
        "too few for run.batch_size_train=1000",
    ),
    ("train_bad_option_syntax", train_cli.main, lambda c: c.train("run.max_epoch"), "not of the form key.path=value"),
    ("train_unknown_arch", train_cli.main, lambda c: c.train("model.arch=nope"), "nope"),
    ("train_unknown_fusion", train_cli.main, lambda c: c.train("model.fusion.name=nope"), "nope"),
    (
        "train_key_of_another_fusion",
        train_cli.main,
        lambda c: c.train("model.fusion.name=concat", "model.fusion.num_heads=4"),
        "valid keys under 'model.fusion' for name 'concat'",
    ),
    (
        "train_lr_scale_names_nothing",
        train_cli.main,
        lambda c: c.train("run.lr_scale={nothing: 2.0}"),
        "run.lr_scale names no parameter",
    ),
    ("train_cuda_without_gpu", train_cli.main, lambda c: c.train("run.device=cuda"), "no CUDA device"),
    ("train_ddp_without_torchrun", train_cli.main, lambda c: c.train("run.strategy=ddp"), "needs torchrun"),
    ("train_no_train_split", train_cli.main, lambda c: c.train("run.train_splits=[nope]"), "run.train_splits"),
    # Training: the data.
    (
        "train_missing_video_folder",
        train_cli.main,
        lambda c: c.train(f"datasets.synthetic_av.root={c.tmp / 'nowhere'}"),
        "video folder not found",
    ),
    (
        "train_annotation_not_utf8",
        train_cli.main,
        lambda c: c.train(f"datasets.synthetic_av.root={data_with(c, 'train.jsonl', NOT_UTF8)}"),
        "train.jsonl: not UTF-8 text",
    ),
    (
        "train_annotation_not_json",
        train_cli.main,
        lambda c: c.train(f"datasets.synthetic_av.root={data_with(c, 'train.jsonl', b'{nope')}"),
        "train.jsonl: line 1: not valid JSON",
    ),
    (
        "train_annotation_start_after_end",
        train_cli.main,
        lambda c: c.train(
            f"datasets.synthetic_av.root={data_with(c, 'train.jsonl', json.dumps({'qid': 1, 'vid': 'v', 'query': 'q', 'duration': 9.0, 'relevant_windows': [[5, 2]]}).encode())}"
        ),
        "window 0 has start 5.0 > end 2.0",
    ),
    (
        "train_annotation_window_outside_strict",
        train_cli.main,
        lambda c: c.train(
            "datasets.synthetic_av.strict=true",
            f"datasets.synthetic_av.root={data_with(c, 'train.jsonl', json.dumps({'qid': 1, 'vid': 'video_0000', 'query': 'q', 'duration': 9.0, 'relevant_windows': [[30, 40]]}).encode())}",
        ),
        "outside their video",
    ),
    # Training: the run directory.
    ("train_output_dir_is_a_file", train_cli.main, lambda c: c.train(out=c.file("taken", "x")), "taken"),
    (
        "train_output_dir_under_a_file",
        train_cli.main,
        lambda c: c.train(out=c.file("taken", "x") / "run"),
        "Not a directory",
    ),
    ("train_used_output_dir", train_cli.main, lambda c: c.train(out=c.run), "already holds a run"),
    ("train_locked_output_dir", train_cli.main, locked, "in use by another run"),
    # Training: resuming.
    (
        "resume_missing_checkpoint",
        train_cli.main,
        lambda c: c.resume(f"run.resume_ckpt_path={c.run / 'checkpoint_step99.pt'}"),
        "checkpoint not found",
    ),
    (
        "resume_not_a_checkpoint",
        train_cli.main,
        lambda c: c.resume(f"run.resume_ckpt_path={c.file('x.pt', 'garbage', c.run)}"),
        "corrupt checkpoint",
    ),
    (
        "resume_corrupt_checkpoint",
        train_cli.main,
        lambda c: c.resume(f"run.resume_ckpt_path={flipped(c)}"),
        "corrupt checkpoint",
    ),
    (
        "resume_from_best",
        train_cli.main,
        lambda c: c.resume(f"run.resume_ckpt_path={c.run / 'checkpoint_best.pt'}"),
        "holds weights only",
    ),
    (
        "resume_changed_model",
        train_cli.main,
        lambda c: c.resume(f"run.resume_ckpt_path={c.run}", "model.fusion.position=late"),
        "model.fusion.position: 'early' -> 'late'",
    ),
    (
        "resume_changed_prompt",
        train_cli.main,
        lambda c: c.resume(f"run.resume_ckpt_path={c.run}", "model.prompt.time_format=relative_integers"),
        "model.prompt.time_format",
    ),
    (
        "resume_other_folder_into_used",
        train_cli.main,
        lambda c: c.resume(f"run.resume_ckpt_path={shutil.copytree(c.run, c.tmp / 'copy')}"),
        "already holds a run",
    ),
]


@pytest.mark.parametrize("name, main, argv, message", CASES, ids=[c[0] for c in CASES])
def test_a_hostile_input_is_one_line_and_exit_2(ctx, capsys, name, main, argv, message):
    code = main(argv(ctx))
    assert_one_error_line(code, capsys.readouterr().err, message)
