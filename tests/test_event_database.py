"""UnAV-100 / ActivityNet v1.3 ``database`` releases -> one query per (video, class): small files
the tests write, then the real UnAV-100 release against the reference's own preprocessing."""

import json
from collections import Counter, defaultdict

import pytest

from lavis.datasets.schema import AnnotationError, load_annotations
from mr_data.event_database import convert_event_database, main, read_event_database


def write(path, database, version="unav100"):
    path.write_text(json.dumps({"version": version, "database": database}))
    return path


def seg(start, end, label):
    return {"segment": [start, end], "label": label}


SMALL = {
    "vidA": {
        "subset": "test",
        "duration": 30.0,
        "annotations": [seg(1.0, 4.5, "dog barking"), seg(2.0, 9.0, "man speaking"), seg(12.0, 31.2, "dog barking")],
    },
    "vidB": {"subset": "test", "duration": 10, "annotations": [seg(0, 10, "car passing")]},
    "vidC": {"subset": "train", "duration": 20.0, "annotations": [seg(0, 5, "dog barking")]},
}


def test_one_query_per_video_and_class_in_first_appearance_order(tmp_path):
    records, problems = read_event_database(write(tmp_path / "a.json", SMALL), "unav100", "test")
    assert problems == []
    assert [(r.qid, r.query, r.label) for r in records] == [
        ("UNAV-100_vidA_0", "dog barking", "dog barking"),
        ("UNAV-100_vidA_1", "man speaking", "man speaking"),
        ("UNAV-100_vidB_0", "car passing", "car passing"),
    ]
    # Every segment of the class is a window, in release order; the end past the video is clipped.
    assert records[0].windows == [(1.0, 4.5), (12.0, 30.0)]
    assert records[2].duration == 10.0


def test_activitynet_names_and_subsets(tmp_path):
    database = {
        "abc": {"subset": "training", "duration": 50.0, "annotations": [seg(3, 20, "Long jump")]},
        "def": {"subset": "validation", "duration": 60.0, "annotations": [seg(1, 5, "Tango"), seg(9, 30, "Tango")]},
        "ghi": {"subset": "testing", "duration": 40.0, "annotations": []},
    }
    path = write(tmp_path / "anet.json", database, "VERSION 1.3")
    (record,) = read_event_database(path, "activitynet", "validation")[0]
    assert (record.qid, record.vid, record.windows) == ("ActivityNet_v_def_0", "v_def", [(1.0, 5.0), (9.0, 30.0)])
    with pytest.raises(AnnotationError, match="no annotated video in subset 'testing'.*'validation' as the test split"):
        read_event_database(path, "activitynet", "testing")
    with pytest.raises(AnnotationError, match=r"no video has subset 'test'; the file has: testing \(1 videos\)"):
        read_event_database(path, "activitynet", "test")


@pytest.mark.parametrize(
    "annotation, message",
    [
        (seg(5, 2, "x"), "annotation 0: segment has start 5.0 > end 2.0"),
        (seg(40, 45, "x"), "window 0 starts at 40.0 s, at or after the end of the 30.0 s video"),
        ({"segment": [1, 2]}, "annotation 0: missing key 'label'"),
        (seg(1, "2", "x"), "segment end must be a finite number"),
        (seg(1, 2, " "), "label must be a non-empty string"),
    ],
)
def test_bad_annotations_name_file_video_and_problem(tmp_path, annotation, message):
    database = {"bad": {"subset": "test", "duration": 30.0, "annotations": [annotation]}, **SMALL}
    path = write(tmp_path / "a.json", database)
    with pytest.raises(AnnotationError, match=f"a.json: video bad.*{message}"):
        read_event_database(path, "unav100", "test")
    records, problems = read_event_database(path, "unav100", "test", skip_bad=True)
    assert len(problems) == 1 and {r.vid for r in records} == {"vidA", "vidB"}


def test_cli_writes_normalized_files_and_a_held_out_split(tmp_path):
    database = {
        f"v{i}": {"subset": "train", "duration": 20.0, "annotations": [seg(0, 5, "a"), seg(6, 9, "b")]}
        for i in range(20)
    }
    src = write(tmp_path / "db.json", database)
    out, val = tmp_path / "train.jsonl", tmp_path / "val.jsonl"
    args = ["--annotations", str(src), "--benchmark", "unav100", "--subset", "train", "--out", str(out)]
    assert main([*args, "--val-out", str(val), "--val-fraction", "0.2"]) == 0
    train, held = load_annotations(out), load_annotations(val)
    assert (len({r.vid for r in train}), len({r.vid for r in held})) == (16, 4)
    assert not {r.vid for r in train} & {r.vid for r in held}
    assert train[0].label == "a" and train[0].video_file == "v0.mp4"
    assert json.loads(out.read_text().splitlines()[0])["label"] == "a"
    assert main([*args, "--benchmark", "thumos"]) == 2  # argparse's mistakes are one error line too
    assert main([*args[:-4], "--subset", "validation", "--out", str(out)]) == 2  # one line: subsets found


UNAV_SPLITS = {"train": (6489, 10358), "validation": (2134, 3456), "test": (2167, 3455)}


@pytest.mark.parametrize("subset", UNAV_SPLITS)
def test_real_unav100_counts_and_windows_inside_videos(shared_data, tmp_path, subset):
    src = shared_data / "unav100" / "unav100_annotations.json"
    records = convert_event_database(src, "unav100", subset, tmp_path / "out.jsonl")["all"]
    assert (len({r.vid for r in records}), len(records)) == UNAV_SPLITS[subset]
    assert len({r.qid for r in records}) == len(records)
    assert all(0 <= s <= e <= r.duration for r in records for s, e in r.windows)
    assert len({r.label for r in records}) == 100
    assert load_annotations(tmp_path / "out.jsonl")[5].to_json() == records[5].to_json()


@pytest.mark.parametrize(
    "subset, reference, covered",
    [("test", "mrblip/test.json", (1414, 2348)), ("validation", "mrblip/val.json", (1390, 2345)),
     ("train", "mrblip/train.json", (4235, 6981)), ("test", "mrblip_small/test_small.json", (1376, 2295))],
)  # fmt: skip
def test_real_unav100_matches_the_reference_preprocessing(shared_data, subset, reference, covered):
    """For the videos the reference's files cover: the same qids, queries, durations, and windows
    equal to ours rounded to whole seconds (its ``int(round(x))``)."""
    ours = {
        r.qid: r for r in read_event_database(shared_data / "unav100/unav100_annotations.json", "unav100", subset)[0]
    }
    theirs = json.loads((shared_data / "unav100" / reference).read_text())
    assert (len({t["video"] for t in theirs}), len(theirs)) == covered
    per_video: dict[str, int] = defaultdict(int)
    for t in theirs:
        mine = ours[t["qid"]]
        assert (mine.vid, mine.query, mine.duration) == (t["video"], t["query"], t["duration"])
        assert [[int(round(s)), int(round(e))] for s, e in mine.windows] == t["relevant_windows"]
        per_video[t["video"]] += 1
    # ...and every query of a covered video is in the reference's file.
    ours_per_video = Counter(r.vid for r in ours.values())
    assert all(ours_per_video[vid] == n for vid, n in per_video.items())
