"""Queries an evaluation split shares with the training split.

Query ids are unique per query across a benchmark's splits (the converters make them so), so a
validation or test record whose qid is a training record's is either the same query on the same
video (a leak: model selection, or the test, would score queries the model trains on) or an id
collision between different queries (its metrics are still separate, but the files are
confused). Either is warned about with the counts and an example when the dataset is built;
with the dataset's ``strict: true`` it is refused.
"""

from __future__ import annotations

import logging

from lavis.datasets.schema import AnnotationError, MomentRecord

logger = logging.getLogger(__name__)


def check_shared_queries(
    train: list[MomentRecord], other: list[MomentRecord], train_source: str, other_source: str, strict: bool
) -> int:
    """Warn about (``strict``: refuse) the records of ``other`` whose qid is a record's of
    ``train``; returns how many there are."""
    by_qid = {str(r.qid): r for r in train}
    shared = [r for r in other if str(r.qid) in by_qid]
    if not shared:
        return 0
    same = [r for r in shared if (by_qid[str(r.qid)].vid, by_qid[str(r.qid)].query) == (r.vid, r.query)]
    message = (
        f"{other_source}: {len(shared)} of {len(other)} queries have the qid of a query of {train_source} "
        f"(e.g. qid {shared[0].qid}); {len(same)} of them are the same query on the same video, which the "
        f"model would be scored on after training on it"
    )
    if strict:
        raise AnnotationError(f"{message} (strict: true)")
    logger.warning("%s; give each query its own qid and keep the splits apart (strict: true refuses this)", message)
    return len(shared)
