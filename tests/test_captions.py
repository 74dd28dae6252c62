"""ActivityNet Captions and TACoS (2D-TAN's frame-based JSON) -> normalized JSON Lines, and the
QVHighlights-style JSONL other libraries release (lighthouse) through mr_data.convert.

The original ActivityNet Captions / 2D-TAN TACoS files are not in ../shared/data; the real-file
tests rebuild them from lighthouse's JSONL release of the same queries (same videos, sentences,
order; seconds for ActivityNet, frames at TACoS's 29.4 fps) and check the conversion against the
reference's own preprocessing (ActivityNet) and lighthouse's (TACoS)."""

import json
from collections import Counter

import pytest

from lavis.datasets.schema import AnnotationError, load_annotations
from mr_data.captions import convert_captions, main, read_captions
from mr_data.convert import convert_file


def write(path, data):
    path.write_text(json.dumps(data))
    return path


ANET = {
    "v_abc": {
        "duration": 55.15,
        "timestamps": [[0.28, 55.2], [13.79, 54.32], [20.0, 20.0], [3.0, 9.5]],
        "sentences": ["A weight lifting tutorial is given.", "  The coach helps. ", "empty", "Then he lifts."],
    },
    "v_def": {"duration": 10.0, "timestamps": [[1, 2]], "sentences": ["x"]},
}


def test_activitynet_captions_qids_index_the_release_list(tmp_path):
    path = write(tmp_path / "val_1.json", ANET)
    with pytest.raises(AnnotationError, match=r"val_1.json: video v_abc, sentence 2: empty window \[20.0, 20.0\]"):
        read_captions(path, "activitynet")
    records, problems = read_captions(path, "activitynet", skip_bad=True)
    assert len(problems) == 1
    assert [(r.qid, r.query) for r in records] == [
        ("ActivityNet_v_abc_0", "A weight lifting tutorial is given."),
        ("ActivityNet_v_abc_1", "The coach helps."),
        ("ActivityNet_v_abc_3", "Then he lifts."),  # the reference numbers the release's list
        ("ActivityNet_v_def_0", "x"),
    ]
    assert records[0].windows == [(0.28, 55.15)]  # end clipped to the duration
    assert records[0].vid == "v_abc" and records[0].label is None


def test_tacos_frames_become_seconds_and_qids_count_kept_sentences(tmp_path):
    tacos = {
        "s13-d21.avi": {
            "fps": 29.4,
            "num_frames": 2940,
            "timestamps": [[0, 147], [300, 300], [294, 3000]],
            "sentences": ["He takes out a knife", "nothing", "He cuts the kiwi"],
        }
    }
    records, problems = read_captions(write(tmp_path / "test.json", tacos), "tacos", skip_bad=True)
    assert len(problems) == 1
    assert [(r.qid, r.vid, r.duration) for r in records] == [
        ("s13-d21_0", "s13-d21", 100.0),
        ("s13-d21_1", "s13-d21", 100.0),
    ]
    assert records[0].windows == [(0.0, 5.0)] and records[1].windows == [(10.0, 100.0)]


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"timestamps": [[0, 1]], "sentences": ["a"]}, "video v_x: missing key 'duration'"),
        ({"duration": 9, "timestamps": [[0, 1]], "sentences": []}, "1 timestamps but 0 sentences"),
        ({"duration": 9, "timestamps": [[0, 1, 2]], "sentences": ["a"]}, "timestamp must be \\[start, end\\]"),
        ({"duration": 9, "timestamps": [[10, 12]], "sentences": ["a"]}, "starts at 10.0 s, at or after the end"),
    ],
)
def test_bad_entries_name_the_file_video_and_problem(tmp_path, entry, message):
    with pytest.raises(AnnotationError, match=message):
        read_captions(write(tmp_path / "a.json", {"v_x": entry}), "activitynet")


