"""One family of hooks: everything a run does besides optimizing (checkpoints, validation, the
epoch summary, the progress bar, metrics.jsonl, TensorBoard, wandb, early stopping, an EMA).

The runner (``runner.RunnerBase``) keeps a list of hooks and calls them in order, knowing
nothing of what each does. Its loop, in pseudo-code::

    for hook in hooks: hook.trainer = trainer          # register_hooks
    resume (when asked), then before_train()            # state is the resumed one here
    while training is not finished:
        before_epoch()
        for each optimizer step:
            before_step()
            forward, backward, optimizer and schedule step  -> trainer.last_step
            after_step()                                # a signal then stops the run (saved)
        when the epoch (or the training) ends:
            after_epoch()                               # the epoch's state is saved first
    test the best checkpoint
    after_train()                                       # also when the run fails or stops

    and whenever a hook or the runner calls trainer.log(record): on_record(record)

``on_record`` is called at once, so a record is written before anything that follows it (a
step's ``train`` record is on disk before that step's checkpoint: a run killed in between and
resumed has each step's record once).

Every hook runs on every process (saving and validation are collectives); a hook with a side
effect of one process (a file, a bar) acts where ``trainer.is_main``. The built-in hooks come
first, in this order: ``ProgressHook`` (the bar and the ``train`` records), ``CheckpointHook``,
``ValidationHook``, ``EpochSummaryHook``; then those named in ``run.hooks`` (registered with
``@registry.register_hook(name)``: ``metrics_jsonl``, ``tensorboard``, ``wandb``, or a module of
your own, imported before the run starts). ``docs/extending.md`` shows one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol

from lavis.common.run_dir import RunDir
from lavis.runners.train_state import TrainState
from lavis.runners.training_plan import TrainingPlan


@dataclass(frozen=True)
class StepResult:
    """What one optimizer step gave (``trainer.last_step``)."""

    loss: float  # mean over ranks; NaN/inf when the step was skipped
    parts: dict[str, float]  # the loss's named parts (e.g. loss_lm, loss_saliency), this rank's
    lr: float  # the schedule's base learning rate after the step
    samples: int  # samples of the step, all ranks


class Trainer(Protocol):
    """What a hook may use of the run (``RunnerBase`` implements it).

    Read: ``cfg`` (the ``ExperimentConfig``; ``cfg.run`` holds the run's settings), ``run_dir``,
    ``is_main``, ``state`` (step, epoch, elapsed seconds, ``best``), ``plan`` (the run's length;
    None in an evaluation-only run), ``resumed`` (the run continued from a checkpoint: ``state``
    is that checkpoint's at ``before_train``), ``last_step``, ``finished`` (training ends at
    this epoch's end), ``epoch_summary`` (the epoch's line, during ``after_epoch``: a hook may
    add its numbers), ``model`` (the model being trained, wrapped by the strategy). Do: the methods below; those marked collective must
    be called on every process alike.
    """

    cfg: Any
    run_dir: RunDir
    is_main: bool
    state: TrainState
    plan: Optional[TrainingPlan]
    resumed: bool
    last_step: Optional[StepResult]
    finished: bool
    epoch_summary: dict[str, Any]
    model: Any

    def log(self, record: dict[str, Any]) -> None:
        """Hand a record (``{"type": "train" | "eval" | "epoch" | <yours>, ...}``) to every hook's
        ``on_record`` (the writers: metrics.jsonl, TensorBoard, wandb), now."""

    def evaluate(self, splits: list[str]) -> dict[str, dict]:
        """Collective: predict and score ``splits`` now (files written, ``eval`` records logged);
        ``{split name: metrics}``."""

    def save_checkpoint(self) -> Optional[Path]:
        """Collective: save the resumable state as ``checkpoint_step<N>.pt`` (a no-op when the
        newest checkpoint holds exactly this state); its path on the main process."""

    def save_best(self) -> None:
        """Collective: save the current weights and ``state.best`` as ``checkpoint_best.pt``."""

    def request_stop(self, reason: str) -> None:
        """End training where the loop next looks (after this step, or at this epoch's end), as
        if its length were reached: the epoch's end, the best checkpoint's test and the files
        follow. Ask on every process alike."""


class Hook:
    """The base of every hook; override the events you need (the module doc has the loop).
    ``trainer`` is set when the runner registers the hook."""

    trainer: Trainer

    def before_train(self) -> None:
        """Training starts (after a resume: ``trainer.state`` is the checkpoint's)."""

    def after_train(self) -> None:
        """The run ends: after the final test, or when it fails or is stopped (close files here)."""

    def before_epoch(self) -> None:
        """An epoch starts."""

    def after_epoch(self) -> None:
        """An epoch (or the training) ended; its state is saved; ``trainer.epoch_summary`` is open."""

    def before_step(self) -> None:
        """An optimizer step (all its micro-batches) is about to run."""

    def after_step(self) -> None:
        """An optimizer step ran; ``trainer.last_step`` holds its loss, parts, lr and samples."""

    def on_record(self, record: dict[str, Any]) -> None:
        """A record was logged (``trainer.log``); writers write it."""
