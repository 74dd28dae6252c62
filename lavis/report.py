"""An error browser for a run's predictions: one static HTML page, worst queries first.

    python -m lavis.report --run-dir RUN --split test [--ann GT.jsonl] [--data-root DIR] \
        [--video-root DIR] [--out DIR] [--max-images 200]

Reads ``RUN/preds_<split>.jsonl`` and the split's ground truth (``--ann``, default: the run's own
annotation file of that split, where the run recorded it when it trained, or under
``--data-root``, the folder that holds the run's dataset now) and writes ``OUT/index.html`` + ``OUT/timelines/*.png`` (``OUT``
defaults to ``RUN/report_<split>``): a summary of the evaluator's metrics for the whole split, by
video-duration bucket (tertiles of the split's durations) and, for data with an event ``kind``
(the synthetic benchmark), by kind; then one row per query with its top-1 IoU, GT, predicted
windows, the model's text and a timeline (frames, loudness, windows; videos are looked up under
the run's ``video_root``, moved by ``--data-root``, or under ``--video-root``), sortable by any column. Timelines are drawn for the ``--max-images``
worst queries (decoding every video of a large split takes a while).

Exit status: 0 done; 2 bad input (missing run, predictions or ground truth).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
from tqdm import tqdm

from lavis.common.cli import ArgumentParser, add_data_root_argument, cli_errors, non_negative_int
from lavis.common.errors import InputError
from lavis.common.files import atomic_write_text, not_a_file
from lavis.common.run_dir import RunDir
from lavis.common.run_info import missing_data
from lavis.datasets.mr_dataset import video_path
from lavis.datasets.schema import MomentRecord, load_annotations
from lavis.inference.loading import data_section
from lavis.inference.report_html import Row, render_page, summary_table
from lavis.tasks.metrics import evaluate_predictions
from lavis.tasks.metrics_hl import CLIP_LENGTH
from lavis.tasks.mr_eval import numbered_predictions
from lavis.tasks.prediction_validation import PredictionError, check_prediction

logger = logging.getLogger(__name__)
LOUDNESS_RATE = 16000  # Hz: plenty for a loudness curve, and cheap to resample to


def checked_predictions(path: Path, records: Sequence[MomentRecord]) -> list[dict]:
    """The predictions of ``path``, each checked as the evaluator checks it against its record
    (a malformed one is a ``PredictionError`` naming the file and the line); queries without a
    prediction are allowed (they show as misses)."""
    by_qid = {str(r.qid): r for r in records}
    preds = []
    for where, pred in numbered_predictions(path, lenient=False)[0]:
        qid = pred.get("qid") if isinstance(pred, dict) else None
        if not isinstance(qid, (int, str)) or isinstance(qid, bool):
            raise PredictionError(
                f"{where}: expected an object with a 'qid' (a string or an integer), got {str(pred)[:80]}"
            )
        record = by_qid.get(str(pred["qid"]))
        if record is not None:
            try:
                check_prediction(pred, record, CLIP_LENGTH)
            except PredictionError as err:
                raise PredictionError(f"{where}: {err}") from None
        preds.append(pred)
    return preds


def build_rows(preds: Sequence[dict], records: Sequence[MomentRecord]) -> list[Row]:
    """One row per labelled record (a query without a prediction has no windows), worst first."""
    from lavis.inference.result import query_iou

    by_qid = {str(p["qid"]): p for p in preds}
    rows = []
    for record in records:
        if not record.windows:
            continue
        pred = by_qid.get(str(record.qid), {})
        windows = [list(map(float, w)) for w in pred.get("pred_relevant_windows", [])]
        gt = [list(w) for w in record.windows]
        rows.append(
            Row(
                qid=str(record.qid),
                query=record.query,
                vid=record.vid,
                duration=record.duration,
                kind=record.kind,
                gt=gt,
                windows=windows,
                iou=query_iou(windows, gt),
                text=str(pred.get("pred_text", "")),
                invalid=pred.get("invalid"),
            )
        )
    return sorted(rows, key=lambda r: r.iou)  # stable: equal IoUs keep annotation order


def duration_buckets(durations: Sequence[float], count: int = 3) -> np.ndarray:
    """Bucket edges (seconds): the ``count``-quantiles of ``durations`` taken at data points
    (``lower``), duplicates merged; bucket k is ``[edge_k, edge_k+1)``, the last one closed."""
    levels = np.linspace(0, 1, count + 1)
    return np.unique(np.quantile(np.asarray(durations, dtype=np.float64), levels, method="lower"))


def group_summaries(preds: Sequence[dict], records: Sequence[MomentRecord]) -> list[tuple[str, str]]:
    """(heading, HTML table): the whole split, duration buckets, event kinds (when present)."""
    labelled = [r for r in records if r.windows]

    def brief(group: list[MomentRecord]) -> dict:
        keep = {str(r.qid) for r in group}
        return evaluate_predictions([p for p in preds if str(p["qid"]) in keep], group, lenient=True)["brief"]

    out = [("Whole split", summary_table([("all", len(labelled), brief(labelled))]))]
    edges = duration_buckets([r.duration for r in labelled])
    if len(edges) > 2:
        groups: dict[int, list[MomentRecord]] = defaultdict(list)
        for r in labelled:
            groups[int(np.searchsorted(edges[1:-1], r.duration, side="right"))].append(r)
        rows = [(f"{edges[k]:.1f}-{edges[k + 1]:.1f} s", len(g), brief(g)) for k, g in sorted(groups.items())]
        out.append(("By video duration", summary_table(rows)))
    kinds: dict[str, list[MomentRecord]] = defaultdict(list)
    for r in labelled:
        if r.kind:
            kinds[r.kind].append(r)
    if kinds:
        out.append(("By event kind", summary_table([(k, len(g), brief(g)) for k, g in sorted(kinds.items())])))
    return out


def draw_timelines(rows: Sequence[Row], videos: dict[str, Path], out: Path, limit: int) -> None:
    """Timeline PNGs of the first ``limit`` rows (``row.image`` set); each video decoded once."""
    from lavis.datasets.audio_io import read_audio
    from lavis.datasets.video_io import VideoDecodeError, read_frames
    from lavis.inference.timeline import MAX_THUMBNAILS, draw_timeline, loudness_db

    cache: dict[str, Any] = {}
    for k, row in enumerate(tqdm(rows[:limit], desc="timelines", unit="query")):
        if row.vid not in cache:
            try:
                frames = read_frames(videos[row.vid], MAX_THUMBNAILS)
                cache[row.vid] = (frames, loudness_db(read_audio(videos[row.vid], LOUDNESS_RATE), row.duration), True)
            except VideoDecodeError as err:
                logger.warning("timeline of qid %s without frames or audio: %s", row.qid, err)
                cache[row.vid] = (None, None, False)
        frames, loudness, readable = cache[row.vid]
        name = f"timelines/{k + 1:04d}_{re.sub(r'[^A-Za-z0-9_.-]', '_', row.qid)}.png"
        draw_timeline(
            out / name,
            row.duration,
            row.windows,
            gt=row.gt,
            loudness=loudness,
            frames=frames.frames if frames else None,
            frame_times=frames.timestamps if frames else None,
            title=f"{row.qid}: {row.query}  (IoU {row.iou:.2f})",
            no_audio_text="no audio stream" if readable else "video unavailable",
        )
        row.image = name


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m lavis.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", required=True, help="a training run's output_dir")
    p.add_argument("--split", default="test", help="reads preds_<split>.jsonl (default: test)")
    p.add_argument("--ann", help="the split's ground truth (default: the run's annotation file for it)")
    add_data_root_argument(p)
    p.add_argument("--video-root", help="the folder of the videos (default: the run's, moved by --data-root)")
    p.add_argument("--out", help="output folder (default: RUN_DIR/report_<split>)")
    p.add_argument("--max-images", type=non_negative_int, default=200, help="timelines for this many worst queries")
    return p


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """``python -m lavis.report``: write the HTML error browser of a run's split (worst queries first); exit
    status 0, or 2 after one ``error:`` line."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run = RunDir(args.run_dir)
    out = Path(args.out) if args.out else run.report(args.split)
    _, section = data_section(run.load_config(data_roots=args.data_root))
    if args.ann:
        ann = Path(args.ann)
        if not_a_file(ann, "--ann: ground truth"):
            raise InputError(not_a_file(ann, "--ann: ground truth"))
    else:
        ann = section.annotation_file(args.split)
        if ann is None:
            raise InputError(f"the run's config names no annotation file for split {args.split!r}: pass --ann")
        if not ann.is_file():
            raise missing_data(
                f"ground truth for split {args.split!r}", ann, alternative=", or give the file with --ann"
            )
    records = load_annotations(ann, allow_no_windows=True)
    preds = checked_predictions(run.preds(args.split), records)
    rows = build_rows(preds, records)
    if not rows:
        raise InputError(f"{ann}: no query has ground-truth windows")
    summaries = group_summaries(preds, records)
    video_dir = Path(args.video_root) if args.video_root else section.video_dir
    videos = {r.vid: video_path(r, video_dir, section.video_ext) for r in records}
    missing = sum(not p.is_file() for p in {videos[row.vid] for row in rows[: args.max_images]})
    if missing:
        option = "--video-root" if args.video_root else "--video-root (or --data-root)"
        logger.warning(
            "%d video(s) not found under %s: timelines without frames; point at them with %s",
            missing,
            video_dir,
            option,
        )
    out.mkdir(parents=True, exist_ok=True)
    draw_timelines(rows, videos, out, args.max_images)
    page = render_page(
        f"{run.path.resolve().name}: {args.split}",
        f"{len(rows)} queries; predictions {run.preds(args.split)}; ground truth {ann}; "
        f"IoU = top-1 window vs. best-matching GT window",
        summaries,
        rows,
    )
    atomic_write_text(out / "index.html", page)
    print(f"wrote {out / 'index.html'} ({len(rows)} rows, {sum(r.image is not None for r in rows)} timelines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
