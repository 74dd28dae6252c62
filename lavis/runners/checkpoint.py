"""Checkpoint files: atomic writes, a checksum verified on every load, best + last-N retention,
RNG state capture.

A checkpoint is one ``torch.save`` file, written atomically (``common.files.atomic_write``: a
crash or ``kill -9`` mid-save leaves the previous checkpoint intact). Integrity: ``torch.save``
writes a zip archive that stores a CRC-32 of every member (the pickled structure and each tensor's
bytes); ``load_checkpoint`` recomputes them all before unpickling (``common.weights_file.
verify_checkpoint``, shared with every other reader of these files), so a
flipped bit or a truncated file is named as corrupt instead of loading silently. The check needs
no sidecar and no change of format: the file stays loadable by plain
``torch.load(path, weights_only=False)``, and checkpoints written before the check existed are
verified too. Every reader that goes through ``load_checkpoint`` gets the check.
"""

from __future__ import annotations

import io
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lavis.common.files import atomic_write_bytes
from lavis.common.run_dir import RunDir
from lavis.common.weights_file import CheckpointError, verify_checkpoint

logger = logging.getLogger(__name__)


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` through a temporary file renamed into place: a crash mid-save
    leaves the previous file whole. Returns ``path``.
    """
    buffer = io.BytesIO()  # serialized in memory: a full disk is then an OSError naming the file
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getbuffer())


def rng_state() -> dict[str, Any]:
    """The Python, NumPy, torch (and CUDA) random states, for a checkpoint."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured (a resumed run continues the same random streams)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder's newest good step checkpoint (warning about each newer
    corrupt one it skips). A corrupt file given by name is an error that names the folder's newest
    good checkpoint, if any."""
    path = Path(path)
    if path.is_dir():
        found, skipped = RunDir(path).newest_good_checkpoint()
        for bad, reason in skipped:
            logger.warning("skipping %s: %s", bad.name, reason)
        if found is None:
            what = f" (corrupt: {', '.join(bad.name for bad, _ in skipped)})" if skipped else ""
            raise CheckpointError(f"{path}: no usable checkpoint_step*.pt{what}")
        if skipped:
            logger.warning("using %s, the newest good checkpoint in %s", found.name, path)
        return found
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        verify_checkpoint(path)
    except CheckpointError as err:
        good = RunDir(path.parent).newest_good_checkpoint()[0]
        hint = f"; the newest good checkpoint there is {good} (or pass the folder)" if good and good != path else ""
        raise CheckpointError(f"{err}{hint}") from None
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The verified contents of a checkpoint file, or of a run folder's newest good step
    checkpoint; ``"model"`` holds the trainable state dict."""
    path = resolve_checkpoint(path)
    try:
        # Our own files: RNG states and numpy arrays need full unpickling.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({err})") from None


class CheckpointManager:
    """Keeps ``checkpoint_best.pt`` and the newest ``keep_last`` ``checkpoint_step<N>.pt``."""

    def __init__(self, output_dir: str | Path, keep_last: int = 2):
        self.run_dir = RunDir(output_dir)
        self.keep_last = max(keep_last, 1)

    def save_last(self, state: dict[str, Any], step: int) -> Path:
        """Save the resumable ``state`` as ``checkpoint_step<step>.pt`` and keep only the newest
        ``keep_last``.
        """
        path = atomic_torch_save(state, self.run_dir.step_checkpoint(step))
        self._prune(step)
        logger.info("saved %s", path)
        return path

    def save_best(self, state: dict[str, Any]) -> Path:
        """Save ``state`` as ``checkpoint_best.pt``."""
        return atomic_torch_save(state, self.run_dir.best_checkpoint)

    def _prune(self, step: int) -> None:
        """Delete all but the newest ``keep_last`` checkpoints up to ``step``. Later steps (a run
        resumed from an earlier checkpoint of its own folder) are left: the run rewrites them when
        it gets there, and until then they are the furthest point it has reached."""
        earlier = [(s, p) for s, p in self.run_dir.step_checkpoints() if s <= step]
        for _, path in earlier[self.keep_last :]:
            path.unlink(missing_ok=True)
