"""Side effects of a run, one hook each: metrics.jsonl, TensorBoard, wandb.

The runner calls hooks on the main process only. A hook sees plain dicts of numbers; nothing in
the model or the task logs. TensorBoard and wandb are optional extras, imported when enabled.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from lavis.common.files import atomic_write_text
from lavis.common.registry import registry


class Hook:
    def __init__(self, output_dir: Path, config: dict[str, Any]):
        self.output_dir = output_dir

    def on_train_step(self, step: int, logs: dict[str, float]) -> None: ...

    def on_evaluation(self, step: int, split: str, metrics: dict[str, float]) -> None: ...

    def on_epoch_end(self, epoch: int, summary: dict[str, Any]) -> None: ...

    def on_resume(self, step: int, epoch_end_pending: bool) -> None:
        """The run continues from a checkpoint at ``step`` (``epoch_end_pending``: saved at an
        epoch's end before its validation and summary, which the run does again)."""

    def close(self) -> None: ...


@registry.register_hook("metrics_jsonl")
class MetricsJsonl(Hook):
    """One JSON object per line in ``<output_dir>/metrics.jsonl``: train logs, evaluations, epochs."""

    def __init__(self, output_dir: Path, config: dict[str, Any]):
        super().__init__(output_dir, config)
        output_dir.mkdir(parents=True, exist_ok=True)
        self.path = output_dir / "metrics.jsonl"
        self._file = open(self.path, "a", buffering=1)  # noqa: SIM115 (open for the run; close() closes it)

    def on_resume(self, step, epoch_end_pending):
        """Drop the records the interrupted run wrote after its checkpoint: the resumed run writes
        them again (so each step appears once)."""
        self._file.close()
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill mid-write
                continue
            at = record.get("step")
            redone = at is not None and (
                at > step or (at == step and epoch_end_pending and record.get("type") != "train")
            )
            if not redone:
                kept.append(line + "\n")
        atomic_write_text(self.path, "".join(kept))
        self._file = open(self.path, "a", buffering=1)  # noqa: SIM115 (as in __init__)

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")

    def on_train_step(self, step, logs):
        self._write({"type": "train", "step": step, **logs})

    def on_evaluation(self, step, split, metrics):
        self._write({"type": "eval", "step": step, "split": split, **metrics})

    def on_epoch_end(self, epoch, summary):
        self._write({"type": "epoch", "epoch": epoch, **summary})

    def close(self):
        self._file.close()


@registry.register_hook("tensorboard")
class TensorBoard(Hook):
    def __init__(self, output_dir: Path, config: dict[str, Any]):
        super().__init__(output_dir, config)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise ImportError("the tensorboard hook needs `pip install -e .[tensorboard]`") from err
        self._writer = SummaryWriter(log_dir=str(output_dir / "tensorboard"))

    def on_train_step(self, step, logs):
        for key, value in logs.items():
            self._writer.add_scalar(f"train/{key}", value, step)

    def on_evaluation(self, step, split, metrics):
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                self._writer.add_scalar(f"{split}/{key}", value, step)

    def close(self):
        self._writer.close()


@registry.register_hook("wandb")
class Wandb(Hook):
    """wandb; without an API key (or with WANDB_MODE=offline) it logs offline into the run dir."""

    def __init__(self, output_dir: Path, config: dict[str, Any]):
        super().__init__(output_dir, config)
        try:
            import wandb
        except ImportError as err:
            raise ImportError("the wandb hook needs `pip install -e .[wandb]`") from err
        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        self._run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "sms-moment-retrieval"),
            name=output_dir.name,
            dir=str(output_dir),
            config=config,
            mode=mode,
        )

    def on_train_step(self, step, logs):
        self._run.log({f"train/{k}": v for k, v in logs.items()}, step=step)

    def on_evaluation(self, step, split, metrics):
        self._run.log({f"{split}/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}, step=step)

    def close(self):
        self._run.finish()


def build_hooks(names: list[str], output_dir: Path, config: dict[str, Any]) -> list[Hook]:
    return [registry.get("hook", name)(output_dir, config) for name in names]
