"""The training loop's side effects on the run's state, as hooks: checkpoints and validation.

Unlike the logging hooks (``hooks.py``, main process only), these run on every process: saving
gathers sharded states and validation predicts on every rank. The runner calls them in order,
``after_step`` after each optimizer step and ``at_epoch_end`` when an epoch (or the training)
ends; at an epoch's end the checkpoint comes first, so a validation that fails, or a signal that
arrives during it, never costs the epoch's training.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Protocol

from lavis.runners.checkpoint import CheckpointManager, rng_state
from lavis.runners.config import RunConfig
from lavis.runners.train_state import TrainState
from lavis.runners.training_plan import epoch_summary

logger = logging.getLogger(__name__)


class Loop(Protocol):
    """What the hooks use of the runner (``RunnerBase``)."""

    cfg: Any  # ExperimentConfig
    run_cfg: RunConfig
    output_dir: Path
    strategy: Any
    model: Any
    optimizer: Any
    scheduler: Any
    hooks: list[Any]  # the logging hooks (hooks.py)
    train_data: Any

    def split(self, split: str) -> dict[str, Any]: ...

    def evaluate(self, splits: list[str], step: int) -> dict[str, dict]: ...

    def valid_score(self, results: dict[str, dict]) -> Optional[float]: ...


class LoopHook:
    def after_step(self, state: TrainState) -> None: ...

    def at_epoch_end(self, state: TrainState, finished: bool) -> None: ...


class CheckpointHook(LoopHook):
    """``checkpoint_step<N>.pt`` every ``run.save_every_iters`` steps, at each epoch's end and
    when a signal stops the run (``save``); the newest ``run.keep_last_ckpts`` are kept."""

    def __init__(self, runner: Loop):
        self.runner = runner
        self.manager = CheckpointManager(runner.output_dir, runner.run_cfg.keep_last_ckpts)
        self.last_saved: Optional[Path] = None

    def after_step(self, state: TrainState) -> None:
        every = self.runner.run_cfg.save_every_iters
        if every and state.step % every == 0:
            self.save(state)

    def at_epoch_end(self, state: TrainState, finished: bool) -> None:
        self.save(state)

    def save(self, state: TrainState) -> Optional[Path]:
        runner, strategy = self.runner, self.runner.strategy
        scaler = strategy.scaler
        checkpoint = {  # collective under FSDP: every rank takes part in gathering the states
            "model": strategy.trainable_state_dict(runner.model),
            "optimizer": strategy.optimizer_state_dict(runner.model, runner.optimizer),
            "scheduler": runner.scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler else None,
            "rng": rng_state(),
            "config": runner.cfg.to_dict(),
            **state.to_checkpoint(),
        }
        if strategy.is_main:
            self.last_saved = self.manager.save_last(checkpoint, state.step)
        strategy.barrier()
        return self.last_saved


class ValidationHook(LoopHook):
    """Validates on ``run.valid_splits`` when due (every ``run.valid_every_epochs`` epochs and when
    training ends) and keeps the best weights by ``run.valid_metric`` in ``checkpoint_best.pt``."""

    def __init__(self, runner: Loop):
        self.runner = runner
        self.last_score: Optional[float] = None

    def at_epoch_end(self, state: TrainState, finished: bool) -> None:
        runner, rc = self.runner, self.runner.run_cfg
        self.last_score = None
        due = finished or (rc.valid_every_epochs > 0 and state.epoch % rc.valid_every_epochs == 0)
        if not due or not rc.valid_splits or not any(runner.split(s) for s in rc.valid_splits):
            return
        score = runner.valid_score(runner.evaluate(rc.valid_splits, state.step))
        self.last_score = score
        if score is None or (state.best["value"] is not None and score <= state.best["value"]):
            return
        state.best = {"metric": rc.valid_metric, "value": score, "step": state.step, "epoch": state.epoch}
        best: dict[str, Any] = {
            "model": runner.strategy.trainable_state_dict(runner.model),
            "best": state.best,
            "config": runner.cfg.to_dict(),
        }
        if runner.strategy.is_main:
            CheckpointManager(runner.output_dir).save_best(best)
        runner.strategy.barrier()


class EpochSummaryHook(LoopHook):
    """The epoch's summary line (after its validation) to the log and the logging hooks; the
    epoch's end is then done (``epoch_end_pending`` cleared, the sums reset)."""

    def __init__(self, runner: Loop, validation: ValidationHook):
        self.runner, self.validation = runner, validation

    def at_epoch_end(self, state: TrainState, finished: bool) -> None:
        runner = self.runner
        parts = getattr(runner.train_data, "datasets", [runner.train_data])
        summary = epoch_summary(state, self.validation.last_score, runner.strategy, parts)
        state.epoch_end_pending = False
        state.reset_stats()
        if runner.strategy.is_main:
            logger.info("epoch %d: %s", state.epoch, summary)
            for hook in runner.hooks:
                hook.on_epoch_end(state.epoch, summary)