def test_cli(tmp_path):
    src = write(
        tmp_path / "train.json",
        {f"v_{i}": {"duration": 20, "timestamps": [[1, 5]], "sentences": ["s"]} for i in range(10)},
    )
    out, val = tmp_path / "train.jsonl", tmp_path / "val.jsonl"
    args = ["--input", str(src), "--benchmark", "activitynet", "--out", str(out), "--val-out", str(val)]
    assert main(args) == 0
    assert len(load_annotations(out)) == 9 and load_annotations(val)[0].video_file.endswith(".mp4")
    assert main(["--input", str(tmp_path / "missing.json"), "--benchmark", "tacos", "--out", str(out)]) == 2


def lighthouse(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def rebuild(rows, key_suffix="", fps=None):
    """The original per-video format from one-query-per-line rows, in their order."""
    videos = {}
    for row in rows:
        entry = videos.setdefault(row["vid"] + key_suffix, {"timestamps": [], "sentences": []})
        if fps is None:
            entry["duration"] = row["duration"]
            entry["timestamps"].append(row["relevant_windows"][0])
        else:
            entry.update(fps=fps, num_frames=round(row["duration"] * fps))
            entry["timestamps"].append([round(t * fps) for t in row["relevant_windows"][0]])
        entry["sentences"].append(row["query"])
    return videos


def test_real_activitynet_val_1_matches_the_reference_preprocessing(shared_data, tmp_path):
    rows = lighthouse(shared_data / "activitynet_captions/lighthouse/activitynet_val_release.jsonl")
    records = convert_captions(write(tmp_path / "val_1.json", rebuild(rows)), "activitynet", tmp_path / "val.jsonl")[
        "all"
    ]
    theirs = json.loads((shared_data / "activitynet_captions/mrblip/val.json").read_text())
    assert (len(records), len({r.vid for r in records})) == (len(theirs), 4917) == (17505, 4917)
    for mine, ref in zip(records, theirs):
        assert (mine.qid, mine.vid, mine.query) == (ref["qid"], ref["video"], ref["query"].strip())
        assert mine.duration == pytest.approx(ref["duration"], abs=1e-9)
        assert [[round(s), round(e)] for s, e in mine.windows] == ref["relevant_windows"]
        assert 0 <= mine.windows[0][0] < mine.windows[0][1] <= mine.duration


@pytest.mark.parametrize("split, counts", [("train", (9790, 75)), ("val", (4436, 27)), ("test", (4001, 25))])
def test_real_tacos_both_routes_agree(shared_data, tmp_path, split, counts):
    src = shared_data / "tacos" / f"tacos_{split}_release.jsonl"
    via_jsonl = convert_file(src, tmp_path / "a.jsonl")["all"]
    assert (len(via_jsonl), len({r.vid for r in via_jsonl})) == counts
    videos = rebuild(lighthouse(src), ".avi", fps=29.4)
    first = next(iter(videos.values()))
    first["timestamps"].append([50, 50])  # a zero-length sentence, as 2D-TAN's release has
    first["sentences"].append("she does nothing")
    raw = convert_captions(write(tmp_path / "raw.json", videos), "tacos", tmp_path / "b.jsonl", skip_bad=True)["all"]
    assert [r.to_json() for r in raw] == [r.to_json() for r in via_jsonl]
    assert all(0 <= s < e <= r.duration for r in raw for s, e in r.windows)


def test_real_activitynet_lighthouse_and_reference_files(shared_data, tmp_path):
    base = shared_data / "activitynet_captions"
    val = convert_file(base / "lighthouse/activitynet_val_release.jsonl", tmp_path / "val.jsonl")["all"]
    assert (len(val), len({r.vid for r in val})) == (17505, 4917)
    assert all(0 <= s < e <= r.duration for r in val for s, e in r.windows)  # 5 ends clipped
    # The reference's val_2 (test) file rounded 3 windows to start at the end of their video.
    with pytest.raises(AnnotationError, match="at or after the end"):
        convert_file(base / "mrblip/test.json", tmp_path / "test.jsonl")
    test = convert_file(base / "mrblip/test.json", tmp_path / "test.jsonl", skip_bad=True)["all"]
    assert (len(test), len({r.vid for r in test})) == (17028, 4885)
    assert Counter(r.qid.rsplit("_", 1)[1] for r in test)["0"] == 4885
