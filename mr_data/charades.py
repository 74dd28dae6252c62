"""Convert the raw Charades-STA release to normalized JSON Lines.

The release is one text file per split, a query per line, ``VIDEOID START END##sentence``
(``AO8RW 0.0 6.9##a person is putting a book on a shelf.``); durations come from the Charades
CSVs (columns ``id`` and ``length``, seconds)::

    python -m mr_data.charades --sta charades_sta_train.txt \
        --csv Charades_v1_train.csv --csv Charades_v1_test.csv \
        --out data/charades_sta/train.jsonl --val-out data/charades_sta/val.jsonl \
        --val-fraction 0.1 --seed 42
    python -m mr_data.charades --sta charades_sta_test.txt --csv Charades_v1_test.csv \
        --out data/charades_sta/test.jsonl

Windows keep their float seconds; ends past the video are clipped to its duration. qids follow
the Mr. BLIP files' rule so both conversions name a query alike: every line gets
``Charades-STA_<VIDEOID>``, and since a video has several queries, each becomes
``Charades-STA_<VIDEOID>#<k>`` with k its order among that video's lines in the file (the rule
of ``lavis.datasets.schema.make_qids_unique``). Bad lines fail with file, line number and reason
(``--skip-bad`` skips and counts them).
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Optional

from lavis.common.cli import ArgumentParser, cli_errors
from lavis.datasets.schema import AnnotationError, MomentRecord, keep_valid, make_qids_unique
from mr_data.convert import add_output_arguments, clip_to_duration, finish_records, write_with_val_split

logger = logging.getLogger(__name__)
QID_PREFIX = "Charades-STA_"  # Mr. BLIP's qid of a Charades-STA query (one per video)


def _seconds(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AnnotationError(f"{where}: {what} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise AnnotationError(f"{where}: {what} must be finite, got {text!r}")
    return value


def read_durations(paths: Iterable[str | Path]) -> dict[str, float]:
    """Video id -> duration (s) from Charades CSVs (columns ``id`` and ``length``)."""
    durations: dict[str, float] = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise AnnotationError(f"Charades CSV not found: {path}")
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = {"id", "length"} - set(reader.fieldnames or [])
            if missing:
                raise AnnotationError(f"{path}: missing column(s) {sorted(missing)}; has {reader.fieldnames}")
            for row in reader:
                where = f"{path}: line {reader.line_num}"
                length = _seconds(row["length"], "length", where)
                if length <= 0:
                    raise AnnotationError(f"{where}: video {row['id']} has length {length} <= 0")
                durations[row["id"]] = length
    return durations


def parse_sta_line(line: str, where: str, durations: dict[str, float]) -> MomentRecord:
    """One ``VIDEOID START END##sentence`` line -> a record (qid not yet unique, ends clipped)."""
    head, sep, sentence = line.partition("##")
    if not sep:
        raise AnnotationError(f"{where}: expected 'VIDEOID START END##sentence', no '##' in {line!r}")
    fields = head.split()
    if len(fields) != 3:
        raise AnnotationError(f"{where}: expected 'VIDEOID START END' before '##', got {head!r}")
    vid = fields[0]
    start = _seconds(fields[1], "start", where)
    end = _seconds(fields[2], "end", where)
    if start > end:
        raise AnnotationError(f"{where}: start {start} > end {end}")
    if not sentence.strip():
        raise AnnotationError(f"{where}: empty sentence")
    if vid not in durations:
        raise AnnotationError(f"{where}: video {vid} is in none of the Charades CSVs given (no duration)")
    record = MomentRecord(
        qid=f"{QID_PREFIX}{vid}", vid=vid, query=sentence.strip(), duration=durations[vid], windows=[(start, end)]
    )
    clip_to_duration(record, where)
    return record


def read_sta(
    path: str | Path, durations: dict[str, float], skip_bad: bool = False
) -> tuple[list[MomentRecord], list[str]]:
    """Records of a Charades-STA text file with unique qids, and the problems of skipped lines."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"Charades-STA file not found: {path}")
    lines = [
        (lineno, line.strip()) for lineno, line in enumerate(path.read_text().splitlines(), start=1) if line.strip()
    ]
    records, problems = keep_valid(
        lines, lambda item: parse_sta_line(item[1], f"{path}: line {item[0]}", durations), skip_bad, path, "line"
    )
    if not records:
        raise AnnotationError(f"{path}: no usable lines")
    return make_qids_unique(records, str(path)), problems


def convert_charades(
    sta_path: str | Path,
    csv_paths: Sequence[str | Path],
    out: str | Path,
    val_out: Optional[str | Path] = None,
    val_fraction: float = 0.1,
    seed: int = 42,
    skip_bad: bool = False,
) -> dict[str, list[MomentRecord]]:
    """Convert one Charades-STA split file; with ``val_out``, hold out whole videos (seeded)."""
    records, _ = read_sta(sta_path, read_durations(csv_paths), skip_bad)
    finish_records(records, str(sta_path), clip=False)  # already clipped per line; names video files
    return write_with_val_split(records, Path(out), Path(val_out) if val_out else None, val_fraction, seed)


@cli_errors
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sta", required=True, type=Path, help="charades_sta_{train,test}.txt")
    parser.add_argument("--csv", required=True, type=Path, action="append", help="Charades_v1_*.csv (repeatable)")
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    convert_charades(args.sta, args.csv, args.out, args.val_out, args.val_fraction, args.seed, args.skip_bad)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
