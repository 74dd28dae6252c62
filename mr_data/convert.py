"""Convert QVHighlights JSONL and Mr. BLIP / SMS JSON lists to the normalized JSON Lines format.

    # Mr. BLIP's Charades-STA files: hold out 10% of the training videos for model selection
    python -m mr_data.convert --input charades_sta/train.json --out data/charades_sta/train.jsonl \
        --val-out data/charades_sta/val.jsonl --val-fraction 0.1 --seed 42 --skip-bad
    python -m mr_data.convert --input charades_sta/test.json --out data/charades_sta/test.jsonl
    # QVHighlights (saliency kept); the unlabelled test release needs --allow-no-windows
    python -m mr_data.convert --input highlight_val_release.jsonl --out data/qvh/val.jsonl

The input format is detected from the content (``lavis.datasets.schema``). Unique qids: when a
file repeats qids (Mr. BLIP's Charades-STA files have one per video), every record becomes
``"<qid>#<k>"``, k = its order among the records sharing that qid. Window ends past the video
are clipped to its duration (Mr. BLIP rounded Charades windows to whole seconds, 866 train and
275 test ends overshoot); ``--no-clip`` keeps them as published. Records that cannot be used
(e.g. start > end: 4 in Mr. BLIP's Charades train file) stop the conversion with file, index and
reason, or are skipped and counted with ``--skip-bad``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from lavis.common.cli import ArgumentParser, cli_errors, finite_float
from lavis.datasets.schema import AnnotationError, MomentRecord, keep_valid, read_annotations, save_annotations
from mr_data.splits import split_by_video

logger = logging.getLogger(__name__)


def clip_to_duration(record: MomentRecord, where: str) -> bool:
    """Clip the record's window ends to its duration in place; True if any end moved. A window
    that starts at or after the end of the video is an error naming ``where``."""
    clipped = []
    for i, (start, end) in enumerate(record.windows):
        if start < 0:
            raise AnnotationError(f"{where} (qid {record.qid}): window {i} starts before 0 ({start} s)")
        if start >= record.duration:
            raise AnnotationError(
                f"{where} (qid {record.qid}): window {i} starts at {start} s, at or after the end "
                f"of the {record.duration} s video"
            )
        clipped.append((start, min(end, record.duration)))
    moved = clipped != record.windows
    record.windows = clipped
    return moved


def finish_records(
    records: list[MomentRecord], source: str, clip: bool = True, video_ext: Optional[str] = ".mp4"
) -> list[MomentRecord]:
    """Clip window ends (when ``clip``) and name each record's video file ``<vid><video_ext>``
    when the source did not (``video_ext=None`` leaves it unset). Returns ``records``."""
    moved = 0
    for record in records:
        if clip:
            moved += clip_to_duration(record, source)
        if record.video_file is None and video_ext is not None:
            record.video_file = f"{record.vid}{video_ext}"
    if moved:
        logger.info("%s: clipped the window ends of %d queries to the video duration", source, moved)
    return records


def write_with_val_split(
    records: list[MomentRecord],
    out: Path,
    val_out: Optional[Path] = None,
    val_fraction: float = 0.1,
    seed: int = 42,
) -> dict[str, list[MomentRecord]]:
    """Save ``records`` to ``out``; with ``val_out``, first move a seeded ``val_fraction`` of the
    videos (whole videos) to ``val_out``. Returns ``{"train": ..., "val": ...}`` or ``{"all": ...}``."""
    if val_out is None:
        save_annotations(records, out)
        logger.info("wrote %d queries (%d videos) to %s", len(records), len({r.vid for r in records}), out)
        return {"all": records}
    splits = split_by_video(records, {"val": val_fraction}, seed)
    for name, path in (("train", out), ("val", val_out)):
        save_annotations(splits[name], path)
        videos = len({r.vid for r in splits[name]})
        logger.info("wrote %d queries (%d videos) to %s", len(splits[name]), videos, path)
    return splits


def convert_file(
    input_path: str | Path,
    out: str | Path,
    val_out: Optional[str | Path] = None,
    val_fraction: float = 0.1,
    seed: int = 42,
    skip_bad: bool = False,
    clip: bool = True,
    video_ext: Optional[str] = ".mp4",
    allow_no_windows: bool = False,
) -> dict[str, list[MomentRecord]]:
    """Read a QVHighlights / normalized JSONL or a Mr. BLIP JSON list and write normalized
    JSON Lines (see the module doc); returns the records written, by split."""
    records, _ = read_annotations(input_path, allow_no_windows, strict=not skip_bad)
    kept, _ = keep_valid(
        records,
        lambda record: finish_records([record], str(input_path), clip, video_ext)[0],
        skip_bad,
        input_path,
        "record",
    )
    if not kept:
        raise AnnotationError(f"{input_path}: no usable records")
    return write_with_val_split(kept, Path(out), Path(val_out) if val_out else None, val_fraction, seed)


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """The output options every converter shares."""
    parser.add_argument("--out", required=True, type=Path, help="normalized JSON Lines to write")
    parser.add_argument("--val-out", type=Path, help="also hold out whole videos into this file")
    parser.add_argument("--val-fraction", type=finite_float, default=0.1, help="share of videos for --val-out")
    parser.add_argument("--seed", type=int, default=42, help="seed of the validation split")
    parser.add_argument("--skip-bad", action="store_true", help="skip and count bad records instead of failing")


@cli_errors
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, type=Path, help="QVHighlights JSONL or Mr. BLIP JSON list")
    add_output_arguments(parser)
    parser.add_argument("--no-clip", action="store_true", help="keep window ends past the video")
    parser.add_argument("--video-ext", default=".mp4", help="video file = <vid><ext> when the input has none")
    parser.add_argument("--allow-no-windows", action="store_true", help="accept unlabelled records")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    convert_file(
        args.input,
        args.out,
        args.val_out,
        args.val_fraction,
        args.seed,
        args.skip_bad,
        not args.no_clip,
        args.video_ext,
        args.allow_no_windows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
