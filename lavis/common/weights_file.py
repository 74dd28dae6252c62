"""Reading trained weights from the files this project writes, for every layer that loads them.

Two formats hold a model's trained tensors (``trained_state.py``: the trainable parameters and
their modules' buffers), both under this project's parameter names:
  - ``checkpoint_*.pt``: what training writes (``runners/checkpoint.py``), a ``torch.save`` zip
    whose ``"model"`` entry is the trainable state dict (next to optimizer, scheduler and RNG
    states in step checkpoints);
  - ``*.safetensors``: what ``python -m lavis.export`` writes (and ``save_weights``), the state
    dict itself.
It lives in ``common/`` because the model (``model.weights.finetuned``), the runner and the
inference entry points all read them, and ``models/`` must not import ``runners/``.

A ``.pt`` is read with ``weights_only=True`` (no code runs while unpickling a file a config
names), allowing only numpy's RNG-state types besides tensors, after checking the CRC-32 that
the zip format stores for every member, so a flipped bit or a truncated file is named as corrupt
instead of loading silently.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lavis.common.errors import UserError
from lavis.common.trained_state import WeightsMismatchError

# What step checkpoints hold besides tensors and plain Python values: numpy's RNG state.
_NUMPY_RNG_TYPES = [np.ndarray, np.dtype, type(np.dtype(np.uint32)), np._core.multiarray._reconstruct]
TRAINING_SUFFIXES = (".pt",)
# The safetensors metadata key that marks our weights files; its value says what the file holds:
# "trainable" (the trained tensors) or "full" (every tensor). The name is the one blip2_mr's
# save_weights has always written, so older files keep loading.
CONTENT_KEY = "blip2_mr"


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that is missing, corrupt or not a checkpoint; the message names the file."""


def verify_checkpoint(path: Path) -> None:
    """Raise ``CheckpointError`` unless every member of the ``torch.save`` zip at ``path`` matches
    the CRC-32 the zip stores for it (the pickled structure and each tensor's bytes)."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:  # truncated or mangled headers
        raise CheckpointError(f"{path}: corrupt checkpoint ({err})") from None
    if bad is not None:
        raise CheckpointError(f"{path}: corrupt checkpoint (checksum mismatch in {bad})")


def read_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """The whole verified content of a ``checkpoint_*.pt``, tensors on the CPU (``"model"``: the
    trainable state dict; ``"best"`` / ``"step"`` / ``"config"`` where training wrote them)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    verify_checkpoint(path)
    try:
        with torch.serialization.safe_globals(_NUMPY_RNG_TYPES):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types; all mean "not ours"
        raise WeightsMismatchError(f"{path}: not a training checkpoint of this project ({err})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
        raise WeightsMismatchError(f"{path}: not a training checkpoint (no 'model' state dict)")
    return obj


def read_trained_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The trained state dict in a ``checkpoint_*.pt`` or an exported ``.safetensors``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path}")
        return load_file(str(path))
    if path.suffix not in TRAINING_SUFFIXES:
        raise WeightsMismatchError(f"{path}: trained weights are a checkpoint_*.pt or a .safetensors file")
    return read_training_checkpoint(path)["model"]


def write_trained_weights(
    state: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None
) -> Path:
    """A ``.safetensors`` of a trained state dict (contiguous CPU copies), marked ``trainable``;
    ``metadata`` (strings) goes into the header beside the mark, e.g. the run and step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    save_file(tensors, str(path), metadata={**(metadata or {}), CONTENT_KEY: "trainable"})
    return path


def weights_metadata(path: str | Path) -> dict[str, str]:
    """The header metadata of a ``.safetensors`` (empty when it has none)."""
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})
