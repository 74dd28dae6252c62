"""The built-in hooks that keep a run's state: checkpoints, validation and the best checkpoint,
the epoch's summary; and ``build_hooks``, the list a runner calls (``hooks.py`` has the loop).

At an epoch's end the checkpoint comes first, so a validation that fails, or a signal that
arrives during it, never costs the epoch's training; a run resumed from that checkpoint
(``epoch_end_pending``) does the epoch's end again, and the save is then a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Optional

import numpy as np

from lavis.common.registry import registry
from lavis.common.typed import ConfigError
from lavis.runners.hooks import Hook
from lavis.runners.progress import ProgressHook

logger = logging.getLogger(__name__)


class CheckpointHook(Hook):
    """``checkpoint_step<N>.pt`` every ``run.save_every_iters`` steps and at each epoch's end
    (the newest ``run.keep_last_ckpts`` are kept; a stop signal saves too, in the runner)."""

    def after_step(self) -> None:
        """Save a resumable checkpoint every ``run.save_every_iters`` steps."""
        every = self.trainer.cfg.run.save_every_iters
        if every and self.trainer.state.step % every == 0:
            self.trainer.save_checkpoint()

    def after_epoch(self) -> None:
        """Save a resumable checkpoint at the epoch's end (before its validation)."""
        self.trainer.save_checkpoint()


class ValidationHook(Hook):
    """Validates on ``run.valid_splits`` when due (every ``run.valid_every_epochs`` epochs and when
    training ends), adds ``valid_score`` to the epoch's summary and keeps the best weights by
    ``run.valid_metric`` in ``checkpoint_best.pt``."""

    def after_epoch(self) -> None:
        """When due, validate, record ``valid_score`` and save the best weights if the score improved."""
        trainer, rc = self.trainer, self.trainer.cfg.run
        state = trainer.state
        due = trainer.finished or (rc.valid_every_epochs > 0 and state.epoch % rc.valid_every_epochs == 0)
        if not due or not rc.valid_splits:
            return
        results = trainer.evaluate(rc.valid_splits)
        score = self.score(results)
        if score is None:
            return
        trainer.epoch_summary["valid_score"] = score
        if state.best["value"] is not None and score <= state.best["value"]:
            return
        state.best = {"metric": rc.valid_metric, "value": score, "step": state.step, "epoch": state.epoch}
        trainer.save_best()

    def score(self, results: dict[str, dict]) -> Optional[float]:
        """The mean of ``run.valid_metric`` over the validated splits (None: nothing validated)."""
        key = self.trainer.cfg.run.valid_metric
        scores = [m["brief"][key] for m in results.values() if key in m.get("brief", {})]
        if results and not scores:
            valid = sorted(next(iter(results.values())).get("brief", {}))
            raise ConfigError(f"run.valid_metric {key!r} is not in the evaluator's brief: {valid}")
        return float(np.mean(scores)) if scores else None


class EpochSummaryHook(Hook):
    """The epoch's summary line (after its validation) to the log and as an ``epoch`` record."""

    def after_epoch(self) -> None:
        """Log the epoch's summary line and write it as an ``epoch`` record."""
        trainer = self.trainer
        if trainer.is_main:
            logger.info("epoch %d: %s", trainer.state.epoch, trainer.epoch_summary)
            trainer.log({"type": "epoch", "epoch": trainer.state.epoch, **trainer.epoch_summary})


def build_hooks(names: Sequence[str]) -> list[Hook]:
    """The built-in hooks, in order, then the registered hooks ``names`` (``run.hooks``)."""
    if len(set(names)) != len(names):
        raise ConfigError(f"run.hooks names a hook twice: {list(names)}")
    builtin: list[Hook] = [ProgressHook(), CheckpointHook(), ValidationHook(), EpochSummaryHook()]
    return builtin + [registry.get("hook", name)() for name in names]
