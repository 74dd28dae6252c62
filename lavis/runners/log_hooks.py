"""Hooks that write the run's records (``train``, ``eval`` and ``epoch`` dicts of numbers,
handed to ``on_record`` as they are logged) somewhere: ``metrics.jsonl``, TensorBoard, wandb. Named in
``run.hooks``; ``metrics_jsonl`` is on by default. TensorBoard and wandb are optional extras,
imported when enabled. They act on the main process only; nothing in the model or the task logs.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from lavis.common.files import atomic_write_text, with_filename
from lavis.common.registry import registry
from lavis.runners.hooks import Hook


class RecordWriter(Hook):
    """Writes each record as it is logged, on the main process, between ``before_train`` and
    ``after_train``. Subclasses implement ``open``, ``write`` and ``close``."""

    def __init__(self) -> None:
        self._open = False

    def open(self) -> None:
        """Open the destination (main process, when training starts)."""

    def write(self, record: dict[str, Any]) -> None:
        """Write one logged record."""

    def close(self) -> None:
        """Flush and close the destination."""

    def before_train(self) -> None:
        """Open the destination on the main process."""
        if self.trainer.is_main:
            self.open()
            self._open = True

    def on_record(self, record: dict[str, Any]) -> None:
        """Write ``record`` now, if the destination is open."""
        if self._open:
            self.write(record)

    def after_train(self) -> None:
        """Close the destination (also after a failed or stopped run)."""
        if self._open:
            self.close()
            self._open = False


@registry.register_hook("metrics_jsonl")
class MetricsJsonl(RecordWriter):
    """One JSON object per line in the run's ``metrics.jsonl``, each with the time it was written."""

    def open(self) -> None:
        """Open ``metrics.jsonl`` for appending; a resumed run first drops the records its interrupted
        run wrote after the checkpoint.
        """
        self.path = self.trainer.run_dir.metrics_log
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.trainer.resumed:
            self._drop_redone(self.trainer.state.step, self.trainer.state.epoch_end_pending)
        self._file = open(self.path, "a", buffering=1)  # noqa: SIM115 (open for the run; close() closes it)

    def _drop_redone(self, step: int, epoch_end_pending: bool) -> None:
        """Drop the records the interrupted run wrote after its checkpoint (at ``step``; with
        ``epoch_end_pending`` that step's evaluations and summary too): the resumed run writes
        them again, so each appears once."""
        if not self.path.is_file():
            return
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

    def write(self, record: dict[str, Any]) -> None:
        """One line: the record with the time it was written."""
        try:
            self._file.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")
        except OSError as err:  # a full disk: name the file (a failed write names none)
            raise with_filename(err, self.path) from None

    def close(self) -> None:
        """Close the file (each line was flushed as written)."""
        try:
            self._file.close()
        except OSError as err:
            raise with_filename(err, self.path) from None


def _scalars(record: dict[str, Any]) -> tuple[str, dict[str, float]]:
    """The record's numbers under its TensorBoard/wandb prefix: ``train/``, ``<split>/``."""
    kind = record.get("type")
    prefix = record.get("split", "eval") if kind == "eval" else kind
    skip = {"type", "step", "split", "time"}
    values = {k: v for k, v in record.items() if k not in skip and isinstance(v, (int, float))}
    return str(prefix), values


@registry.register_hook("tensorboard")
class TensorBoard(RecordWriter):
    """``train/*`` and ``<split>/*`` scalars in the run's ``tensorboard/`` folder."""

    def open(self) -> None:
        """A ``SummaryWriter`` on ``<run>/tensorboard`` (needs the ``[tensorboard]`` extra)."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise ImportError("the tensorboard hook needs `pip install -e .[tensorboard]`") from err
        self._writer = SummaryWriter(log_dir=str(self.trainer.run_dir.path / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        """The numbers of a ``train`` or ``eval`` record as scalars at its step."""
        if record.get("type") not in ("train", "eval"):
            return
        prefix, values = _scalars(record)
        for key, value in values.items():
            self._writer.add_scalar(f"{prefix}/{key}", value, record["step"])

    def close(self) -> None:
        """Close the writer."""
        self._writer.close()


@registry.register_hook("wandb")
class Wandb(RecordWriter):
    """wandb; without an API key (or with WANDB_MODE=offline) it logs offline into the run dir."""

    def open(self) -> None:
        """Start a wandb run named after the run folder, with the config (offline without
        ``WANDB_API_KEY``).
        """
        try:
            import wandb
        except ImportError as err:
            raise ImportError("the wandb hook needs `pip install -e .[wandb]`") from err
        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        folder = self.trainer.run_dir.path
        self._run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "sms-moment-retrieval"),
            name=folder.name,
            dir=str(folder),
            config=self.trainer.cfg.to_dict(),
            mode=mode,
        )

    def write(self, record: dict[str, Any]) -> None:
        """The numbers of a ``train`` or ``eval`` record, logged at its step."""
        if record.get("type") not in ("train", "eval"):
            return
        prefix, values = _scalars(record)
        self._run.log({f"{prefix}/{k}": v for k, v in values.items()}, step=record["step"])

    def close(self) -> None:
        """Finish the wandb run."""
        self._run.finish()
