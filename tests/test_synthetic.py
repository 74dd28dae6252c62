import json
from collections import Counter

import av
import numpy as np
import pytest
from av_media import decode_av

from lavis.datasets.schema import load_annotations
from mr_data.synthetic import SPLITS, generate_dataset, main
from mr_data.synthetic_plan import SyntheticSpec, plan_video

SPEC = SyntheticSpec(min_duration=12.0, max_duration=16.0)  # small and quick, same kind of content


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    return out, generate_dataset(out, num_videos=6, seed=5, spec=SPEC, workers=1)


def all_records(paths):
    return {split: load_annotations(path) for split, path in paths.items()}


def test_same_seed_gives_identical_annotations_whatever_the_worker_count(dataset, tmp_path):
    out, paths = dataset
    again = generate_dataset(tmp_path / "again", num_videos=6, seed=5, spec=SPEC, workers=2)
    for split in SPLITS:
        assert paths[split].read_text() == again[split].read_text()
    other = generate_dataset(tmp_path / "other", num_videos=6, seed=6, spec=SPEC, workers=1)
    assert [other[s].read_text() for s in SPLITS] != [paths[s].read_text() for s in SPLITS]


def test_complete_output_is_reused_not_reencoded(dataset):
    out, paths = dataset
    video = next((out / "videos").glob("*.mp4"))
    stamp = video.stat().st_mtime_ns
    assert generate_dataset(out, num_videos=6, seed=5, spec=SPEC) == paths
    assert video.stat().st_mtime_ns == stamp
    assert json.loads((out / "meta.json").read_text())["queries"] == {
        s: len(load_annotations(p)) for s, p in paths.items()
    }


def test_splits_are_disjoint_by_video_and_records_valid(dataset):
    out, paths = dataset
    records = all_records(paths)
    vids = {split: {r.vid for r in rs} for split, rs in records.items()}
    assert all(vids.values()) and sum(len(v) for v in vids.values()) == 6
    assert not (vids["train"] & vids["val"] or vids["train"] & vids["test"] or vids["val"] & vids["test"])
    everything = [r for rs in records.values() for r in rs]
    assert len({r.qid for r in everything}) == len(everything)
    for record in everything:
        assert record.kind in ("visual", "audio", "audio_visual") and len(record.windows) == 1
        start, end = record.windows[0]
        assert start >= 0 and 2 <= end - start <= 5 and end <= record.duration
        assert 12 <= record.duration <= 16 and (out / "videos" / record.video_file).is_file()
    per_video = Counter((r.vid, r.query) for r in everything)
    assert max(per_video.values()) == 1  # no two events of a video share a description


def test_event_pixels_and_sound_land_in_the_annotated_windows(dataset):
    out, paths = dataset
    records = [r for rs in all_records(paths).values() for r in rs]
    kinds = Counter(r.kind for r in records)
    assert kinds["audio"] and kinds["visual"] + kinds["audio_visual"]
    for vid in sorted({r.vid for r in records}):
        events = [r for r in records if r.vid == vid]
        frames, times, audio, rate = decode_av(out / "videos" / events[0].video_file)
        assert len(frames) == round(events[0].duration * SPEC.fps)
        assert abs(len(audio) / rate - events[0].duration) < 0.1

        chroma = frames.max(-1).astype(np.int16) - frames.min(-1)
        coloured = (chroma > 100).sum(axis=(1, 2))  # saturated pixels per frame: the shapes
        shown = np.zeros(len(frames), bool)
        heard = np.zeros(len(audio), bool)
        margin = int(0.05 * rate)  # AAC smears a few ms around each edge
        quiet = np.ones(len(audio), bool)
        for event in events:
            start, end = event.windows[0]
            if event.kind != "audio":
                inside = (times >= start - 1e-6) & (times < end - 1e-6)
                assert coloured[inside].min() > 150, (vid, event.query)
                shown |= inside
            if event.kind != "visual":
                first, last = int(start * rate), int(end * rate)
                rms = np.sqrt(np.mean(audio[first + margin : last - margin] ** 2))
                assert rms > 0.15, (vid, event.query, rms)
                heard[first:last] = True
                quiet[max(0, first - margin) : last + margin] = False
        assert coloured[~shown].max() < 20, vid
        assert np.sqrt(np.mean(audio[quiet] ** 2)) < 0.03, vid
        assert heard.any() or shown.any()


def test_plan_keeps_descriptions_unique_and_audio_only_events_common():
    spec = SyntheticSpec()
    events = [e for i in range(200) for e in plan_video(i, 0, spec).events]
    kinds = Counter(e.kind for e in events)
    assert kinds["audio"] / len(events) > 0.25  # a video-only model cannot localize these
    for i in range(200):
        plan = plan_video(i, 0, spec)
        assert len({e.query for e in plan.events}) == len(plan.events)
        assert len({e.sound for e in plan.events if e.sound}) == sum(1 for e in plan.events if e.sound)
        ends = [(e.start, e.end) for e in plan.events]
        assert all(a[1] < b[0] for a, b in zip(ends, ends[1:]))  # in time order, never touching


def test_cli_makes_benchmark_style_files(tmp_path):
    out = tmp_path / "bench"
    args = [
        "--out",
        str(out),
        "--num-videos",
        "3",
        "--seed",
        "1",
        "--width",
        "96",
        "--height",
        "64",
        "--fps",
        "30",
        "--duration",
        "6",
        "--sample-rate",
        "48000",
        "--gop",
        "60",
        "--max-event-len",
        "3",
        "--workers",
        "1",
        "--shape-size",
        "0.6",
        "0.7",
        "--background-levels",
        "100",
        "120",
    ]
    assert main(args) == 0
    spec = json.loads((out / "meta.json").read_text())["spec"]
    assert (spec["shape_size"], spec["background_levels"]) == ([0.6, 0.7], [100.0, 120.0])
    with av.open(str(next((out / "videos").glob("*.mp4")))) as container:
        video, sound = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, video.width, video.height) == ("h264", 96, 64)
        assert (sound.codec_context.name, sound.rate) == ("aac", 48000)
        keyframes = [p.pts * video.time_base for p in container.demux(video) if p.is_keyframe and p.pts is not None]
        assert len(keyframes) >= 3 and max(np.diff(keyframes)) <= 2  # 6 s, a keyframe at least every 60 frames
    assert main(["--out", str(tmp_path / "x"), "--num-videos", "3", "--size", "63"]) == 2
    assert main(["--out", str(tmp_path / "x"), "--num-videos", "3", "--background-levels", "150", "100"]) == 2
