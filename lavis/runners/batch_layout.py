"""How the global batch of an optimizer step is laid out over processes, per-device batches and
gradient accumulation, so that a published recipe trains the same on any number of GPUs.

An experiment states the global batch it was published with (``run.global_batch_size``) and the
largest batch one device takes (``run.batch_size_train``). With ``W`` processes each process
averages ``G / W`` samples per step: in ``A`` micro-batches of ``b = G / (W * A)``, with ``A``
the smallest accumulation for which ``b`` is a whole number no larger than ``batch_size_train``.
Charades-STA's 32 at ``batch_size_train: 8``: 4 GPUs x 8, 8 GPUs x 4, 2 GPUs x 8 x 2 steps,
1 GPU x 8 x 4 steps. A world size that does not divide ``G`` is refused in one line (the global
batch, and with it the schedule, would change). Without ``run.global_batch_size`` the global batch
is whatever ``W x batch_size_train x accum_grad_iters`` gives, and is reported as such.

The run prints its layout, records it in ``metrics.jsonl`` (a ``setup`` record) and in every
checkpoint; a resume on another layout is warned about (the global batch and the schedule are
kept, the order of the rest of the epoch's data is not).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

from lavis.common.typed import ConfigError
from lavis.runners.config import RunConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchLayout:
    """One optimizer step's samples: ``world_size`` processes x ``per_device`` x ``accumulation``."""

    world_size: int
    per_device: int  # samples per forward/backward pass on one device
    accumulation: int  # micro-batches per optimizer step
    derived: bool = False  # from run.global_batch_size (else the config's own batch and accumulation)

    @property
    def global_batch(self) -> int:
        """Samples averaged by one optimizer step, all processes together."""
        return self.world_size * self.per_device * self.accumulation

    @classmethod
    def of(cls, rc: RunConfig, world_size: int) -> BatchLayout:
        """The layout of ``rc`` on ``world_size`` processes (the module doc has the rule); a
        global batch that ``world_size`` processes cannot share exactly is a ``ConfigError``."""
        if rc.global_batch_size is None:
            return cls(world_size, rc.batch_size_train, rc.accum_grad_iters)
        total = rc.global_batch_size
        if total % world_size:
            fits = [n for n in range(1, total + 1) if total % n == 0]
            raise ConfigError(
                f"run.global_batch_size={total} cannot be shared exactly by {world_size} processes (the "
                f"recipe's batch and schedule would change): start {fits} processes (NPROC), or set "
                f"run.global_batch_size to a multiple of {world_size} and adapt the learning rate"
            )
        share = total // world_size
        accumulation = -(-share // rc.batch_size_train)  # ceil: the fewest micro-batches that fit
        while share % accumulation:
            accumulation += 1
        return cls(world_size, share // accumulation, accumulation, derived=True)

    def record(self) -> dict[str, Any]:
        """The layout as the ``setup`` record and checkpoint entry hold it."""
        return {**asdict(self), "global_batch": self.global_batch}

    def describe(self) -> str:
        """``global batch 32 = 8 processes x 4 per device x 1 accumulation step(s)``."""
        source = " (run.global_batch_size)" if self.derived else ""
        return (
            f"global batch {self.global_batch}{source} = {self.world_size} process(es) x {self.per_device} per "
            f"device x {self.accumulation} accumulation step(s)"
        )


def warn_other_layout(saved: Optional[dict[str, Any]], layout: BatchLayout, checkpoint: Path) -> None:
    """Warn when a run resumes ``checkpoint`` (whose layout is ``saved``) with another layout."""
    keys = ("world_size", "per_device", "accumulation")
    if saved is None or all(saved.get(k) == getattr(layout, k) for k in keys):
        return
    was = BatchLayout(*(int(saved[k]) for k in keys))
    logger.warning(
        "%s trained with %s; resuming with %s: %s",
        checkpoint.name,
        was.describe(),
        layout.describe(),
        "the global batch and the schedule are the same, the order of the rest of this epoch's data is not"
        if was.global_batch == layout.global_batch
        else "the global batch changes, and with it what a step means",
    )
