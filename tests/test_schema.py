import json

import pytest

from lavis.datasets.schema import AnnotationError, load_annotations, read_annotations, save_annotations


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def qvh_row(qid, **kw):
    row = {"qid": qid, "vid": f"v{qid}", "query": "a dog barks", "duration": 30, "relevant_windows": [[2, 4.5]]}
    row.update(kw)
    return row


def test_round_trip_keeps_float_windows_and_saliency(tmp_path):
    rows = [qvh_row(1, relevant_clip_ids=[1, 2], saliency_scores=[[1, 2, 3], [4, 4, 4]], kind="audio")]
    records = load_annotations(write_jsonl(tmp_path / "a.jsonl", rows))
    assert records[0].windows == [(2.0, 4.5)] and records[0].kind == "audio"
    again = load_annotations(save_annotations(records, tmp_path / "b.jsonl"))
    assert again[0].to_json() == records[0].to_json()


def test_class_label_is_optional_and_round_trips(tmp_path):
    rows = [qvh_row(1, label="dog barking"), qvh_row(2)]
    records = load_annotations(write_jsonl(tmp_path / "a.jsonl", rows))
    assert [r.label for r in records] == ["dog barking", None] and records[0].extra == {}
    lines = save_annotations(records, tmp_path / "b.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["label"] == "dog barking" and "label" not in json.loads(lines[1])


def test_repeated_qids_become_unique_in_file_order(tmp_path):
    rows = [
        {"video": "A", "qid": "Charades-STA_A", "query": f"q{i}", "duration": 10, "relevant_windows": [[0, 1]]}
        for i in range(3)
    ]
    rows.append({"video": "B", "qid": "Charades-STA_B", "query": "x", "duration": 10, "relevant_windows": [[0, 1]]})
    path = tmp_path / "mrblip.json"
    path.write_text(json.dumps(rows))
    qids = [r.qid for r in load_annotations(path)]
    assert qids == ["Charades-STA_A#0", "Charades-STA_A#1", "Charades-STA_A#2", "Charades-STA_B#0"]


@pytest.mark.parametrize(
    "bad, reason",
    [
        ({"relevant_windows": [[5, 2]]}, "start 5.0 > end 2.0"),
        ({"relevant_windows": [["a", 2]]}, "must be a finite number"),
        ({"duration": 0}, "duration must be > 0"),
        ({"query": " "}, "query must be a non-empty string"),
        ({"saliency_scores": [[1, 1, 1]]}, "saliency_scores"),
        ({"label": ""}, "label must be a non-empty string"),
        ({"label": 36}, "label must be a non-empty string"),
    ],
)
def test_bad_record_names_file_line_and_reason(tmp_path, bad, reason):
    path = write_jsonl(tmp_path / "a.jsonl", [qvh_row(1), qvh_row(2, **bad)])
    with pytest.raises(AnnotationError) as err:
        load_annotations(path)
    assert f"{path}: line 2" in str(err.value) and reason in str(err.value)


def test_lenient_read_skips_and_reports(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [qvh_row(1), qvh_row(2, relevant_windows=[[3, 1]])])
    records, problems = read_annotations(path, strict=False)
    assert [r.qid for r in records] == [1] and len(problems) == 1 and "line 2" in problems[0]


def test_real_files_load_with_unique_qids(shared_data):
    test = load_annotations(shared_data / "charades_sta" / "test.json")
    assert len(test) == 3720 and len({r.qid for r in test}) == 3720
    val = load_annotations(shared_data / "qvhighlights" / "highlight_val_release.jsonl")
    assert len(val) == 1550 and all(r.saliency_scores for r in val)
    unlabeled = load_annotations(shared_data / "qvhighlights" / "highlight_test_release.jsonl", allow_no_windows=True)
    assert len(unlabeled) == 1542 and all(r.windows == [] for r in unlabeled)
    # The released Charades-STA train file has 4 windows with start > end.
    train, problems = read_annotations(shared_data / "charades_sta" / "train.json", strict=False)
    assert len(train) == 12404 and len(problems) == 4
