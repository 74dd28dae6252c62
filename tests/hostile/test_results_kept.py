"""Results are never lost or mixed (issue 20, class 1): a predict output folder only grows, two
runs at once keep both answers, a bad video empties nothing, and a full disk at any write is one
``error:`` line naming the file, after which the same command runs again."""

import json
import multiprocessing
import threading
from pathlib import Path

from hostile.context import assert_one_error_line, disk_full, exported
from lavis import export, predict
from lavis import train as train_cli
from lavis.common.files import write_new_file
from lavis.tasks import mr_eval
from mr_data import cache_features


def _video(ctx) -> str:
    return str(sorted((ctx.data / "videos").iterdir())[0])


def _predict(ctx, *extra: str, out: Path | None = None) -> list[str]:
    return ["--run-dir", str(ctx.run), "--video", _video(ctx), "--query", "when is the red square shown?", *extra] + (
        ["--out", str(out)] if out else []
    )


def _lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]


def test_a_second_predict_run_keeps_the_first_ones_results(ctx, capsys):
    out = ctx.run / "predictions"  # the default folder
    assert predict.main(_predict(ctx)) == 0
    first = (out / f"{Path(_video(ctx)).stem}_q0.json").read_text()
    assert predict.main(_predict(ctx, "--query", "when is the beep heard?")) == 0
    stem = Path(_video(ctx)).stem
    assert (out / f"{stem}_q0.json").read_text() == first  # untouched
    assert {p.name for p in out.glob("*.json")} == {f"{stem}_q0.json", f"{stem}_q0-2.json", f"{stem}_q1.json"}
    assert [r["query"] for r in _lines(out)] == ["when is the red square shown?"] * 2 + ["when is the beep heard?"]
    second = json.loads((out / f"{stem}_q0-2.json").read_text())
    assert second["timeline"] == str(out / f"{stem}_q0-2.png") and Path(second["timeline"]).is_file()
    assert not list(out.glob(".*")), "no temporary file is left"
    assert "error" not in capsys.readouterr().err


def test_a_bad_video_empties_nothing_and_is_one_line(ctx, capsys):
    out = ctx.tmp / "out"
    assert predict.main(_predict(ctx, out=out)) == 0
    before = (out / "predictions.jsonl").read_text()
    bad = ctx.file("broken.mp4", b"\x00\x00\x00\x18ftypmp42 not a video at all")
    code = predict.main(["--run-dir", str(ctx.run), "--video", str(bad), "--query", "q", "--out", str(out)])
    assert_one_error_line(code, capsys.readouterr().err, "broken.mp4")
    assert (out / "predictions.jsonl").read_text() == before


def test_a_batch_whose_videos_all_fail_is_one_line(ctx, capsys):
    jobs = ctx.file("q.jsonl", '{"video": "no1.mp4", "query": "a"}\n{"video": "no2.mp4", "query": "b"}\n')
    code = predict.main(["--run-dir", str(ctx.run), "--jsonl", str(jobs), "--out", str(ctx.tmp / "out")])
    assert_one_error_line(code, capsys.readouterr().err, "2 of 2 videos failed (no1.mp4: file not found)")


