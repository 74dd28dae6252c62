"""`python -m lavis.report`: the static error browser of a run's predictions (and a look at it in
headless Chromium when one is installed)."""

import re
import shutil
import subprocess

import pytest
from matplotlib.image import imread

from lavis.datasets.schema import MomentRecord, load_annotations
from lavis.report import duration_buckets, group_summaries
from lavis.report import main as report_main

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def report(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    assert report_main(["--run-dir", str(tiny_run.run_dir), "--split", "test", "--out", str(out)]) == 0
    return out


def test_one_row_per_query_worst_first_with_its_timeline(tiny_run, report):
    page = (report / "index.html").read_text()
    records = load_annotations(tiny_run.data / "test.jsonl")
    ious = [float(v) for v in re.findall(r'class=iou data-v="([0-9.]+)"', page)]
    assert len(ious) == len(records) and ious == sorted(ious)  # worst first
    for record in records:
        assert f"<td>{record.qid}</td>" in page
    images = re.findall(r'<img class=timeline loading=lazy src="(timelines/[^"]+\.png)"', page)
    assert len(images) == len(records)
    for image in images:
        assert imread(report / image).shape[:2] == (500, 1200)
    assert "<h3>Whole split</h3>" in page and "<h3>By event kind</h3>" in page
    for kind in {r.kind for r in records}:
        assert f"<tr><td>{kind}</td>" in page
    assert "#rows th" in page and "addEventListener('click'" in page  # the sorting script


def test_summary_by_duration_bucket_and_kind():
    records = [
        MomentRecord(
            qid=i,
            vid=f"v{i}",
            query="q",
            duration=10.0 + 10 * (i % 3),
            windows=[(0.0, 4.0)],
            kind=("audio", "visual")[i % 2],
        )
        for i in range(12)
    ]
    preds = [
        {"qid": i, "pred_relevant_windows": [[0.0, 4.0, 1.0]] if i % 3 == 0 else [[5.0, 8.0, 1.0]]} for i in range(12)
    ]
    assert duration_buckets([r.duration for r in records]).tolist() == [10.0, 20.0, 30.0]
    sections = dict(group_summaries(preds, records))
    assert set(sections) == {"Whole split", "By video duration", "By event kind"}
    # Only the 10 s videos (i % 3 == 0) are found: R1@0.5 is 100 there, 0 in the other buckets.
    cells = r"<tr><td>([^<]+)</td><td>(\d+)</td><td>[^<]+</td><td>([^<]+)</td>"  # group, queries, R1@0.3, R1@0.5
    rows = re.findall(cells, sections["By video duration"])
    assert rows == [("10.0-20.0 s", "4", "100"), ("20.0-30.0 s", "8", "0")]
    assert duration_buckets([150.0] * 5).tolist() == [150.0]  # one length: no duration table
    assert set(dict(group_summaries(preds[:1], records[:1]))) == {"Whole split", "By event kind"}


def test_missing_videos_still_give_timelines_and_bad_input_exits_2(tiny_run, tmp_path, capsys):
    data = tmp_path / "data"  # labels, but no videos
    data.mkdir()
    for split in ("val", "test"):
        shutil.copy(tiny_run.data / f"{split}.jsonl", data / f"{split}.jsonl")
    run = tmp_path / "run"
    shutil.copytree(tiny_run.run_dir, run, ignore=shutil.ignore_patterns("*.pt", "preds_val.jsonl"))
    moved = ["--data-root", str(data)]
    assert report_main(["--run-dir", str(run), "--max-images", "1", *moved]) == 0
    page = (run / "report_test" / "index.html").read_text()
    assert page.count("<img class=timeline") == 1 and "no image" in page  # the others beyond --max-images
    assert report_main(["--run-dir", str(run), "--split", "val", *moved]) == 2
    assert "prediction file not found" in capsys.readouterr().err
    assert report_main(["--run-dir", str(run), "--split", "train", *moved]) == 2
    err = capsys.readouterr().err
    assert f"ground truth for split 'train' not found: {data / 'train.jsonl'}" in err and "--data-root" in err
    assert report_main(["--run-dir", str(tmp_path / "nowhere")]) == 2
    assert "run directory not found" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_the_page_renders_in_headless_chromium(report, tmp_path):
    shot = tmp_path / "report.png"
    cmd = [
        "chromium",
        *CHROMIUM_FLAGS,
        "--window-size=1400,1000",
        f"--screenshot={shot}",
        (report / "index.html").as_uri(),
    ]
    subprocess.run(cmd, capture_output=True, timeout=120, check=True)
    image = imread(shot)
    assert image.shape[:2] == (1000, 1400)
    rgb = image[..., :3]
    assert rgb.std() > 0.05 and (rgb < 0.5).mean() > 0.01  # text and images, not a blank page
    # The sorting script: two clicks on the "#" header (distinct ranks) sort the rows last first.
    page = (report / "index.html").read_text()
    clicks = "<script>const th = document.querySelector('#rows th'); th.click(); th.click();</script>"
    clicked = tmp_path / "clicked.html"
    clicked.write_text(page.replace("</body>", clicks + "</body>"))
    dom = subprocess.run(
        ["chromium", *CHROMIUM_FLAGS, "--dump-dom", clicked.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    ranks = [int(v) for v in re.findall(r'<tr class="\w+"><td data-v="(\d+)">', dom)]
    assert ranks == list(range(page.count("class=iou"), 0, -1))
