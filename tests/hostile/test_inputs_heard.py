"""Inputs a user must hear about (issue 20, class 4): training windows of zero length or none, a
query id in both training and validation, an audio model's video without audio, a rotated
video, a query the prompt cuts or cannot read, a container that says it lasts far longer than
its streams. Each gets a warning with counts (and is counted in the run's records) or, with the
dataset's ``strict: true`` or where nothing sensible can be done, one clear ``error:`` line."""

import json
import logging
import struct
from pathlib import Path

import av
import numpy as np
import pytest
from av_media import make_video
from helpers.tiny_run import EXPERIMENT

from hostile.context import Case, assert_one_error_line, data_with, data_with_video, jsonl, train_records
from lavis import predict
from lavis import train as train_cli
from lavis.common.config import load_experiment
from lavis.datasets.video_io import read_frames
from lavis.experiment import build_experiment
from mr_data.media import write_av_file


def _records_with(c, change) -> Path:
    records = train_records(c)
    change(records)
    return data_with(c, "train.jsonl", jsonl(records))


def _zero_length(records):
    records[0]["relevant_windows"] = [[4.0, 4.0]]


def _no_window(records):
    records[1]["relevant_windows"] = []


def _val_qid_in_train(c) -> Path:
    val = [json.loads(line) for line in (c.data / "val.jsonl").read_text().splitlines()]
    return _records_with(c, lambda records: records.append(val[0]))


def _silent(path: Path) -> Path:
    return make_video(path, num_frames=90, fps=10, with_audio=False)


def _claims_ten_minutes(path: Path) -> Path:
    """A 4 s Matroska file whose Segment Info says it lasts 150 times longer."""
    mkv = write_av_file(
        path.with_suffix(".mkv"), np.zeros((40, 64, 64, 3), np.uint8), 10, np.zeros(64000, np.float32), 16000
    )
    data = bytearray(mkv.read_bytes())
    at = data.find(b"\x44\x89")  # the Duration element: ID, a size byte, a big-endian float
    size = data[at + 2] & 0x7F
    fmt = ">d" if size == 8 else ">f"
    (value,) = struct.unpack(fmt, data[at + 3 : at + 3 + size])
    data[at + 3 : at + 3 + size] = struct.pack(fmt, value * 150)
    mkv.write_bytes(bytes(data))
    return mkv


