"""The progress hook: the training bar (main process) and a ``train`` record every
``run.log_freq`` optimizer steps.

A run of a fixed length shows its steps of the total and tqdm's ETA. A time-budget run
(``run.max_minutes``) ends when its time does, whatever the step count, so its bar shows the
training time (across resumes) of the budget and the time left::

    training:  61%|██████    | 03:40/06:00 trained, 02:20 left, step 2349, loss=0.4100, lr=1.00e-03, sps=52.1
"""

from __future__ import annotations

import time
from typing import Any, Optional

from tqdm.auto import tqdm

from lavis.runners.hooks import Hook, StepResult


class StepMeter:
    """The numbers of the bar and of the ``train`` record: a smoothed loss for the bar, the
    interval's mean loss (and parts) for the record, lr and samples/s."""

    def __init__(self) -> None:
        self._last_time = time.perf_counter()
        self._samples = 0
        self.loss_ema: Optional[float] = None
        self.lr = 0.0
        self.rate = 0.0
        self._interval_loss, self._interval_steps = 0.0, 0
        self._interval_parts: dict[str, float] = {}

    def add(self, step: StepResult) -> None:
        """Count one optimizer step: its samples (for samples/s), its loss and parts (for the
        interval's means and the bar's smoothed loss) and its lr.
        """
        now = time.perf_counter()
        self._samples += step.samples
        elapsed = now - self._last_time
        if elapsed >= 1.0:  # a rate over at least a second, not one noisy step
            self.rate = self._samples / elapsed
            self._samples, self._last_time = 0, now
        if step.loss == step.loss:  # not NaN
            self._interval_loss += step.loss
            self._interval_steps += 1
            for name, value in step.parts.items():
                self._interval_parts[name] = self._interval_parts.get(name, 0.0) + value
            self.loss_ema = step.loss if self.loss_ema is None else 0.9 * self.loss_ema + 0.1 * step.loss
        self.lr = step.lr

    def record(self) -> dict[str, float]:
        """Mean loss (and of each of its parts) since the previous record, lr, samples/s."""
        steps = max(self._interval_steps, 1)
        parts = {name: total / steps for name, total in self._interval_parts.items()}
        record = {"loss": self._interval_loss / steps, **parts, "lr": self.lr, "samples_per_s": round(self.rate, 3)}
        self._interval_loss, self._interval_steps, self._interval_parts = 0.0, 0, {}
        return record

    def postfix(self) -> str:
        """The bar's text: smoothed loss, learning rate, samples per second."""
        return f"loss={self.loss_ema or 0:.4f}, lr={self.lr:.2e}, sps={self.rate:.1f}"


class ProgressHook(Hook):
    """The bar and the ``train`` records (see the module doc)."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._meter = StepMeter()
        self._budget: Optional[float] = None

    def before_train(self) -> None:
        """Open the bar: elapsed of the time budget (``run.max_minutes``) or steps of the planned
        total; nothing in an evaluation-only run.
        """
        trainer = self.trainer
        if trainer.plan is None:  # an evaluation: no training to show
            return
        disable = not trainer.is_main
        self._budget = trainer.plan.budget_s
        if self._budget:
            start = min(trainer.state.elapsed, self._budget)
            self._bar = tqdm(total=self._budget, initial=start, disable=disable, dynamic_ncols=True)
            self._show_budget()
        else:
            total, start = trainer.plan.total_steps, trainer.state.step
            self._bar = tqdm(total=total, initial=start, disable=disable, unit="step", dynamic_ncols=True)

    def after_step(self) -> None:
        """Advance the bar; every ``run.log_freq`` steps log a ``train`` record with the interval's
        means.
        """
        trainer, state = self.trainer, self.trainer.state
        self._meter.add(trainer.last_step)
        if self._budget:
            self._show_budget()
        else:
            self._bar.set_postfix_str(self._meter.postfix(), refresh=False)
            self._bar.update(state.step - self._bar.n)
        if trainer.is_main and state.step % trainer.cfg.run.log_freq == 0:
            trainer.log({"type": "train", "step": state.step, **self._meter.record()})

    def _show_budget(self) -> None:
        """Time trained of the budget and time left (tqdm's own clock restarts on resume, and its
        rate-based ETA would be the steps', not the budget's)."""
        elapsed = min(self.trainer.state.elapsed, self._budget)
        show = tqdm.format_interval
        text = f"{show(elapsed)}/{show(self._budget)} trained, {show(self._budget - elapsed)} left, "
        text += f"step {self.trainer.state.step}, {self._meter.postfix()}"
        self._bar.bar_format = "training: {percentage:3.0f}%|{bar}| " + text.replace("{", "{{").replace("}", "}}")
        self._bar.update(elapsed - self._bar.n)

    def after_train(self) -> None:
        """Close the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
