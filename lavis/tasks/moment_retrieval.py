"""The ``moment_retrieval`` task: a batch -> a loss or predictions; predictions -> metrics and files.

The runner calls ``train_step`` / ``valid_step`` inside its autocast, then ``evaluate`` on rank 0
with every prediction of a split gathered, then ``write_outputs``. Predictions are QVHighlights submission dicts
(``qid``, ``pred_relevant_windows`` as ``[start, end, score]`` best first, optional
``pred_saliency_scores`` and ``invalid``), see ``lavis.tasks.metrics``.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import torch

from lavis.common.files import atomic_write_text
from lavis.common.registry import registry
from lavis.common.run_dir import RunDir
from lavis.common.typed import ConfigError
from lavis.datasets.schema import MomentRecord
from lavis.tasks.metric_names import check_valid_metric
from lavis.tasks.metrics import evaluate_predictions
from lavis.tasks.metrics_detection import DETECTION, PROTOCOLS
from lavis.tasks.metrics_hl import CLIP_LENGTH, clip_saliency

logger = logging.getLogger(__name__)

# Keys written first on each line of preds_<split>.jsonl, as in the public submission format.
_LEADING_KEYS = ("qid", "query", "vid")


@registry.register_task("moment_retrieval")
class MomentRetrievalTask:
    """The ``moment_retrieval`` task (see the module docstring): the model's losses and scored windows
    in, the evaluator's metrics and the submission files out.

    Args:
        clip_length: seconds per saliency clip (QVHighlights: 2).
        detection: a detection-mAP protocol (``metrics_detection.PROTOCOLS``) scored as well, on
            benchmarks whose queries are class names (``run.detection``; UnAV-100: ``unav100``).
    """

    def __init__(self, clip_length: float = CLIP_LENGTH, detection: Optional[str] = None):
        self.clip_length = clip_length
        self.detection = detection

    @staticmethod
    def check_run_config(run_cfg: Any) -> None:
        """Called when the config loads: ``run.valid_metric`` must be a brief key the evaluator
        reports (``lavis.tasks.metric_names``) and ``run.detection`` a protocol, so a misspelt
        name fails before any training; a detection key as ``valid_metric`` needs that protocol
        to report it."""
        check_valid_metric(run_cfg.valid_metric)
        protocol = run_cfg.detection
        if protocol is not None and protocol not in PROTOCOLS:
            raise ConfigError(f"run.detection {protocol!r} is not a detection protocol; valid: {sorted(PROTOCOLS)}")
        metric = run_cfg.valid_metric
        if metric in DETECTION.keys and protocol is None:
            raise ConfigError(
                f"run.valid_metric {metric!r} is a detection mAP: set run.detection to the protocol that "
                f"reports it (one of {sorted(PROTOCOLS)})"
            )
        if metric in DETECTION.keys and metric not in PROTOCOLS[protocol].brief_keys():
            raise ConfigError(
                f"run.valid_metric {metric!r} is not reported by run.detection {protocol!r}; it reports "
                f"{PROTOCOLS[protocol].brief_keys()}"
            )

    @classmethod
    def setup_task(cls, cfg: Any) -> MomentRetrievalTask:
        """Build from an ``ExperimentConfig`` (``run.detection``); ``None``: the defaults."""
        return cls(detection=cfg.run.detection if cfg is not None else None)

    @staticmethod
    def move_to_device(batch: dict, device: torch.device) -> dict:
        """Tensors to ``device`` (non-blocking: loaders pin memory on CUDA); lists stay."""
        return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    @staticmethod
    def train_step(model: Any, batch: dict) -> dict[str, torch.Tensor]:
        """The model's losses: ``"loss"`` (what is optimized) and its parts (logged)."""
        return model(batch)

    @staticmethod
    def valid_step(model: Any, batch: dict) -> list[dict]:
        """Scored windows per query in the submission format, plus the best beam's text."""
        # DDP and DeepSpeed wrap the model in `.module`; FSDP2 registers `predict` on the root.
        predictor = getattr(model, "module", model)
        out = []
        durations = batch["duration"].tolist()
        for qid, duration, scored in zip(batch["qid"], durations, predictor.predict(batch)):
            text = scored.texts[0] if scored.texts else ""
            pred = {"qid": qid, "pred_relevant_windows": scored.windows, "invalid": scored.invalid, "pred_text": text}
            if getattr(scored, "frame_scores", None):  # a model with a saliency head
                pred["pred_saliency_scores"] = clip_saliency(
                    scored.frame_times, scored.frame_scores, duration, CLIP_LENGTH
                )
            out.append(pred)
        return out

    def evaluate(self, predictions: Sequence[dict], records: Sequence[MomentRecord], skipped_videos: int = 0) -> dict:
        """Metrics of one split (the evaluator's JSON, see ``lavis.tasks.metrics``).

        Strict, so a duplicated or lost prediction fails loudly, unless the dataset skipped
        unreadable videos: then their queries have no prediction and count as misses
        (``validation`` in the result says how many), and ``skipped_videos`` is reported. With a
        ``detection`` protocol, the benchmark's detection mAP too (``DET-mAP`` in the brief).
        """
        lenient = skipped_videos > 0
        if lenient:
            logger.warning("%d unreadable video(s) were skipped; their queries count as misses", skipped_videos)
        if any(r.saliency_scores is None for r in records):
            # Charades-STA has no highlight ground truth: score the windows only (the saliency
            # scores stay in preds_<split>.jsonl).
            predictions = [{k: v for k, v in p.items() if k != "pred_saliency_scores"} for p in predictions]
        metrics = evaluate_predictions(
            predictions, records, lenient=lenient, clip_length=self.clip_length, detection=self.detection
        )
        metrics["skipped_videos"] = skipped_videos
        by_kind = self._by_kind(predictions, records)
        if by_kind:
            metrics["by_kind"] = by_kind
        return metrics

    def _by_kind(self, predictions: Sequence[dict], records: Sequence[MomentRecord]) -> dict:
        """The brief metrics per event kind (the synthetic benchmark: visual / audio / audio_visual)."""
        groups: dict[str, list[MomentRecord]] = defaultdict(list)
        for record in records:
            if record.kind:
                groups[record.kind].append(record)
        if not groups:
            return {}
        by_qid = {str(p["qid"]): p for p in predictions}
        out = {}
        for kind, group in sorted(groups.items()):
            preds = [by_qid[str(r.qid)] for r in group if str(r.qid) in by_qid]
            result = evaluate_predictions(preds, group, lenient=True, clip_length=self.clip_length)
            out[kind] = {"num_queries": len(group), **result["brief"]}
        return out

    def write_outputs(
        self,
        output_dir: str | Path,
        split: str,
        predictions: Sequence[dict],
        metrics: dict,
        records: Sequence[MomentRecord],
    ) -> tuple[Path, Path]:
        """Write ``preds_<split>.jsonl`` (submission format, in annotation order) and
        ``metrics_<split>.json``; returns both paths."""
        run = RunDir(output_dir)
        run.path.mkdir(parents=True, exist_ok=True)
        by_qid = {str(p["qid"]): p for p in predictions}
        lines = []
        for record in records:
            pred = by_qid.pop(str(record.qid), None)
            if pred is not None:
                head = {"qid": record.qid, "query": record.query, "vid": record.vid}
                lines.append({**head, **{k: v for k, v in pred.items() if k not in _LEADING_KEYS}})
        lines.extend(by_qid.values())  # predictions for unknown qids (only under lenient evaluation)
        preds_path = run.preds(split)
        atomic_write_text(preds_path, "".join(json.dumps(line) + "\n" for line in lines))
        metrics_path = run.metrics(split)
        atomic_write_text(metrics_path, json.dumps(metrics, indent=4))
        return preds_path, metrics_path
