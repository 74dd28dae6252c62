"""Convert a ``database`` release of class-labelled events (UnAV-100, ActivityNet v1.3) to
moment-retrieval queries: one query per (video, class), every segment of that class a window.

Both releases share one shape, ``{"version", "database": {video_key: {"subset", "duration",
"annotations": [{"segment": [start, end], "label": ...}, ...]}}}``::

    # UnAV-100 (subsets train / validation / test)
    python -m mr_data.event_database --benchmark unav100 \
        --annotations unav100_annotations.json --subset test --out data/unav100/test.jsonl
    # ActivityNet v1.3 action localization (subsets training / validation / testing; the
    # testing labels are withheld, so papers report on validation and hold out training videos)
    python -m mr_data.event_database --benchmark activitynet \
        --annotations activity_net.v1-3.min.json --subset training \
        --out data/anet_tal/train.jsonl --val-out data/anet_tal/val.jsonl
    python -m mr_data.event_database --benchmark activitynet \
        --annotations activity_net.v1-3.min.json --subset validation --out data/anet_tal/test.jsonl

As the reference's preprocessing does (its ``data_preprocess.ipynb`` for UnAV-100), the query
text is the class label itself (``"dog barking"``), the classes of a video are numbered in the
order they first appear in its annotations, and the qid is ``<prefix><video>_<k>``
(``UNAV-100_0K4QM63pY-w_0``). Each record also carries ``label`` (the class), which detection
mAP groups by. Segments keep their float seconds and their release order; segments of one class
are never merged (see mr_data/README.md); ends past the video are clipped to its duration.
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from lavis.common.cli import ArgumentParser, cli_errors
from lavis.datasets.schema import AnnotationError, MomentRecord, Window, keep_valid
from mr_data.convert import add_output_arguments, clip_to_duration, finish_records, write_with_val_split
from mr_data.raw_fields import field, listing, pair, positive, read_json_object, text

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventBenchmark:
    """How one release names its videos, queries and subsets."""

    title: str
    qid_prefix: str  # the reference's qid: f"{qid_prefix}{vid}_{k}"
    vid_prefix: str  # prepended to the database key to give the video id (and file name)
    subsets: tuple[str, str, str]  # the release's names of its train / validation / test subsets


BENCHMARKS: dict[str, EventBenchmark] = {
    "unav100": EventBenchmark("UnAV-100", "UNAV-100_", "", ("train", "validation", "test")),
    # ActivityNet's database keys lack the "v_" its video files (and ActivityNet Captions) use;
    # the reference's anet_TAL preprocessing prepends it too.
    "activitynet": EventBenchmark("ActivityNet v1.3", "ActivityNet_", "v_", ("training", "validation", "testing")),
}


def video_queries(key: str, entry: Any, benchmark: EventBenchmark, where: str) -> list[MomentRecord]:
    """The queries of one database entry: one per class, in order of first appearance."""
    duration = positive(field(entry, "duration", where), "duration", where)
    by_label: dict[str, list[Window]] = {}
    for i, annotation in enumerate(listing(field(entry, "annotations", where), "annotations", where)):
        at = f"{where}, annotation {i}"
        label = text(field(annotation, "label", at), "label", at)
        by_label.setdefault(label, []).append(pair(field(annotation, "segment", at), "segment", at))
    vid = f"{benchmark.vid_prefix}{key}"
    records = []
    for k, (label, windows) in enumerate(by_label.items()):
        record = MomentRecord(
            qid=f"{benchmark.qid_prefix}{vid}_{k}",
            vid=vid,
            query=label,
            duration=duration,
            windows=windows,
            label=label,
        )
        clip_to_duration(record, where)
        records.append(record)
    return records


def subset_entries(database: dict[str, Any], subset: str, path: Path) -> list[tuple[str, Any]]:
    """The (key, entry) pairs of ``subset``; an unknown subset names the ones the file has."""
    subsets: Counter = Counter()
    for key, entry in database.items():
        subsets[str(field(entry, "subset", f"{path}: video {key}"))] += 1
    if subset not in subsets:
        found = ", ".join(f"{name} ({n} videos)" for name, n in sorted(subsets.items()))
        raise AnnotationError(f"{path}: no video has subset '{subset}'; the file has: {found}")
    return [(key, entry) for key, entry in database.items() if str(entry["subset"]) == subset]


def read_event_database(
    path: str | Path, benchmark: str, subset: str, skip_bad: bool = False
) -> tuple[list[MomentRecord], list[str]]:
    """Queries of one subset of a database release, and the problems of skipped videos.

    A bad annotation makes its whole video bad (skipped and counted with ``skip_bad``), so the
    class numbering of the videos kept never depends on what was skipped.
    """
    if benchmark not in BENCHMARKS:
        raise AnnotationError(f"unknown benchmark '{benchmark}'; choose one of {sorted(BENCHMARKS)}")
    spec = BENCHMARKS[benchmark]
    path = Path(path)
    database = field(read_json_object(path, f"{spec.title} annotation file"), "database", str(path))
    if not isinstance(database, dict):
        raise AnnotationError(f"{path}: 'database' must map video ids to entries, got {type(database).__name__}")
    entries = subset_entries(database, subset, path)
    per_video, problems = keep_valid(
        entries,
        lambda item: video_queries(item[0], item[1], spec, f"{path}: video {item[0]}"),
        skip_bad,
        path,
        "video",
    )
    unlabelled = sum(1 for queries in per_video if not queries)
    if unlabelled:
        logger.info("%s: %d of %d '%s' videos have no annotations (no queries)", path, unlabelled, len(entries), subset)
    records = [record for queries in per_video for record in queries]
    if not records:
        raise AnnotationError(
            f"{path}: no annotated video in subset '{subset}' (a withheld test subset has none: "
            f"use '{spec.subsets[1]}' as the test split and hold out '{spec.subsets[0]}' videos for validation)"
        )
    return records, problems


def convert_event_database(
    annotations: str | Path,
    benchmark: str,
    subset: str,
    out: str | Path,
    val_out: Optional[str | Path] = None,
    val_fraction: float = 0.1,
    seed: int = 42,
    skip_bad: bool = False,
    video_ext: str = ".mp4",
) -> dict[str, list[MomentRecord]]:
    """Convert one subset; with ``val_out``, hold out whole videos (seeded). Returns the
    records written, by split (``{"all": ...}`` or ``{"train": ..., "val": ...}``)."""
    records, _ = read_event_database(annotations, benchmark, subset, skip_bad)
    finish_records(records, str(annotations), clip=False, video_ext=video_ext)  # clipped per video above
    return write_with_val_split(records, Path(out), Path(val_out) if val_out else None, val_fraction, seed)


@cli_errors
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotations", required=True, type=Path, help="unav100_annotations.json or similar")
    parser.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS), help="which release it is")
    parser.add_argument("--subset", required=True, help="the release's subset to convert (e.g. test, training)")
    add_output_arguments(parser)
    parser.add_argument("--video-ext", default=".mp4", help="video file = <vid><ext> (default .mp4)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    convert_event_database(
        args.annotations,
        args.benchmark,
        args.subset,
        args.out,
        args.val_out,
        args.val_fraction,
        args.seed,
        args.skip_bad,
        args.video_ext,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
