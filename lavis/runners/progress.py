"""The training progress bar (main process only): loss, lr, samples/s and ETA."""

from __future__ import annotations

import time

from tqdm.auto import tqdm


class StepProgress:
    """The training progress bar (rank 0): step, loss, learning rate and samples per second."""

    def __init__(self, total_steps: int, start_step: int, enabled: bool):
        self._bar = tqdm(total=total_steps, initial=start_step, disable=not enabled, unit="step", dynamic_ncols=True)
        self._last_time = time.perf_counter()
        self._samples = 0
        self._loss_ema: float | None = None
        self._lr = 0.0
        self._rate = 0.0
        self._interval_loss, self._interval_steps = 0.0, 0
        self._interval_parts: dict[str, float] = {}

    def update(self, step: int, loss: float, lr: float, samples: int, parts: dict[str, float] | None = None) -> None:
        """``parts``: named components of the loss (e.g. ``loss_lm``), logged as interval means too."""
        now = time.perf_counter()
        self._samples += samples
        elapsed = now - self._last_time
        if elapsed >= 1.0:  # a rate over at least a second, not one noisy step
            self._rate = self._samples / elapsed
            self._samples, self._last_time = 0, now
        if loss == loss:  # not NaN
            self._interval_loss += loss
            self._interval_steps += 1
            for name, value in (parts or {}).items():
                self._interval_parts[name] = self._interval_parts.get(name, 0.0) + value
            self._loss_ema = loss if self._loss_ema is None else 0.9 * self._loss_ema + 0.1 * loss
        self._lr = lr
        self._bar.set_postfix(loss=f"{self._loss_ema or 0:.4f}", lr=f"{lr:.2e}", sps=f"{self._rate:.1f}", refresh=False)
        self._bar.update(step - self._bar.n)

    def log_record(self) -> dict[str, float]:
        """Mean loss (and of each of its parts) since the previous record (the bar shows a smoothed
        loss), lr, samples/s."""
        steps = max(self._interval_steps, 1)
        parts = {name: total / steps for name, total in self._interval_parts.items()}
        record = {"loss": self._interval_loss / steps, **parts, "lr": self._lr, "samples_per_s": round(self._rate, 3)}
        self._interval_loss, self._interval_steps, self._interval_parts = 0.0, 0, {}
        return record

    def close(self) -> None:
        """Close the bar."""
        self._bar.close()