def _rotated(path: Path, degrees: int) -> Path:
    """A 32x64 (H x W) video with a bright block in its top-left corner, shown rotated."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(degrees)
        for _ in range(10):
            frame = np.zeros((32, 64, 3), np.uint8)
            frame[:8, :8] = 255
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def _build(ctx, root: Path, *options: str):
    cfg = load_experiment(
        EXPERIMENT, [f"datasets.synthetic_av.root={root}", "datasets.synthetic_av.num_frames=6", *options]
    )
    return build_experiment(cfg)


def _epochs(out: Path) -> list[dict]:
    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["type"] == "epoch"]


CASES: list[Case] = [
    (
        "train_zero_length_window_strict",
        train_cli.main,
        lambda c: c.train(
            "datasets.synthetic_av.strict=true", f"datasets.synthetic_av.root={_records_with(c, _zero_length)}"
        ),
        "1 zero-length window(s) or record(s) without a window, e.g. qid",
    ),
    (
        "train_no_window_strict",
        train_cli.main,
        lambda c: c.train(
            "datasets.synthetic_av.strict=true", f"datasets.synthetic_av.root={_records_with(c, _no_window)}"
        ),
        ": no window (strict: true)",
    ),
    (
        "train_val_query_in_train_strict",
        train_cli.main,
        lambda c: c.train("datasets.synthetic_av.strict=true", f"datasets.synthetic_av.root={_val_qid_in_train(c)}"),
        "val.jsonl: 1 of 4 queries have the qid of a query of",
    ),
    (
        "train_video_without_audio_strict",
        train_cli.main,
        lambda c: c.train(
            "datasets.synthetic_av.strict=true",
            "run.num_workers=0",
            f"datasets.synthetic_av.root={data_with_video(c, 'syn00002', _silent)}",
        ),
        "no audio stream (none under its frames), and the model reads audio (strict: true)",
    ),
    (
        "predict_container_longer_than_streams",
        predict.main,
        lambda c: ["--run-dir", str(c.run), "--video", str(_claims_ten_minutes(c.tmp / "long.mp4")), "--query", "q"],
        "its container says it lasts 609.6 s, but its streams end at 4.0 s",
    ),
]


@pytest.mark.parametrize("name, main, argv, message", CASES, ids=[c[0] for c in CASES])
def test_a_refused_input_is_one_line_and_exit_2(ctx, capsys, name, main, argv, message):
    code = main(argv(ctx))
    assert_one_error_line(code, capsys.readouterr().err, message)


def test_training_windows_of_zero_length_or_none_are_dropped_with_counts(ctx, caplog):
    root = _records_with(ctx, lambda records: (_zero_length(records), _no_window(records)))
    experiment = _build(ctx, root)
    train = experiment.datasets["synthetic_av"]["train"]
    repairs = train.window_repairs
    assert (repairs.zero_length, repairs.empty_records) == (1, 2)  # the zero-length one's record is left empty
    assert len(train.records) == len(train_records(ctx)) - 2
    assert "1 zero-length window(s) dropped; 2 record(s) without a window dropped" in caplog.text
    assert repairs.summary()["records_without_window"] == 2  # in every epoch summary


def test_a_query_id_in_training_and_validation_is_warned_about(ctx, caplog):
    _build(ctx, _val_qid_in_train(ctx))
    assert "val.jsonl: 1 of 4 queries have the qid of a query of" in caplog.text
    assert "1 of them are the same query on the same video" in caplog.text


def test_a_video_without_audio_in_an_audio_models_training_is_counted(ctx, caplog, capsys):
    caplog.set_level(logging.WARNING)
    root = data_with_video(ctx, "syn00002", _silent)
    out = ctx.tmp / "new"
    assert train_cli.main(ctx.train(f"datasets.synthetic_av.root={root}", "run.max_iters=4", out=out)) == 0
    [epoch] = _epochs(out)
    assert epoch["videos_without_audio"] >= 1 and epoch["skipped_videos"] == 0
    assert "syn00002.mp4 has no audio stream" in caplog.text


def test_queries_the_prompt_cuts_or_cannot_read_are_counted_when_training(ctx, caplog):
    def change(records):
        records[0]["query"] = "red square " * 150
        records[1]["query"] = "日本語の質問"

    _build(ctx, _records_with(ctx, change))
    assert "train: 1 of 8 queries are longer than model.prompt.max_text_tokens=200 allows" in caplog.text
    assert "train: 1 of 8 queries have no character the tokenizer knows" in caplog.text


def test_predict_warns_about_a_query_the_prompt_cuts(ctx, caplog):
    video = str(sorted((ctx.data / "videos").iterdir())[0])
    argv = ["--run-dir", str(ctx.run), "--video", video, "--query", "red square " * 150, "--out", str(ctx.tmp / "o")]
    assert predict.main(argv) == 0
    assert "query 1 of 1 is" in caplog.text and "longer than model.prompt.max_text_tokens=200 allows" in caplog.text


@pytest.mark.parametrize("degrees, corner", [(90, "bottom-left"), (-90, "top-right"), (180, "bottom-right")])
def test_a_rotated_video_is_read_upright(tmp_path, degrees, corner):
    frames = read_frames(_rotated(tmp_path / "r.mp4", degrees), 2).frames
    assert frames.shape[1:3] == ((32, 64) if degrees == 180 else (64, 32))
    height, width = frames.shape[1:3]
    rows, cols = np.nonzero(frames[0, :, :, 0] > 128)
    found = ("top" if rows.mean() < height / 2 else "bottom") + "-" + ("left" if cols.mean() < width / 2 else "right")
    assert found == corner


def test_a_container_longer_than_its_streams_is_skipped_and_counted_in_training(ctx, caplog):
    root = data_with_video(ctx, "syn00002", lambda p: _claims_ten_minutes(p).rename(p))
    train = _build(ctx, root).datasets["synthetic_av"]["train"]
    index = next(i for i, r in enumerate(train.records) if r.vid == "syn00002")
    assert train[index] is None and "its container says it lasts" in caplog.text
