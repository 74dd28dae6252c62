import json

import pytest

from lavis.datasets.schema import AnnotationError, MomentRecord, load_annotations
from mr_data.convert import convert_file, main
from mr_data.splits import assign_splits, split_by_video


def mrblip_rows():
    rows = [
        {
            "video": "A1",
            "qid": "Charades-STA_A1",
            "query": f"person does {i}.",
            "duration": 20.5,
            "relevant_windows": [[1, 22]],
            "objects": ["cup"],
        }
        for i in range(2)
    ]
    rows.append(
        {
            "video": "B2",
            "qid": "Charades-STA_B2",
            "query": "person sits.",
            "duration": 10.0,
            "relevant_windows": [[2.5, 4.25]],
        }
    )
    return rows


def test_mrblip_list_gets_unique_qids_clipped_ends_and_video_files(tmp_path):
    src = tmp_path / "train.json"
    src.write_text(json.dumps(mrblip_rows()))
    convert_file(src, tmp_path / "out.jsonl")
    records = load_annotations(tmp_path / "out.jsonl")
    assert [r.qid for r in records] == ["Charades-STA_A1#0", "Charades-STA_A1#1", "Charades-STA_B2#0"]
    assert records[0].windows == [(1.0, 20.5)] and records[2].windows == [(2.5, 4.25)]
    assert [r.video_file for r in records] == ["A1.mp4", "A1.mp4", "B2.mp4"]
    assert records[0].extra == {"objects": ["cup"]}


def test_no_clip_keeps_published_windows(tmp_path):
    src = tmp_path / "train.json"
    src.write_text(json.dumps(mrblip_rows()))
    convert_file(src, tmp_path / "out.jsonl", clip=False, video_ext=None)
    records = load_annotations(tmp_path / "out.jsonl")
    assert records[0].windows == [(1.0, 22.0)] and records[0].video_file is None


def test_qvh_saliency_is_kept(tmp_path):
    row = {
        "qid": 7,
        "query": "a dog runs",
        "duration": 150,
        "vid": "abc_60.0_210.0",
        "relevant_windows": [[2, 6]],
        "relevant_clip_ids": [1, 2],
        "saliency_scores": [[1, 2, 3], [4, 4, 0]],
    }
    src = tmp_path / "qvh.jsonl"
    src.write_text(json.dumps(row) + "\n")
    convert_file(src, tmp_path / "out.jsonl")
    out = json.loads((tmp_path / "out.jsonl").read_text())
    assert out["qid"] == 7 and out["saliency_scores"] == [[1, 2, 3], [4, 4, 0]] and out["relevant_clip_ids"] == [1, 2]
    assert out["video_file"] == "abc_60.0_210.0.mp4"


def test_bad_records_fail_with_location_or_are_skipped(tmp_path):
    rows = mrblip_rows() + [{"video": "C3", "qid": "x", "query": "q", "duration": 10.0, "relevant_windows": [[8, 6]]}]
    rows.append({"video": "D4", "qid": "y", "query": "q", "duration": 10.0, "relevant_windows": [[12, 14]]})
    src = tmp_path / "bad.json"
    src.write_text(json.dumps(rows))
    with pytest.raises(AnnotationError, match=r"bad.json: index 3 \(qid x\): window 0 has start 8.0 > end 6.0"):
        convert_file(src, tmp_path / "out.jsonl")
    out = convert_file(src, tmp_path / "out.jsonl", skip_bad=True)
    assert [r.vid for r in out["all"]] == ["A1", "A1", "B2"]  # D4 starts after its video ends
    assert main(["--input", str(src), "--out", str(tmp_path / "cli.jsonl")]) == 2


def test_assign_splits_is_seeded_order_free_and_exhaustive():
    vids = [f"v{i}" for i in range(50)]
    first = assign_splits(vids, {"val": 0.1, "test": 0.2}, seed=3)
    assert first == assign_splits(list(reversed(vids)), {"val": 0.1, "test": 0.2}, seed=3)
    assert first != assign_splits(vids, {"val": 0.1, "test": 0.2}, seed=4)
    counts = {name: list(first.values()).count(name) for name in ("train", "val", "test")}
    assert counts == {"train": 35, "val": 5, "test": 10}
    with pytest.raises(ValueError, match="too few"):
        assign_splits(["a", "b"], {"val": 0.5, "test": 0.4}, seed=0)
    with pytest.raises(ValueError, match="sum to < 1"):
        assign_splits(vids, {"val": 0.6, "test": 0.4}, seed=0)


def test_split_by_video_never_splits_a_video():
    records = [MomentRecord(qid=i, vid=f"v{i % 7}", query="q", duration=9.0, windows=[(1.0, 2.0)]) for i in range(40)]
    splits = split_by_video(records, {"val": 0.3}, seed=1)
    assert not {r.vid for r in splits["train"]} & {r.vid for r in splits["val"]}
    assert sorted(r.qid for s in splits.values() for r in s) == list(range(40))


def test_real_mrblip_charades_files(shared_data, tmp_path):
    test = convert_file(shared_data / "charades_sta/test.json", tmp_path / "test.jsonl")["all"]
    assert len(test) == 3720 and len({r.qid for r in test}) == 3720
    assert all(isinstance(s, float) and 0 <= s < e <= r.duration for r in test for s, e in r.windows)
    assert len(load_annotations(tmp_path / "test.jsonl")) == 3720

    with pytest.raises(AnnotationError, match="index 8251"):  # a published window with start > end
        convert_file(shared_data / "charades_sta/train.json", tmp_path / "x.jsonl")
    splits = convert_file(
        shared_data / "charades_sta/train.json",
        tmp_path / "train.jsonl",
        tmp_path / "val.jsonl",
        val_fraction=0.1,
        seed=42,
        skip_bad=True,
    )
    train_vids, val_vids = {r.vid for r in splits["train"]}, {r.vid for r in splits["val"]}
    assert not train_vids & val_vids and not (train_vids | val_vids) & {r.vid for r in test}
    assert len(splits["train"]) + len(splits["val"]) == 12408 - 4
    assert round(0.1 * len(train_vids | val_vids)) == len(val_vids)
    qids = [r.qid for r in splits["train"] + splits["val"]]
    assert len(set(qids)) == len(qids)


@pytest.mark.parametrize(
    "name, count", [("highlight_val_release.jsonl", 1550), ("highlight_train_release.jsonl", 7218)]
)
def test_real_qvhighlights_files_keep_saliency(shared_data, tmp_path, name, count):
    records = convert_file(shared_data / "qvhighlights" / name, tmp_path / "out.jsonl")["all"]
    assert len(records) == count and len({r.qid for r in records}) == count
    assert all(r.saliency_scores and len(r.saliency_scores) == len(r.relevant_clip_ids) for r in records)
    again = load_annotations(tmp_path / "out.jsonl")
    assert again[0].saliency_scores == records[0].saliency_scores and again[0].video_file == f"{again[0].vid}.mp4"


def test_real_qvhighlights_unlabelled_test_release(shared_data, tmp_path):
    src = shared_data / "qvhighlights/highlight_test_release.jsonl"
    with pytest.raises(AnnotationError, match="missing key 'relevant_windows'"):
        convert_file(src, tmp_path / "out.jsonl")
    assert len(convert_file(src, tmp_path / "out.jsonl", allow_no_windows=True)["all"]) == 1542
