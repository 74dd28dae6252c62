"""Where a training run is: everything a checkpoint needs to continue it exactly.

The loop advances ``step`` (optimizer steps) and ``batches_done`` (batches of this epoch drawn
from the sampler, so a mid-epoch resume skips exactly those); an epoch ends when
``batches_done`` reaches the epoch's length. ``elapsed`` is the training time across resumes
(``run.max_minutes`` and its time-driven schedule continue from it). ``epoch_end_pending``
marks the end-of-epoch checkpoint, saved before that epoch's validation and summary: a run
resumed from it does those first. ``stats`` are the epoch's sums for its summary line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class EpochStats:
    """Sums over the current epoch, for its summary line."""

    loss_sum: float = 0.0
    steps: int = 0
    skipped_videos: int = 0
    without_audio: int = 0  # an audio model's samples whose video has no audio stream (masked)
    nonfinite_steps: int = 0
    start_elapsed: float = 0.0  # TrainState.elapsed when the epoch began


@dataclass
class TrainState:
    """Where the run is (see the module docstring); a checkpoint saves it and a resume restores it."""

    epoch: int = 0
    step: int = 0
    batches_done: int = 0
    best: dict[str, Any] = field(default_factory=dict)
    elapsed: float = 0.0
    epoch_end_pending: bool = False
    stats: EpochStats = field(default_factory=EpochStats)
    stop_signal: Optional[int] = None  # set (on every rank) when a SIGTERM/SIGINT was received

    @classmethod
    def fresh(cls, valid_metric: str) -> TrainState:
        """The state of a new run whose best checkpoint will be picked by ``valid_metric``."""
        return cls(best={"metric": valid_metric, "value": None, "step": None})

    def to_checkpoint(self) -> dict[str, Any]:
        """The entries a checkpoint stores (the older flat keys, so older checkpoints resume)."""
        return {
            "epoch": self.epoch,
            "step": self.step,
            "batches_done": self.batches_done,
            "best": self.best,
            "elapsed": self.elapsed,
            "epoch_end_pending": self.epoch_end_pending,
            "epoch_stats": dataclasses.asdict(self.stats),
        }

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any]) -> TrainState:
        """The state a checkpoint saved (``to_checkpoint``; older checkpoints lack the later keys)."""
        return cls(
            epoch=state["epoch"],
            step=state["step"],
            batches_done=state["batches_done"],
            best=state["best"],
            elapsed=float(state.get("elapsed", 0.0)),
            epoch_end_pending=bool(state.get("epoch_end_pending", False)),
            stats=EpochStats(**state.get("epoch_stats", {})),
        )

    def reset_stats(self) -> None:
        """Start the sums of a new epoch."""
        self.stats = EpochStats(start_elapsed=self.elapsed)
