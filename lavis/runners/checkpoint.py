"""Checkpoint files: atomic writes, best + last-N retention, RNG state capture.

A checkpoint is one ``torch.save`` file written to a temporary name in the same folder, flushed
to disk and renamed over the target, so a crash mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

LAST_PATTERN = re.compile(r"^checkpoint_step(\d+)\.pt$")
BEST_NAME = "checkpoint_best.pt"


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
    return path


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"no checkpoint_step*.pt in {path}")
        path = found
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        # Our own files: RNG states and numpy arrays need full unpickling.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise RuntimeError(f"{path}: not a readable checkpoint ({err})") from None


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    steps = [(int(m.group(1)), p) for p in Path(output_dir).glob("checkpoint_step*.pt") if (m := LAST_PATTERN.match(p.name))]
    return max(steps)[1] if steps else None


class CheckpointManager:
    """Keeps ``checkpoint_best.pt`` and the newest ``keep_last`` ``checkpoint_step<N>.pt``."""

    def __init__(self, output_dir: str | Path, keep_last: int = 2):
        self.output_dir = Path(output_dir)
        self.keep_last = max(keep_last, 1)

    def save_last(self, state: dict[str, Any], step: int) -> Path:
        path = atomic_torch_save(state, self.output_dir / f"checkpoint_step{step}.pt")
        self._prune()
        logger.info("saved %s", path)
        return path

    def save_best(self, state: dict[str, Any]) -> Path:
        return atomic_torch_save(state, self.output_dir / BEST_NAME)

    @property
    def best_path(self) -> Path:
        return self.output_dir / BEST_NAME

    def _prune(self) -> None:
        steps = sorted(
            (int(m.group(1)), p) for p in self.output_dir.glob("checkpoint_step*.pt") if (m := LAST_PATTERN.match(p.name))
        )
        for _, path in steps[: -self.keep_last]:
            path.unlink(missing_ok=True)
