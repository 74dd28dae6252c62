"""A project of one's own that extends SMS-LAVIS without editing it (``docs/extending.md``): a
fusion, a dataset, a metric and a hook, each registered by name when this module is imported.
``tests/test_extending.py`` imports it and trains with all four."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from lavis.common.registry import registry
from lavis.common.windows import temporal_iou
from lavis.datasets.builders import MomentRetrievalBuilder
from lavis.datasets.dataset_config import MomentDatasetConfig
from lavis.datasets.schema import MomentRecord
from lavis.models.fusion.base import Fusion
from lavis.models.fusion.config import GATE_INIT, FusionConfig
from lavis.runners.hooks import Hook
from lavis.tasks.metric_names import MetricFamily, register_metric_family
from lavis.tasks.moment_retrieval import MomentRetrievalTask


# A fusion: `model.fusion: {name: scaled_add, gate_init: 0.1}`.
@dataclass
class ScaledAddConfig(FusionConfig):
    """``model.fusion`` keys of ``scaled_add``."""

    name: str = "scaled_add"
    gate_init: float = GATE_INIT  # the audio's share at the start of training


@registry.register_fusion("scaled_add")
class ScaledAddFusion(Fusion):
    """Each frame's tokens plus a gated projection of its audio embedding, ``[N, Q, D]``."""

    config_class = ScaledAddConfig

    def __init__(self, cfg: ScaledAddConfig, dim: int, audio_dim: int):
        super().__init__(dim, audio_dim)
        self.proj = nn.Linear(audio_dim, dim)
        self.gate = nn.Parameter(torch.full((1,), float(cfg.gate_init)))  # [1], not a scalar: FSDP2 shards it

    def fuse(self, video: Tensor, audio: Tensor) -> Tensor:
        return video + (self.gate * self.proj(audio))[:, None, :].to(video.dtype)


# A dataset: `datasets: csv_moments: {root: ..., delimiter: ";"}`.
@dataclass
class CsvMomentsConfig(MomentDatasetConfig):
    """Moments listed in CSV files with the columns qid, vid, duration, start, end, query."""

    root: str = "data/csv_moments"
    delimiter: str = ","


@registry.register_builder("csv_moments")
class CsvMomentsBuilder(MomentRetrievalBuilder):
    config_class = CsvMomentsConfig

    def read_records(self, path: Path) -> list[MomentRecord]:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter=self.cfg.delimiter))
        return [
            MomentRecord(
                qid=row["qid"],
                vid=row["vid"],
                query=row["query"],
                duration=float(row["duration"]),
                windows=[(float(row["start"]), float(row["end"]))],
            )
            for row in rows
        ]


# A metric: `run.task: moment_retrieval_with_overlap` (and `run.valid_metric: AnyOverlap@1` to
# choose the best checkpoint by it: the name is declared once, as a metric family, so the config
# check at load time accepts it).
ANY_OVERLAP = register_metric_family(
    MetricFamily("any_overlap", ("AnyOverlap@1",), "with run.task: moment_retrieval_with_overlap")
)


@registry.register_task("moment_retrieval_with_overlap")
class WithAnyOverlap(MomentRetrievalTask):
    """The moment-retrieval metrics plus ``AnyOverlap@1``: the share of queries (in %) whose best
    window overlaps a ground-truth window at all."""

    def evaluate(self, predictions: Sequence[dict], records: Sequence[MomentRecord], skipped_videos: int = 0) -> dict:
        metrics = super().evaluate(predictions, records, skipped_videos)
        best = {str(p["qid"]): p["pred_relevant_windows"][:1] for p in predictions}
        hits = [any(temporal_iou(w[:2], gt) > 0 for w in best.get(str(r.qid), []) for gt in r.windows) for r in records]
        metrics["brief"][ANY_OVERLAP.keys[0]] = 100.0 * sum(hits) / max(len(hits), 1)
        return metrics


# A hook: `run.hooks: [metrics_jsonl, stop_after_steps]`.
@registry.register_hook("stop_after_steps")
class StopAfterSteps(Hook):
    """Ends training after ``steps`` optimizer steps (an early stop of the simplest kind)."""

    steps = 2

    def after_step(self) -> None:
        if self.trainer.state.step >= self.steps:
            self.trainer.request_stop(f"stop_after_steps: {self.steps} steps done")
