"""Issue 13, finding 6: annotation windows outside their video are never accepted silently."""

import json

import pytest
from av_media import make_video
from helpers.toy_run import toy_experiment

from lavis.common.typed import from_dict
from lavis.datasets.builders import SyntheticAVBuilder, SyntheticAVConfig
from lavis.datasets.schema import AnnotationError, MomentRecord, save_annotations
from lavis.datasets.windows_in_video import WindowRepairs, repair_windows
from lavis.runners.runner import RunnerBase

SMALL = {
    "num_frames": 4,
    "audio": {
        "sampling_rate": 16000,
        "clip_len": 0.5,
        "n_mels": 16,
        "hop_length": 160,
        "fft_window_size": 256,
        "max_length_s": 1,
        "frequency_min": 0.0,
        "frequency_max": 8000.0,
    },
    "vis_processor": {
        "train": {"name": "blip2_video_train", "image_size": 16},
        "eval": {"name": "blip_video_eval", "image_size": 16},
    },
}


def records():
    return [
        MomentRecord(qid="in", vid="a", query="q", duration=23.4, windows=[(1.0, 5.0)]),
        MomentRecord(qid="late", vid="a", query="q", duration=23.4, windows=[(20.0, 26.0), (2.0, 3.0)]),
        MomentRecord(qid="negative", vid="a", query="q", duration=23.4, windows=[(-2.0, 4.0)]),
        MomentRecord(qid="after", vid="a", query="q", duration=23.4, windows=[(30.0, 40.0)]),
    ]


def test_training_windows_are_clipped_or_dropped_counted_and_warned(caplog):
    kept, repairs = repair_windows(records(), "train.jsonl", strict=False, change=True)
    assert [r.qid for r in kept] == ["in", "late", "negative"]  # [30, 40] has nothing inside the video
    assert [r.windows for r in kept] == [[(1.0, 5.0)], [(20.0, 23.4), (2.0, 3.0)], [(0.0, 4.0)]]
    assert (repairs.clipped, repairs.dropped, repairs.dropped_records) == (2, 1, 1)
    assert (
        "train.jsonl: 3 window(s) outside their video" in caplog.text
        and "qid after: [30, 40] in a 23.4 s video" in caplog.text
    )


def test_strict_refuses_and_evaluation_splits_are_reported_unchanged(caplog):
    with pytest.raises(
        AnnotationError, match=r"train.jsonl: 3 window\(s\) outside their video, e.g. qid late: \[20, 26\]"
    ):
        repair_windows(records(), "train.jsonl", strict=True, change=True)
    kept, repairs = repair_windows(records(), "val.jsonl", strict=False, change=False)
    assert [r.windows for r in kept] == [r.windows for r in records()] and repairs == WindowRepairs()
    assert "val.jsonl: 3 window(s) outside their video, scored as given" in caplog.text


def test_the_builder_repairs_the_train_split(tmp_path):
    for split, vid in (("train", "a"), ("val", "b"), ("test", "c")):
        make_video(tmp_path / "videos" / f"{vid}.mp4", num_frames=20, tone=(0.5, 1.0))
        recs = [MomentRecord(qid=f"{vid}0", vid=vid, query="q", duration=2.0, windows=[(0.5, 3.0)])]
        save_annotations(recs, tmp_path / f"{split}.jsonl")
    datasets = SyntheticAVBuilder(
        from_dict(SyntheticAVConfig, {**SMALL, "root": str(tmp_path)}, "test")
    ).build_datasets()
    assert datasets["train"].records[0].windows == [(0.5, 2.0)] and datasets["train"].window_repairs.clipped == 1
    assert datasets["val"].records[0].windows == [(0.5, 3.0)]
    strict = from_dict(SyntheticAVConfig, {**SMALL, "root": str(tmp_path), "strict": True}, "test")
    with pytest.raises(AnnotationError, match="train.jsonl: 1 window"):
        SyntheticAVBuilder(strict).build_datasets()


def test_the_counts_are_in_every_epoch_summary(tmp_path):
    cfg, task, model, datasets = toy_experiment(tmp_path / "run")
    datasets["toy"]["train"].window_repairs = WindowRepairs(clipped=3, dropped=1, dropped_records=1)
    RunnerBase(cfg, task, model, datasets).train()
    epochs = [
        r
        for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
        if r["type"] == "epoch"
    ]
    assert len(epochs) == 2 and all(r["windows_clipped"] == 3 and r["windows_dropped"] == 1 for r in epochs)
