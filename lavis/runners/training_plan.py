"""How long a training run is (steps, epochs, time budget) and the summary line of each epoch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from lavis.common.typed import ConfigError
from lavis.runners.batch_layout import BatchLayout
from lavis.runners.config import RunConfig
from lavis.runners.train_state import TrainState


@dataclass(frozen=True)
class TrainingPlan:
    """The run's length: batches per optimizer step, steps per epoch, total steps and the time budget."""

    batches_per_step: int  # run.accum_grad_iters
    steps_per_epoch: int  # optimizer steps per epoch (per process: its share of the samples)
    total_steps: int  # run.max_iters, else run.max_epoch epochs
    budget_s: Optional[float]  # run.max_minutes in seconds

    @classmethod
    def of(cls, rc: RunConfig, num_samples: int, samples_per_process: int, layout: BatchLayout) -> TrainingPlan:
        """The plan of ``rc`` for this process's share of ``num_samples`` training samples, in
        ``layout``'s batches; too few samples for one optimizer step is a ``ConfigError`` naming
        the batch settings."""
        batches = samples_per_process // layout.per_device
        steps = batches // layout.accumulation
        if steps == 0:
            raise ConfigError(
                f"{num_samples} training samples are too few for run.batch_size_train={rc.batch_size_train}: "
                f"one step takes {layout.describe()}"
            )
        total = rc.max_iters or rc.max_epoch * steps
        return cls(layout.accumulation, steps, total, rc.max_minutes * 60 if rc.max_minutes else None)

    def epoch_done(self, state: TrainState) -> bool:
        """Whether ``state`` has drawn every batch of its epoch."""
        return state.batches_done >= self.steps_per_epoch * self.batches_per_step

    def finished(self, state: TrainState) -> bool:
        """max_iters / max_epoch reached, or the time budget spent (both may end mid-epoch)."""
        return state.step >= self.total_steps or (self.budget_s is not None and state.elapsed >= self.budget_s)


def epoch_summary(state: TrainState, strategy: Any, train_parts: Sequence[Any]) -> dict[str, Any]:
    """The epoch's line in metrics.jsonl (a collective): train loss, skipped videos and
    non-finite steps (all ranks), seconds, and the training annotations' windows that were
    outside their video or of zero length, and records without a window (clipped or dropped
    when the dataset was built). The validation hook
    adds ``valid_score`` when it validated."""
    stats = state.stats
    summary: dict[str, Any] = {
        "step": state.step,
        "train_loss": stats.loss_sum / max(stats.steps, 1),
        "skipped_videos": int(round(strategy.all_reduce_mean(stats.skipped_videos) * strategy.world_size)),
        "nonfinite_steps": stats.nonfinite_steps,
        "videos_without_audio": int(round(strategy.all_reduce_mean(stats.without_audio) * strategy.world_size)),
        "seconds": round(state.elapsed - stats.start_elapsed, 2),
    }
    repairs = [r for r in (getattr(part, "window_repairs", None) for part in train_parts) if r is not None]
    for repair in repairs:
        for key, count in repair.summary().items():
            summary[key] = summary.get(key, 0) + count
    return summary
