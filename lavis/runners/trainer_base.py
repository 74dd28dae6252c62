"""``TrainerBase``: a run's hooks, the state they see and what they may do (``hooks.Trainer``),
apart from the loop (``runner.RunnerBase``) that drives them."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from lavis.common.config_diff import check_trained_model
from lavis.common.run_dir import RunDir
from lavis.runners.batch_layout import BatchLayout
from lavis.runners.checkpoint import CheckpointManager, load_checkpoint, rng_state
from lavis.runners.hooks import Hook, StepResult
from lavis.runners.signals import StopSignals
from lavis.runners.train_state import TrainState
from lavis.runners.training_plan import TrainingPlan

logger = logging.getLogger(__name__)


class TrainerBase:
    """The hook list and the ``hooks.Trainer`` interface over a config, a strategy and a model
    (wrapped); a subclass sets ``optimizer`` and ``scheduler`` before it saves."""

    def __init__(self, cfg: Any, strategy: Any, model: Any):
        self.cfg, self.run_cfg, self.strategy, self.model = cfg, cfg.run, strategy, model
        self.run_dir = RunDir(self.run_cfg.output_dir)
        self.signals = StopSignals()
        self.optimizer: Any = None
        self.scheduler: Any = None
        self.checkpoints = CheckpointManager(self.run_dir.path, self.run_cfg.keep_last_ckpts)
        self.state = TrainState.fresh(self.run_cfg.valid_metric)
        self.plan: Optional[TrainingPlan] = None
        self.layout: Optional[BatchLayout] = None  # a training run's batches (runner.train sets it)
        self.resumed = False
        self.last_step: Optional[StepResult] = None
        self.epoch_summary: dict[str, Any] = {}
        self.last_checkpoint: Optional[Path] = None  # the newest saved (or resumed-from) checkpoint
        self._saved_at: Optional[tuple[int, bool]] = None  # its (step, epoch_end_pending)
        self._stop_reason: Optional[str] = None
        self.hooks: list[Hook] = []

    def register_hooks(self, hooks: Sequence[Hook]) -> None:
        """Append ``hooks`` to the list called in order (after the built-in and ``run.hooks`` ones)."""
        for hook in hooks:
            hook.trainer = weakref.proxy(self)  # a hook does not keep its runner alive
            self.hooks.append(hook)

    def _call(self, event: str) -> None:
        for hook in self.hooks:
            getattr(hook, event)()

    # The trainer interface (hooks.Trainer) ------------------------------------------------------
    @property
    def is_main(self) -> bool:
        """Whether this process writes the run's files (rank 0)."""
        return self.strategy.is_main

    @property
    def finished(self) -> bool:
        """Whether training ends at this epoch's end: its planned length is reached or a hook asked to
        stop.
        """
        return self.plan is not None and (self.plan.finished(self.state) or self._stop_reason is not None)

    def log(self, record: dict[str, Any]) -> None:
        """Hand ``record`` to every hook's ``on_record`` now (see ``hooks.Trainer.log``)."""
        for hook in self.hooks:
            hook.on_record(record)

    def request_stop(self, reason: str) -> None:
        """End training where the loop next looks; the first reason is kept and logged."""
        if self._stop_reason is None:
            logger.info("training stops at step %d: %s", self.state.step, reason)
            self._stop_reason = reason

    def save_checkpoint(self) -> Optional[Path]:
        """Save the resumable state (collective); see ``hooks.Trainer.save_checkpoint``."""
        point = (self.state.step, self.state.epoch_end_pending)
        if point == self._saved_at:  # e.g. the epoch-end checkpoint this run resumed from
            return self.last_checkpoint
        strategy, scaler = self.strategy, self.strategy.scaler
        checkpoint = {  # collective under FSDP: every rank takes part in gathering the states
            "model": strategy.trainable_state_dict(self.model),
            "optimizer": strategy.optimizer_state_dict(self.model, self.optimizer),
            "scheduler": self.scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler else None,
            "rng": rng_state(),
            "config": self.cfg.to_dict(),
            "layout": self.layout.record() if self.layout else None,
            **self.state.to_checkpoint(),
        }
        if strategy.is_main:
            self.last_checkpoint = self.checkpoints.save_last(checkpoint, self.state.step)
        strategy.barrier()
        self._saved_at = point
        return self.last_checkpoint

    def save_best(self) -> None:
        """Save the trainable weights and ``state.best`` as ``checkpoint_best.pt`` (collective)."""
        best = {"model": self.strategy.trainable_state_dict(self.model), "best": self.state.best}
        if self.strategy.is_main:
            self.checkpoints.save_best({**best, "config": self.cfg.to_dict()})
        self.strategy.barrier()

    def load_weights(self, path: str | Path) -> dict[str, Any]:
        """Load the trained weights of the checkpoint at ``path`` into the model; returns the
        checkpoint.
        """
        state = load_checkpoint(path)
        check_trained_model((state.get("config") or {}).get("model"), self.cfg.to_dict()["model"], str(path))
        self.strategy.load_trainable_state_dict(self.model, state["model"], str(path))
        return state

    def _stop_requested(self) -> Optional[int]:
        """The signal any rank received, agreed on by all ranks (a collective: call it on all)."""
        (signum,) = self.strategy.all_reduce_max([float(self.signals.received or 0)])
        return int(signum) or None
