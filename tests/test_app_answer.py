"""The function behind the app's page, without Gradio (``lavis.app.answer``, ``present``,
``examples``): a video and the typed queries -> table rows, timelines and the JSON that
``lavis.predict`` writes; every bad request -> one readable line, and the next request answered."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from av_media import make_video
from matplotlib.image import imread

from lavis.app.answer import MAX_QUERIES, Answerer, AppError, parse_queries, public_result, scrub_paths, table_rows
from lavis.app.examples import run_examples
from lavis.app.present import answer_markdown, model_facts, model_markdown, query_line, sound_line, timing_line
from lavis.datasets.schema import load_annotations
from lavis.inference.predictor import load_model
from lavis.predict import main as predict_main

QUERIES = ["when is the bright square on screen?", "when is the beep heard?"]


@pytest.fixture(scope="module")
def predictor(answering_run):
    return load_model(answering_run.run_dir, device="cpu")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """8 s: a bright square from 2 s to 4.5 s, a beep from 5 s to 7 s."""
    folder = tmp_path_factory.mktemp("clip")
    return make_video(folder / "clip.mp4", num_frames=80, fps=10.0, square_frames=range(20, 45), tone=(5.0, 7.0))


def _untimed(result: dict) -> dict:
    """A result without the times its own call measured (a video index's ``timing``)."""
    return {key: value for key, value in result.items() if key != "timing"}


def _no_server_paths(text: str, *folders: Path) -> None:
    for folder in folders:
        assert str(folder) not in text
    assert "Traceback" not in text


def test_the_answer_is_what_lavis_predict_writes(predictor, clip, answering_run, tmp_path, one_thread):
    answerer = Answerer(predictor, tmp_path / "answers", max_seconds=60)
    answer = answerer.answer(clip, f"  {QUERIES[0]}\n\n{QUERIES[1]}  \n")
    assert [r["query"] for r in answer.results] == QUERIES
    assert all(r["windows"] for r in answer.results), "the answering run should write windows"

    out = tmp_path / "predict"
    args = ["--run-dir", str(answering_run.run_dir), "--video", str(clip), "--out", str(out), "--device", "cpu"]
    assert predict_main([*args, "--query", QUERIES[0], "--query", QUERIES[1]]) == 0
    for k, path in enumerate(answer.files[:2]):
        assert path.name == f"clip_q{k}.json"
        written = json.loads((out / path.name).read_text())
        # The server's paths (the upload, the timeline, the checkpoint) by name; the rest the same.
        model = {key: Path(v).name if str(v).startswith("/") else v for key, v in written["model"].items()}
        same = {**written, "video": "clip.mp4", "timeline": f"clip_q{k}.png", "model": model}
        mine = json.loads(path.read_text())
        assert mine == answer.results[k]
        assert _untimed(mine) == _untimed(same)
    assert answer.files[2].name == "predictions.jsonl"
    assert [json.loads(line) for line in answer.files[2].read_text().splitlines()] == answer.results
    for path in answer.files:
        _no_server_paths(path.read_text(), tmp_path, answering_run.run_dir, clip.parent)

    rows = answer.rows
    assert rows == table_rows(answer.results) and len(rows) == sum(len(r["windows"]) for r in answer.results)
    for number, query, rank, start, end, score in rows:
        window = answer.results[number - 1]["windows"][rank - 1]
        assert query == QUERIES[number - 1] and [start, end, score] == pytest.approx(window, abs=0.01)
    assert [caption for _, caption in answer.timelines] == [f"1. {QUERIES[0]}", f"2. {QUERIES[1]}"]
    for png, _ in answer.timelines:
        assert imread(png).shape[:2] == (500, 1200)
    assert answer.elapsed_s > 0


def test_each_bad_request_is_one_line_and_the_next_is_answered(predictor, clip, tmp_path, one_thread):
    answerer = Answerer(predictor, tmp_path / "answers", max_seconds=6)
    fake = tmp_path / "upload" / "notes.mp4"
    fake.parent.mkdir()
    fake.write_text("this is a text file, not a video\n")
    empty = tmp_path / "upload" / "empty.mp4"
    empty.write_bytes(b"")
    cases = [
        (None, "q", "Upload a video or pick an example first."),
        (clip, " \n\n ", "Type a query first"),
        (clip, "\n".join(["q"] * (MAX_QUERIES + 1)), f"at most {MAX_QUERIES} per request"),
        (clip, "x" * 400, "at most 300"),
        (clip, "q", "clip.mp4 lasts 8 s; this app answers videos up to 6 s"),
        (fake, "q", "Could not read notes.mp4 as a video: cannot open (Invalid data found"),
        (empty, "q", "Could not read empty.mp4 as a video: empty file (0 bytes)."),
        (tmp_path / "gone.mp4", "q", "Could not read gone.mp4 as a video: file not found."),
    ]
    for video, queries, expected in cases:
        with pytest.raises(AppError) as caught:
            answerer.answer(video, queries)
        message = str(caught.value)
        assert expected in message and "\n" not in message
        _no_server_paths(message, tmp_path, clip.parent)
    short = make_video(tmp_path / "short.mp4", num_frames=50, fps=10.0, tone=(1.0, 2.0))
    assert answerer.answer(short, "when is the beep heard?").results[0]["query"] == "when is the beep heard?"


def test_a_model_failure_is_a_message_logged_on_the_server(predictor, clip, tmp_path, monkeypatch, caplog, one_thread):
    answerer = Answerer(predictor, tmp_path / "answers", max_seconds=60)

    def fail(batch):
        raise RuntimeError(f"out of memory in {tmp_path}/secret/model.py")

    with monkeypatch.context() as patch:
        patch.setattr(predictor.model, "predict", fail)
        with pytest.raises(AppError) as caught:
            answerer.answer(clip, QUERIES[0])
    message = str(caught.value)
    assert message.startswith("The model failed on this request (RuntimeError: out of memory in model.py)")
    assert "The app keeps answering" in message
    _no_server_paths(message, tmp_path)
    assert "Traceback" in caplog.text and "secret/model.py" in caplog.text  # the server keeps the details
    assert answerer.answer(clip, QUERIES[0]).results[0]["windows"]


def test_what_the_page_says_about_the_model_the_sound_and_the_time(predictor, clip, tmp_path, one_thread):
    facts = model_facts(predictor)
    text = model_markdown(facts)
    assert f"run `{predictor.info['run']}`" in text and "`checkpoint_best.pt`, step 12" in text
    assert "reads frames and sound" in text and "**Runs on** cpu, 1 thread." in text
    assert str(Path(predictor.info["checkpoint"]).parent) not in text

    silent = make_video(tmp_path / "silent.mp4", num_frames=60, fps=10.0, with_audio=False)
    answerer = Answerer(predictor, tmp_path / "answers", max_seconds=60)
    [mute] = answerer.answer(silent, QUERIES[1]).results
    assert mute["audio"] is False
    assert "no audio stream" in sound_line([mute], hears=True) and "frames alone" in sound_line([mute], hears=True)
    assert "video-only" in sound_line([mute], hears=False)
    answer = answerer.answer(clip, QUERIES[1])
    page = answer_markdown(answer.video_name, answer.results, answer.elapsed_s, hears=True)
    assert "**Video**: clip\\.mp4, 8.0 s." in page and "**Sound**: yes" in page
    assert f"the model wrote `{answer.results[0]['chunks'][0]['text']}`" in page


def test_the_time_line_shows_the_index_when_the_predictor_reports_it():
    result = {"query": "q", "windows": [], "audio": True}
    assert timing_line([], 1.234) == "**Time**: 1.23 s."
    timing = {"total_s": 1.2, "decode_s": 0.1, "towers_s": 0.0, "llm_s": 1.0, "index": "memory", "saved_s": 0.75}
    line = timing_line([{**result, "timing": timing}], 1.234)
    assert line.startswith("**Time**: 1.23 s (decoding 0.10 s, frame and audio towers 0.00 s, language model 1.00 s)")
    assert line.endswith("the video's index was reused from memory, which saved 0.75 s.")


def test_queries_paths_and_the_public_result():
    assert parse_queries("a\n\n  b  \r\nc") == ["a", "b", "c"]
    assert scrub_paths("/tmp/x/clip.mp4: cannot open (in /usr/lib/y.so)") == "clip.mp4: cannot open (in y.so)"
    assert scrub_paths("10 m/s at 1/2 speed, see https://a.b/c") == "10 m/s at 1/2 speed, see https://a.b/c"
    result = {
        "video": "/srv/up/a.mp4",
        "timeline": "/srv/out/a_q0.png",
        "model": {"run": "demo", "checkpoint": "/r/best.pt"},
    }
    assert public_result(result, "a.mp4") == {
        "video": "a.mp4",
        "timeline": "a_q0.png",
        "model": {"run": "demo", "checkpoint": "best.pt"},
    }
    assert result["video"] == "/srv/up/a.mp4"  # the predictor's dict is left as it was


def test_examples_are_the_runs_test_videos_with_their_own_queries(tiny_run, tmp_path):
    examples = run_examples(tiny_run.run_dir, limit=4)
    records = load_annotations(tiny_run.data / "test.jsonl")
    assert 1 <= len(examples) <= 4 and len({e.video for e in examples}) == len(examples)
    for example in examples:
        assert example.video.is_file() and example.video.parent == tiny_run.data / "videos"
        assert example.query in {r.query for r in records if r.vid == example.video.stem}
    assert run_examples(tiny_run.run_dir, limit=1) == examples[:1]
    assert run_examples(tmp_path / "not_a_run") == []


def test_without_a_run_the_commands_say_how_to_make_one(tmp_path, capsys):
    from lavis.app.cli import main

    assert main(["--run-dir", str(tmp_path / "none")]) == 2
    assert (
        capsys.readouterr().err
        == f"error: no run at {tmp_path / 'none'}: train one (bash run_scripts/demo.sh) or pass --run-dir\n"
    )
    script = Path(__file__).resolve().parents[1] / "run_scripts" / "app.sh"
    done = subprocess.run(
        ["bash", str(script)], env={**os.environ, "RUN_DIR": str(tmp_path / "none")}, capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"app.sh: no trained run in {tmp_path / 'none'}; make it with: bash run_scripts/demo.sh\n"


def test_a_long_videos_line_gives_each_chunks_text_on_its_own_clock():
    chunk = {"invalid": False, "windows": []}
    texts = ["[[17, 19]]", "[[2, 4]]", "[]", "[[0, 1]]", "[[5, 9]]", "[[1, 2]]"]
    chunks = [{**chunk, "start": 15.0 * i, "end": 15.0 * i + 30, "text": t} for i, t in enumerate(texts)]
    result = {"query": "a beep", "windows": [[17.0, 19.0, 0.9]], "span": 30.0, "chunks": chunks}
    line = query_line(1, result)
    assert "read in 6 chunks of 30 s" in line and "seconds from each chunk's start" in line
    assert "0-30 s: `[[17, 19]]`; 15-45 s: `[[2, 4]]`; 30-60 s: `[]`; 45-75 s: `[[0, 1]]`, and 2 more" in line
    assert line.endswith("best window 17.0-19.0 s (score 0.90).")
    one = query_line(2, {**result, "chunks": chunks[:1]})
    assert "the model wrote `[[17, 19]]`; best window" in one and "chunks" not in one


def test_the_next_question_on_an_uploaded_video_reuses_its_index(answering_run, clip, tmp_path, one_thread):
    # Each upload reaches the app under a new temporary path: the index finds it by its content.
    predictor = load_model(answering_run.run_dir, device="cpu", index_dir=tmp_path / "index")
    answerer = Answerer(predictor, tmp_path / "answers", max_seconds=60)
    first = answerer.answer(clip, QUERIES[0]).results[0]["timing"]
    again = tmp_path / "upload-2" / "clip.mp4"
    again.parent.mkdir()
    again.write_bytes(clip.read_bytes())
    answer = answerer.answer(again, QUERIES[1])
    second = answer.results[0]["timing"]
    assert first["index"] == "computed" and first["towers_s"] > 0
    assert second["index"] == "memory" and second["decode_s"] == second["towers_s"] == 0.0
    assert "the video's index was reused from memory" in answer_markdown("clip.mp4", answer.results, 1.0, hears=True)
    fresh = Answerer(load_model(answering_run.run_dir, device="cpu", index_dir=tmp_path / "index"), tmp_path / "a2", 60)
    assert fresh.answer(again, QUERIES[0]).results[0]["timing"]["index"] == "disk"