def test_two_predict_runs_at_once_on_the_same_video_both_keep_their_answers(ctx):
    out = ctx.tmp / "out"
    codes = []
    runs = [
        threading.Thread(
            target=lambda q=q: codes.append(predict.main(_predict(ctx, out=out)[:-3] + [q, "--out", str(out)]))
        )
        for q in ("first query", "second query")
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert codes == [0, 0]
    answers = {json.loads(p.read_text())["query"] for p in out.glob("*.json")}
    assert answers == {"first query", "second query"}
    assert sorted(r["query"] for r in _lines(out)) == ["first query", "second query"]


def _claim(folder: str, index: int) -> str:
    return write_new_file(
        folder, "same", ".json", lambda stem: f'{{"writer": {index}, "name": "{stem}"}}'.encode()
    ).name


def test_processes_writing_the_same_name_at_once_each_get_their_own_file(tmp_path):
    with multiprocessing.get_context("fork").Pool(4) as pool:
        names = pool.starmap(_claim, [(str(tmp_path), i) for i in range(12)])
    assert len(set(names)) == 12
    assert sorted(json.loads(p.read_text())["writer"] for p in tmp_path.glob("*.json")) == list(range(12))
    assert all(json.loads((tmp_path / n).read_text())["name"] == Path(n).stem for n in names)


def test_a_full_disk_while_writing_predictions_is_one_line_and_keeps_what_was_there(ctx, capsys, monkeypatch):
    out = ctx.tmp / "out"
    assert predict.main(_predict(ctx, out=out)) == 0
    before = (out / "predictions.jsonl").read_text()
    disk_full(monkeypatch, lambda path: str(out) in path)
    code = predict.main(_predict(ctx, "--no-timeline", out=out))
    assert_one_error_line(code, capsys.readouterr().err, "No space left on device (ENOSPC)")
    assert (out / "predictions.jsonl").read_text() == before


def test_a_full_disk_at_the_first_checkpoint_is_one_line_and_the_same_command_runs_again(ctx, capsys, monkeypatch):
    out = ctx.tmp / "new"
    disk_full(monkeypatch, lambda path: path.endswith(".pt") or ".pt.tmp-" in path)
    code = train_cli.main(ctx.train(out=out))
    assert_one_error_line(code, capsys.readouterr().err, "checkpoint_step1.pt: No space left on device (ENOSPC)")
    assert not list(out.glob("*.pt")) and not list(out.glob(".*tmp*"))
    monkeypatch.undo()  # space again
    other = train_cli.main(ctx.train("run.init_lr=0.5", out=out))  # another config: refused, naming it
    assert_one_error_line(other, capsys.readouterr().err, "run.init_lr: 0.001 -> 0.5")
    assert train_cli.main(ctx.train(out=out)) == 0  # the same command
    assert (out / "checkpoint_best.pt").is_file()
    steps = [
        r["step"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["type"] == "train"
    ]
    assert steps == sorted(set(steps)), "each step's record once"


def test_a_full_disk_in_metrics_jsonl_is_one_line(ctx, capsys, monkeypatch):
    disk_full(monkeypatch, lambda path: path.endswith("metrics.jsonl"))
    code = train_cli.main(ctx.train())
    assert_one_error_line(code, capsys.readouterr().err, "metrics.jsonl: No space left on device (ENOSPC)")


def test_a_full_disk_during_export_is_one_line_and_leaves_no_half_file(ctx, capsys, monkeypatch):
    disk_full(monkeypatch, lambda path: "model.safetensors" in path)
    code = export.main(["--run-dir", str(ctx.run), "--out", str(ctx.tmp / "exp")])
    assert_one_error_line(code, capsys.readouterr().err, "model.safetensors: No space left on device (ENOSPC)")
    assert not (ctx.tmp / "exp" / "model.safetensors").exists()
    monkeypatch.undo()
    assert exported(ctx, "exp").is_dir()  # the same command again


def test_a_full_disk_while_caching_features_is_one_line(ctx, capsys, monkeypatch):
    disk_full(monkeypatch, lambda path: ".safetensors" in path)
    code = cache_features.main(
        [
            "--cfg-path",
            str(ctx.run / "config.yaml"),
            "--split",
            "test",
            "--options",
            f"datasets.synthetic_av.root={ctx.data}",
            f"datasets.synthetic_av.cached_features_dir={ctx.tmp / 'features'}",
            "model.freeze_vit=true",
            "model.freeze_vit_ln=true",
            "model.freeze_qformer=true",
            "model.freeze_audio=true",
            "datasets.synthetic_av.num_frames=6",
        ]
    )
    assert_one_error_line(code, capsys.readouterr().err, ".safetensors: No space left on device (ENOSPC)")


def test_a_full_disk_when_the_evaluator_saves_is_one_line(ctx, capsys, monkeypatch):
    disk_full(monkeypatch, lambda path: "m.json" in path)
    argv = ["--submission_path", str(ctx.run / "preds_test.jsonl"), "--gt_path", str(ctx.data / "test.jsonl")]
    code = mr_eval.main([*argv, "--save_path", str(ctx.tmp / "m.json")])
    assert_one_error_line(code, capsys.readouterr().err, "m.json: No space left on device (ENOSPC)")
