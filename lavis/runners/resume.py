"""What a resume checks before it continues a run: a checkpoint that can resume (not weights
only) and a config that is the checkpoint's, except for the keys listed here.

A resumed run must be the same run: the model, the data and the optimisation are those the
checkpoint was trained with. Only the keys that say how long to train, how to log and save, and
where files are may change (README, "Resuming"); any other difference is refused, naming each key
with both values.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from lavis.common.config_diff import config_differences, shown
from lavis.common.errors import UserError
from lavis.common.run_dir import RunDir
from lavis.runners.batch_layout import warn_other_layout
from lavis.runners.checkpoint import load_checkpoint, resolve_checkpoint, set_rng_state
from lavis.runners.train_state import TrainState

logger = logging.getLogger(__name__)

# Keys (fnmatch patterns over dotted paths) a resumed run may change.
RESUMABLE_CHANGES = (
    # How long, how often, where: the run continues, with a new length or new bookkeeping.
    "run.max_epoch",
    "run.max_iters",
    "run.max_minutes",
    "run.valid_every_epochs",
    "run.log_freq",
    "run.hooks",
    "run.keep_last_ckpts",
    "run.save_every_iters",
    "run.output_dir",
    "run.resume_ckpt_path",
    "run.test_splits",
    # Machinery that does not change what is computed for training.
    "run.device",
    "run.num_workers",
    "run.prefetch_factor",
    "run.persistent_workers",
    "run.torch_threads",
    "run.batch_size_eval",
    # Where files are (the same files, moved to another machine or folder).
    "model.weights.*",
    "model.tokenizer.path",
    "datasets.*.root",
    "datasets.*.video_root",
    "datasets.*.cached_features_dir",
    "datasets.*.verify_cached_features",
)


class ResumeError(UserError, ValueError):
    """A checkpoint that cannot continue this run; the message names the file and why."""


def check_resumable(state: Mapping[str, Any], path: Path, current_config: Mapping[str, Any]) -> None:
    """Raise ``ResumeError`` for a weights-only checkpoint or a config that may not change."""
    if "optimizer" not in state or "step" not in state:
        raise ResumeError(
            f"{path} holds weights only (no optimizer, schedule or position in the data), so a run cannot "
            f"resume from it: resume from the run folder ({path.parent}, its newest checkpoint_step*.pt), or "
            f"evaluate it with python -m lavis.evaluate"
        )
    changed = config_differences(state.get("config") or {}, current_config, RESUMABLE_CHANGES)
    if changed:
        raise ResumeError(
            f"{path} was trained with another config, so resuming would not continue that run: {shown(changed)} "
            f"(keys that may change on resume: {', '.join(RESUMABLE_CHANGES)})"
        )


def checkpoint_to_resume(
    path: str, output_dir: Path, current_config: Mapping[str, Any]
) -> Optional[tuple[Path, dict[str, Any]]]:
    """The verified checkpoint ``path`` names (a file, or a folder's newest good one) and its
    contents, checked by ``check_resumable``; None when ``path`` is the run's own folder and it
    holds no step checkpoint yet (a job script may always pass its own ``output_dir``)."""
    if Path(path).resolve() == output_dir.resolve() and not RunDir(output_dir).step_checkpoints():
        logger.warning("%s holds no checkpoint yet: the run starts at step 0", path)
        return None
    ckpt_path = resolve_checkpoint(path)
    saved = load_checkpoint(ckpt_path)
    check_resumable(saved, ckpt_path, current_config)
    return ckpt_path, saved


def restore_training_state(trainer: Any, ckpt_path: Path, saved: Mapping[str, Any]) -> None:
    """Put a verified resumable checkpoint's state into a runner (``runner.RunnerBase``): the
    trainable weights, optimizer, position, schedule, scaler and RNG streams."""
    warn_other_layout(saved.get("layout"), trainer.layout, ckpt_path)
    strategy = trainer.strategy
    strategy.load_trainable_state_dict(trainer.model, saved["model"], str(ckpt_path))
    strategy.load_optimizer_state_dict(trainer.model, trainer.optimizer, saved["optimizer"])
    trainer.state = TrainState.from_checkpoint(saved)  # before the schedule: it reads elapsed
    trainer.scheduler.load_state_dict(saved["scheduler"])
    if strategy.scaler and saved["scaler"]:
        strategy.scaler.load_state_dict(saved["scaler"])
    set_rng_state(saved["rng"])
    trainer.last_checkpoint = ckpt_path
    trainer._saved_at = (trainer.state.step, trainer.state.epoch_end_pending)
    state = trainer.state
    logger.info(
        "resumed from %s at epoch %d, step %d (%.0f s trained)", ckpt_path, state.epoch, state.step, state.elapsed
    )
