"""`python -m lavis.predict` and `lavis.load_model` with a tiny model trained for two steps: the
JSON per query, the timeline PNG, long videos, videos without audio, bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from av_media import make_video
from matplotlib.image import imread

from lavis import load_model
from lavis.datasets.schema import load_annotations
from lavis.datasets.video_io import VideoDecodeError
from lavis.inference.long_video import chunk_spans
from lavis.predict import main

TOP_KEYS = {"video", "query", "duration", "windows", "invalid", "audio", "span", "chunks", "model", "timing"}
TIMING_KEYS = {"total_s", "decode_s", "towers_s", "llm_s", "index", "saved_s", "index_s", "queries"}


def check_result(result: dict, query: str) -> None:
    assert set(result) >= TOP_KEYS and result["query"] == query
    assert "text" not in result  # the model's text is per chunk, on the chunk's clock
    assert isinstance(result["invalid"], bool) and isinstance(result["audio"], bool)
    assert set(result["timing"]) == TIMING_KEYS and result["timing"]["index"] in ("computed", "memory", "disk")
    assert set(result["model"]) == {"run", "checkpoint", "arch", "model_type", "step"}
    assert result["model"]["arch"] == "blip2_mr" and result["model"]["run"] == "run"
    scores = [w[2] for w in result["windows"]]
    assert scores == sorted(scores, reverse=True)  # best first
    for start, end, score in result["windows"]:
        assert 0 <= start < end <= result["duration"] + 1e-6 and 0 <= score <= 1 + 1e-6
    for chunk in result["chunks"]:
        assert {"start", "end", "text", "invalid", "windows"} == set(chunk) and isinstance(chunk["text"], str)
        assert chunk["end"] <= result["duration"] + 1e-6


def check_png(path: Path) -> None:
    image = imread(path)  # [H, W, 4] floats
    assert image.shape[:2] == (500, 1200)
    rgb = image[..., :3].reshape(-1, 3)
    assert rgb.std() > 0.05 and len(np.unique((rgb * 255).astype(np.uint8), axis=0)) > 50  # not blank


@pytest.fixture(scope="module")
def video_and_queries(tiny_run):
    records = load_annotations(tiny_run.data / "test.jsonl")
    video = tiny_run.data / "videos" / records[0].video_file
    return video, [r.query for r in records if r.vid == records[0].vid], records[0].duration


@pytest.fixture(scope="module")
def cli_out(tiny_run, video_and_queries, tmp_path_factory):
    video, queries, _ = video_and_queries
    out = tmp_path_factory.mktemp("predict")
    argv = ["--run-dir", str(tiny_run.run_dir), "--video", str(video), "--out", str(out)]
    assert main(argv + [arg for q in queries for arg in ("--query", q)]) == 0
    return out


def test_cli_writes_a_json_and_a_timeline_per_query(tiny_run, video_and_queries, cli_out):
    video, queries, duration = video_and_queries
    train = load_annotations(tiny_run.data / "train.jsonl")
    lines = [json.loads(line) for line in (cli_out / "predictions.jsonl").read_text().splitlines()]
    assert [r["query"] for r in lines] == queries
    for k, query in enumerate(queries):
        result = json.loads((cli_out / f"{video.stem}_q{k}.json").read_text())
        check_result(result, query)
        assert result == lines[k]
        assert result["duration"] == pytest.approx(duration, abs=0.05) and result["audio"] is True
        assert result["span"] == max(r.duration for r in train)  # the run's longest training video
        assert len(result["chunks"]) == 1 and result["chunks"][0]["start"] == 0.0
        assert result["timing"]["index"] == "computed" and result["timing"]["queries"] == len(queries)
        assert result["timeline"] == str(cli_out / f"{video.stem}_q{k}.png")
        check_png(Path(result["timeline"]))


def test_the_python_api_returns_what_the_cli_writes(tiny_run, video_and_queries, cli_out):
    video, queries, _ = video_and_queries
    model = load_model(tiny_run.run_dir, device="cpu")
    [result] = model.predict(video, queries[0])
    written = json.loads((cli_out / f"{video.stem}_q0.json").read_text())
    written.pop("timeline")
    assert result.pop("timing")["index"] == "computed" and written.pop("timing")["index"] == "computed"
    assert result == written
    with pytest.raises(ValueError, match="query 2 of 2 is empty"):
        model.predict(video, [queries[0], "  "])
    with pytest.raises(VideoDecodeError, match="file not found"):
        model.predict(video.with_name("nope.mp4"), queries[0])
    step = tiny_run.run_dir / "checkpoint_step2.pt"
    explicit = load_model(cfg_path=tiny_run.run_dir / "config.yaml", checkpoint=step, device="cpu")
    assert explicit.info["checkpoint"] == str(step) and explicit.span == model.span


def test_batch_mode_long_video_no_audio_and_a_missing_video(tiny_run, tmp_path, capsys, caplog):
    span = max(r.duration for r in load_annotations(tiny_run.data / "train.jsonl"))
    # ~3.5 spans long at 8 fps; a square and a tone from 4 s to 2 s before the end.
    seconds = int(np.ceil(3.5 * span))
    event = (seconds - 4.0, seconds - 2.0)
    long_video = make_video(
        tmp_path / "long.mp4",
        num_frames=8 * seconds,
        fps=8,
        gop=16,
        tone=event,
        square_frames=range(8 * (seconds - 4), 8 * (seconds - 2)),
    )
    silent = make_video(tmp_path / "silent.mp4", num_frames=64, fps=8, with_audio=False)
    jobs = tmp_path / "queries.jsonl"
    jobs.write_text(
        json.dumps({"video": long_video.name, "query": "when is the square shown?", "gt": [event]})
        + "\n"
        + json.dumps({"video": str(silent), "query": "when is the square shown?"})
        + "\n"
        + json.dumps({"video": "missing.mp4", "query": "anything"})
        + "\n"
    )
    out = tmp_path / "out"
    assert main(["--run-dir", str(tiny_run.run_dir), "--jsonl", str(jobs), "--out", str(out)]) == 1  # one failed
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "1 of 3 videos failed (missing.mp4: file not found)" in errors[0]
    assert "predict: 100%" in err  # the progress bar

    long_result = json.loads((out / "long_l1.json").read_text())
    check_result(long_result, "when is the square shown?")
    assert long_result["duration"] == pytest.approx(seconds, abs=0.2) and long_result["span"] == span
    starts = [c["start"] for c in long_result["chunks"]]
    assert starts[0] == 0 and long_result["chunks"][-1]["end"] == pytest.approx(long_result["duration"])
    grid = chunk_spans(long_result["duration"], span, 0.5)  # 50 % overlap, the last chunk ending the grid
    assert [(c["start"], c["end"]) for c in long_result["chunks"]] == [(c.start, c.end) for c in grid]
    assert long_result["gt"] == [list(event)] and 0 <= long_result["iou"] <= 1
    check_png(out / "long_l1.png")

    silent_result = json.loads((out / "silent_l2.json").read_text())
    check_result(silent_result, "when is the square shown?")
    assert silent_result["audio"] is False and "silent.mp4 has no audio stream" in caplog.text
    assert not (out / "missing_l3.json").exists()
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--video", "{video}", "--query", ""], "query 1 of 1 is empty"),
        (["--video", "{video}"], "--video needs at least one --query"),
        (["--video", "{dir}/nope.mp4", "--query", "x"], "video file not found: "),
        (["--video", "{video}", "--jsonl", "{dir}/q.jsonl"], "either --video"),
        (["--jsonl", "{dir}/bad.jsonl"], "bad.jsonl: line 2: 'query' must be a non-empty string"),
        (["--video", "{dir}/garbage.mp4", "--query", "x"], "garbage.mp4: cannot open"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(tiny_run, video_and_queries, tmp_path, capsys, args, message):
    (tmp_path / "bad.jsonl").write_text('{"video": "a.mp4", "query": "ok"}\n{"video": "a.mp4", "query": ""}\n')
    (tmp_path / "garbage.mp4").write_bytes(b"not a video at all" * 100)
    argv = [a.format(video=video_and_queries[0], dir=tmp_path) for a in args]
    assert main(["--run-dir", str(tiny_run.run_dir), "--out", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_module_entry_point_exits_with_the_status(tiny_run, tmp_path):
    video = tmp_path / "no.mp4"
    cmd = [
        sys.executable,
        "-m",
        "lavis.predict",
        "--run-dir",
        str(tiny_run.run_dir),
        "--video",
        str(video),
        "--query",
        "x",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.strip() == f"error: video file not found: {video}"


def test_a_missing_run_or_checkpoint_is_refused(tmp_path, capsys, video_and_queries):
    assert main(["--run-dir", str(tmp_path / "norun"), "--video", str(video_and_queries[0]), "--query", "x"]) == 2
    assert "run directory not found" in capsys.readouterr().err
    (tmp_path / "config.yaml").write_text("model: {arch: blip2_mr, model_type: tiny}\n")
    assert main(["--run-dir", str(tmp_path), "--video", str(video_and_queries[0]), "--query", "x"]) == 2
    assert "no checkpoint_best.pt or checkpoint_step*.pt" in capsys.readouterr().err
