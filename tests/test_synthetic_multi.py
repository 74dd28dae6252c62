"""The synthetic benchmark's new options: UnAV-100-style classes that recur and overlap, long
videos, presets; and the demo's data unchanged under the default options."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest
from av_media import decode_av
from helpers.tiny_run import SPEC as TINY_SPEC
from helpers.tiny_run import train_tiny_run

from lavis.datasets.schema import load_annotations
from lavis.tasks.metrics import evaluate_predictions
from lavis.tasks.mr_eval import main as mr_eval
from mr_data.synthetic import SPLITS, _meta, main, records_of, split_records
from mr_data.synthetic_cli import PRESETS, parse_arguments
from mr_data.synthetic_plan import SyntheticSpec, plan_video
from mr_data.synthetic_render import render_audio, render_frames

# sha256 of what the demo's command (300 videos, seed 0, default options) writes, computed with
# the code of main at 5fd9fbd, before these options existed. The MP4 bytes themselves are not
# reproducible run to run (x264 on this machine), so the rendered pixels and samples are hashed.
DEMO_FILES = {
    "train": "d75196c20d10bf57a790be5a39cd7a86310bdb21ced6f05ed0ad4aca755eefd0",
    "val": "3aa4d144e55c2556d574179fc68f6439c9bf70e735048140ba9ac4ddfbb4e891",
    "test": "9907558cd9e13b205cb4ccc209d8523321824028191fa8e1e7d3b4c1170365d2",
    "meta": "ec1c1149c0679258ad5a2259bc932121c2ef7d9880d00d8ff19997e697f85106",
}
DEMO_RENDER_3_VIDEOS = "6d86246e5eba0d550fb94b709fc0b51b5c0b3c58dd90657330e5f3ea6b6b340c"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_default_options_keep_the_demo_data_byte_for_byte():
    spec = SyntheticSpec()
    plans = [plan_video(i, 0, spec) for i in range(300)]
    by_split = split_records(plans, 0, spec)
    for split in SPLITS:
        assert sha("".join(json.dumps(r.to_json()) + "\n" for r in by_split[split])) == DEMO_FILES[split]
    meta = _meta(300, 0, spec, {s: len(by_split[s]) for s in SPLITS})
    assert sha(json.dumps(meta, indent=2) + "\n") == DEMO_FILES["meta"]
    digest = hashlib.sha256()
    for plan in plans[:3]:
        rng = np.random.default_rng([0, plan.index, 1])
        digest.update(render_audio(plan, spec, rng).tobytes())
        for frame in render_frames(plan, spec, rng):
            digest.update(frame.tobytes())
    assert digest.hexdigest() == DEMO_RENDER_3_VIDEOS


def test_unav_style_classes_recur_and_overlap():
    spec = PRESETS["unav"]
    plans = [plan_video(i, 3, spec) for i in range(200)]
    overlapping = multi_window = 0
    for plan in plans:
        records = records_of(plan)
        assert [r.label for r in records] == [r.query for r in records]  # class-name queries
        assert len({r.label for r in records}) == len(records)
        for record in records:
            assert record.windows == sorted(record.windows)
            assert all(a[1] < b[0] for a, b in zip(record.windows, record.windows[1:]))  # never touching
            assert 1 <= len(record.windows) <= 3 and all(e <= record.duration for _, e in record.windows)
            multi_window += len(record.windows) > 1
        events = sorted((e.start, e.end, e.label) for e in plan.events)
        overlapping += any(a[1] > b[0] and a[2] != b[2] for a, b in zip(events, events[1:]))
        classes_of_sound: dict[str, set] = {}
        for event in plan.events:
            if event.sound:
                classes_of_sound.setdefault(event.sound, set()).add(event.label)
        assert all(len(classes) == 1 for classes in classes_of_sound.values())  # a sound names one class
    assert multi_window > 100 and overlapping > 50


def test_recurring_classes_without_overlap_share_the_timeline():
    spec = SyntheticSpec(occurrences=(2, 3), min_events=2, max_events=3)
    for i in range(100):
        plan = plan_video(i, 0, spec)
        times = sorted((e.start, e.end) for e in plan.events)
        assert all(a[1] < b[0] for a, b in zip(times, times[1:]))
        queries = [e.query for e in plan.events]
        assert max(queries.count(q) for q in queries) >= 2 and plan.events[0].label is None


def test_bad_new_options_are_named():
    with pytest.raises(ValueError, match="occurrences must satisfy 1 <= low <= high"):
        SyntheticSpec(occurrences=(2, 1)).validate()
    with pytest.raises(ValueError, match="max_events \\(event classes\\) must be <= 12"):
        SyntheticSpec(overlap=True, max_events=13).validate()


def test_presets_set_defaults_that_flags_override(tmp_path):
    _, spec = parse_arguments(["--out", str(tmp_path), "--preset", "long", "--fps", "2"], None)
    assert spec == SyntheticSpec(**{**PRESETS["long"].__dict__, "fps": 2.0})
    _, spec = parse_arguments(["--out", str(tmp_path), "--preset", "unav", "--no-overlap"], None)
    assert spec.occurrences == (1, 3) and not spec.overlap and spec.class_queries
    assert parse_arguments(["--out", str(tmp_path)], None)[1] == SyntheticSpec()


def test_unav_style_dataset_plays_its_windows_and_scores_with_detection_map(tmp_path):
    out = tmp_path / "unav"
    argv = ["--out", str(out), "--preset", "unav", "--num-videos", "6", "--seed", "2", "--workers", "1"]
    assert main([*argv, "--min-duration", "12", "--max-duration", "16", "--max-event-len", "4"]) == 0
    records = [r for split in SPLITS for r in load_annotations(out / f"{split}.jsonl")]
    assert any(len(r.windows) > 1 for r in records)
    for vid in sorted({r.vid for r in records}):
        frames, times, audio, rate = decode_av(out / "videos" / f"{vid}.mp4")
        coloured = ((frames.max(-1).astype(np.int16) - frames.min(-1)) > 100).sum(axis=(1, 2))
        margin = int(0.05 * rate)
        for record in (r for r in records if r.vid == vid):
            for start, end in record.windows:
                if record.kind != "audio":
                    assert coloured[(times >= start - 1e-6) & (times < end - 1e-6)].min() > 100, record.query
                if record.kind != "visual":
                    clip = audio[int(start * rate) + margin : int(end * rate) - margin]
                    assert np.sqrt(np.mean(clip**2)) > 0.15, record.query
    perfect = [{"qid": r.qid, "pred_relevant_windows": [[s, e, 1.0 - 0.1 * i] for i, (s, e) in enumerate(r.windows)]}
               for r in records]  # fmt: skip
    metrics = evaluate_predictions(perfect, records, detection="unav100")
    assert metrics["brief"]["DET-mAP"] == 100.0 and metrics["brief"]["MR-full-mAP"] == 100.0
    shifted = [{"qid": p["qid"], "pred_relevant_windows": [[s + 1, e + 1, c] for s, e, c in p["pred_relevant_windows"]]}
               for p in perfect]  # fmt: skip
    assert 0 < evaluate_predictions(shifted, records, detection="unav100")["brief"]["DET-mAP"] < 100


def test_long_preset_is_cheap(tmp_path):
    out = tmp_path / "long"
    argv = ["--out", str(out), "--preset", "long", "--num-videos", "3", "--duration", "300", "--workers", "1"]
    assert main([*argv, "--val-fraction", "0.3", "--test-fraction", "0.3"]) == 0
    records = [r for split in SPLITS for r in load_annotations(out / f"{split}.jsonl")]
    assert {r.duration for r in records} == {300.0}
    assert all(5 <= e - s <= 120 and e <= 300 for r in records for s, e in r.windows)
    frames, _, audio, rate = decode_av(out / "videos" / records[0].video_file)
    assert frames.shape == (300, 16, 16, 3) and abs(len(audio) / rate - 300) < 0.2


def test_tiny_model_trains_on_unav_style_data_and_is_scored_by_detection_map(tmp_path, one_thread):
    """Two training steps of the demo's tiny SMS on UnAV-style videos, then its test predictions
    through lavis-mr-eval --detection unav100."""
    spec = dataclasses.replace(TINY_SPEC, occurrences=(1, 2), overlap=True, class_queries=True)
    run = train_tiny_run(tmp_path / "data", tmp_path / "run", spec)
    gt = load_annotations(run.data / "test.jsonl")
    assert all(r.label for r in gt) and any(len(r.windows) > 1 for r in gt + load_annotations(run.data / "train.jsonl"))
    save = tmp_path / "metrics.json"
    args = ["--submission_path", str(run.run_dir / "preds_test.jsonl"), "--gt_path", str(run.data / "test.jsonl")]
    assert mr_eval([*args, "--save_path", str(save), "--detection", "unav100"]) == 0
    metrics = json.loads(save.read_text())
    assert metrics["detection"]["num_classes"] == len({r.label for r in gt})
    assert 0 <= metrics["brief"]["DET-mAP"] <= 100 and "DET-mAP@0.9" in metrics["brief"]
