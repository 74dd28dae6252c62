import json

import pytest

from lavis.datasets.schema import AnnotationError, load_annotations
from mr_data.charades import convert_charades, main, read_durations

CSV_HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"


def write_csv(path, lengths):
    rows = "".join(
        f'{vid},S1,Kitchen,6,7,Yes,"a script",book;shelf,"desc",c001 0.0 5.0,{length}\n'
        for vid, length in lengths.items()
    )
    path.write_text(CSV_HEADER + rows)
    return path


@pytest.fixture
def raw(tmp_path):
    sta = tmp_path / "charades_sta_train.txt"
    sta.write_text(
        "AO8RW 0.0 6.9##a person is putting a book on a shelf.\n"
        "Y6R7T 20.8 30.0##person begins to play on a phone.\n"
        "Y6R7T 11.2 18.4##person opens the door.\n"
        "\n"
        "ZZ111 3.5 8.25##someone sits down.\n"
    )
    csv = write_csv(tmp_path / "Charades_v1_train.csv", {"AO8RW": 33.67, "Y6R7T": 29.42, "ZZ111": 12.0})
    return sta, csv


def test_converts_with_float_windows_clipped_ends_and_mrblip_qids(raw, tmp_path):
    sta, csv = raw
    convert_charades(sta, [csv], tmp_path / "train.jsonl")
    records = load_annotations(tmp_path / "train.jsonl")
    assert [r.qid for r in records] == [
        "Charades-STA_AO8RW#0",
        "Charades-STA_Y6R7T#0",
        "Charades-STA_Y6R7T#1",
        "Charades-STA_ZZ111#0",
    ]
    assert records[0].windows == [(0.0, 6.9)] and records[0].duration == 33.67
    assert records[1].windows == [(20.8, 29.42)]  # end 30.0 clipped to the video's 29.42 s
    assert records[3].windows == [(3.5, 8.25)]
    assert records[0].query == "a person is putting a book on a shelf."
    assert all(r.video_file == f"{r.vid}.mp4" for r in records)


def test_validation_split_holds_whole_videos_and_is_seeded(raw, tmp_path):
    sta, csv = raw
    first = convert_charades(sta, [csv], tmp_path / "a.jsonl", tmp_path / "va.jsonl", val_fraction=0.34, seed=42)
    again = convert_charades(sta, [csv], tmp_path / "b.jsonl", tmp_path / "vb.jsonl", val_fraction=0.34, seed=42)
    assert (tmp_path / "va.jsonl").read_text() == (tmp_path / "vb.jsonl").read_text()
    assert first["val"] and first["train"]
    assert not {r.vid for r in first["train"]} & {r.vid for r in first["val"]}
    assert len(first["train"]) + len(first["val"]) == 4
    assert again["val"][0].vid == first["val"][0].vid


@pytest.mark.parametrize(
    "line, reason",
    [
        ("AO8RW 0.0 6.9 a person sits.", "no '##'"),
        ("AO8RW 0.0##a person sits.", "expected 'VIDEOID START END'"),
        ("AO8RW zero 6.9##a person sits.", "start is not a number"),
        ("AO8RW 8.0 6.0##a person sits.", "start 8.0 > end 6.0"),
        ("AO8RW 40.0 45.0##a person sits.", "at or after the end of the 33.67 s video"),
        ("NOPE1 1.0 2.0##a person sits.", "video NOPE1 is in none of the Charades CSVs"),
        ("AO8RW 1.0 2.0##   ", "empty sentence"),
    ],
)
def test_bad_line_names_file_line_and_reason(tmp_path, line, reason):
    sta = tmp_path / "sta.txt"
    sta.write_text("AO8RW 0.0 6.9##fine line.\n" + line + "\n")
    csv = write_csv(tmp_path / "c.csv", {"AO8RW": 33.67})
    with pytest.raises(AnnotationError) as err:
        convert_charades(sta, [csv], tmp_path / "out.jsonl")
    assert f"{sta}: line 2" in str(err.value) and reason in str(err.value)


def test_skip_bad_counts_and_keeps_the_rest(tmp_path):
    sta = tmp_path / "sta.txt"
    sta.write_text("AO8RW 0.0 6.9##fine line.\nAO8RW 8.0 6.0##reversed.\nAO8RW 1.0 2.0##also fine.\n")
    csv = write_csv(tmp_path / "c.csv", {"AO8RW": 33.67})
    out = convert_charades(sta, [csv], tmp_path / "out.jsonl", skip_bad=True)
    assert [r.query for r in out["all"]] == ["fine line.", "also fine."]


def test_csv_problems_are_named(tmp_path):
    bad_header = tmp_path / "h.csv"
    bad_header.write_text("id,duration\nAO8RW,3\n")
    with pytest.raises(AnnotationError, match="missing column"):
        read_durations([bad_header])
    bad_length = tmp_path / "l.csv"
    bad_length.write_text("id,length\nAO8RW,3\nB,abc\n")
    with pytest.raises(AnnotationError, match=r"l.csv: line 3: length is not a number"):
        read_durations([bad_length])


def test_cli_writes_train_and_val_and_reports_errors(raw, tmp_path, capsys):
    sta, csv = raw
    args = ["--sta", str(sta), "--csv", str(csv), "--out", str(tmp_path / "t.jsonl")]
    assert main(args + ["--val-out", str(tmp_path / "v.jsonl"), "--val-fraction", "0.3"]) == 0
    rows = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    rows += [json.loads(x) for x in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    assert main(["--sta", str(tmp_path / "missing.txt"), "--csv", str(csv), "--out", str(tmp_path / "x.jsonl")]) == 2
