"""The ``moment_retrieval`` task: predictions held in memory -> metrics and output files.

This is the evaluation side; the runner calls ``evaluate`` on rank 0 with every prediction of
a split gathered, then ``write_outputs``. Predictions are QVHighlights submission dicts
(``qid``, ``pred_relevant_windows`` as ``[start, end, score]`` best first, optional
``pred_saliency_scores`` and ``invalid``), see ``lavis.tasks.metrics``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

from lavis.common.registry import registry
from lavis.datasets.schema import MomentRecord
from lavis.tasks.metrics import evaluate_predictions

logger = logging.getLogger(__name__)

# Keys written first on each line of preds_<split>.jsonl, as in the public submission format.
_LEADING_KEYS = ("qid", "query", "vid")


@registry.register_task("moment_retrieval")
class MomentRetrievalTask:
    def __init__(self, clip_length: float = 2.0):
        self.clip_length = clip_length  # seconds per saliency clip (QVHighlights: 2)

    @classmethod
    def setup_task(cls, cfg: Any) -> "MomentRetrievalTask":
        """Build from an ``ExperimentConfig`` (the task has no options of its own yet)."""
        return cls()

    def evaluate(self, predictions: Sequence[dict], records: Sequence[MomentRecord], skipped_videos: int = 0) -> dict:
        """Metrics of one split (the evaluator's JSON, see ``lavis.tasks.metrics``).

        Strict, so a duplicated or lost prediction fails loudly, unless the dataset skipped
        unreadable videos: then their queries have no prediction and count as misses
        (``validation`` in the result says how many), and ``skipped_videos`` is reported.
        """
        lenient = skipped_videos > 0
        if lenient:
            logger.warning("%d unreadable video(s) were skipped; their queries count as misses", skipped_videos)
        metrics = evaluate_predictions(predictions, records, lenient=lenient, clip_length=self.clip_length)
        metrics["skipped_videos"] = skipped_videos
        return metrics

    def write_outputs(
        self, output_dir: str | Path, split: str, predictions: Sequence[dict], metrics: dict, records: Sequence[MomentRecord]
    ) -> tuple[Path, Path]:
        """Write ``preds_<split>.jsonl`` (submission format, in annotation order) and
        ``metrics_<split>.json``; returns both paths."""
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        by_qid = {str(p["qid"]): p for p in predictions}
        lines = []
        for record in records:
            pred = by_qid.pop(str(record.qid), None)
            if pred is not None:
                head = {"qid": record.qid, "query": record.query, "vid": record.vid}
                lines.append({**head, **{k: v for k, v in pred.items() if k not in _LEADING_KEYS}})
        lines.extend(by_qid.values())  # predictions for unknown qids (only under lenient evaluation)
        preds_path = output_dir / f"preds_{split}.jsonl"
        preds_path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        metrics_path = output_dir / f"metrics_{split}.json"
        metrics_path.write_text(json.dumps(metrics, indent=4))
        return preds_path, metrics_path
