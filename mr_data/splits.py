"""Splits of whole videos, seeded: no video's queries are ever in two splits.

Checkpoints are selected on a validation split, never the test split: every converter here can
carve one out of the training videos (``--val-fraction 0.1 --seed 42``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from lavis.common.errors import InputError
from lavis.datasets.schema import MomentRecord


def assign_splits(
    video_ids: Iterable[str], fractions: Mapping[str, float], seed: int, rest: str = "train"
) -> dict[str, str]:
    """Map each video id to a split name.

    ``fractions`` gives the share of videos of each held-out split (e.g. ``{"val": 0.1}``); the
    remaining videos go to ``rest``. The result depends only on the set of ids, the fractions
    and the seed (ids are sorted first, so the order of the input file does not matter). A
    non-zero fraction always gets at least one video.
    """
    vids = sorted(set(video_ids))
    total = sum(fractions.values())
    if any(f < 0 for f in fractions.values()) or total >= 1:
        raise InputError(f"split fractions must be >= 0 and sum to < 1, got {dict(fractions)}")
    if rest in fractions:
        raise InputError(f"'{rest}' gets the remaining videos; it cannot also have a fraction")
    order = np.random.default_rng(seed).permutation(len(vids))
    counts = {name: max(1, round(f * len(vids))) if f > 0 else 0 for name, f in fractions.items()}
    if sum(counts.values()) >= len(vids):
        raise InputError(
            f"{len(vids)} videos are too few for held-out splits of {counts} videos and a non-empty '{rest}' split"
        )
    assignment, cursor = {}, 0
    for name, count in counts.items():
        for i in order[cursor : cursor + count]:
            assignment[vids[i]] = name
        cursor += count
    for i in order[cursor:]:
        assignment[vids[i]] = rest
    return assignment


def split_by_video(
    records: list[MomentRecord], fractions: Mapping[str, float], seed: int, rest: str = "train"
) -> dict[str, list[MomentRecord]]:
    """Records grouped by ``assign_splits`` of their videos, each split in input order."""
    assignment = assign_splits((r.vid for r in records), fractions, seed, rest)
    out: dict[str, list[MomentRecord]] = {name: [] for name in [rest, *fractions]}
    for record in records:
        out[assignment[record.vid]].append(record)
    return out
