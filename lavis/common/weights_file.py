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

Both are verified before anything is loaded, so a flipped bit or a cut file is named as corrupt
instead of loading silently (``verify_weights_file``, the one verifier of both):
  - a ``.pt`` by the CRC-32 the zip format stores for every member, then read with
    ``weights_only=True`` (no code runs while unpickling a file a config names), allowing only
    numpy's RNG-state types besides tensors;
  - a ``.safetensors`` by its size against what its header describes (a cut file) and by the
    SHA-256 of its tensor bytes, which ``write_trained_weights`` stores in the header
    (``data_sha256``); an exported folder's card also records the whole file's SHA-256
    (``file_sha256``), checked when the folder is loaded (``lavis.inference.loading``).
Both are written atomically (``common.files``), serialized in memory first, so a full disk is an
``OSError`` naming the file and leaves the previous file whole.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from lavis.common.errors import UserError
from lavis.common.files import atomic_write_bytes, not_a_file
from lavis.common.trained_state import WeightsMismatchError

# What step checkpoints hold besides tensors and plain Python values: numpy's RNG state.
_NUMPY_RNG_TYPES = [np.ndarray, np.dtype, type(np.dtype(np.uint32)), np._core.multiarray._reconstruct]
TRAINING_SUFFIXES = (".pt",)
# The safetensors metadata key that marks our weights files; its value says what the file holds:
# "trainable" (the trained tensors) or "full" (every tensor). The name is the one blip2_mr's
# save_weights has always written, so older files keep loading.
CONTENT_KEY = "blip2_mr"
DIGEST_KEY = "data_sha256"  # the header's SHA-256 of the tensor bytes (files written since it existed)


# What a folder given as a weights file is told: the options that take a folder.
FOLDER_HINT = " (a run's or an export's folder goes to --run-dir / load_model(run_dir))"


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
    problem = not_a_file(path, "checkpoint", FOLDER_HINT)
    if problem:
        raise CheckpointError(problem)
    verify_checkpoint(path)
    try:
        with torch.serialization.safe_globals(_NUMPY_RNG_TYPES):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types; all mean "not ours"
        raise WeightsMismatchError(f"{path}: not a training checkpoint of this project ({err})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
        raise WeightsMismatchError(f"{path}: not a training checkpoint (no 'model' state dict)")
    return obj


def file_sha256(path: str | Path) -> str:
    """The SHA-256 hex digest of a file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _data_start(data: bytes) -> int:
    """Where a safetensors file's tensor bytes start (after its length field and JSON header)."""
    return 8 + int.from_bytes(data[:8], "little")


def verify_safetensors(path: Path, data: bytes) -> dict[str, str]:
    """Raise ``CheckpointError`` unless ``data`` (the bytes of the ``.safetensors`` at ``path``) is
    whole: a header that parses, the size it describes, and the tensor bytes' SHA-256 when the
    header records one. Returns the header's metadata."""
    if len(data) < 8 or _data_start(data) > len(data):
        raise CheckpointError(f"{path}: corrupt weights file (cut: {len(data)} bytes, too short for its header)")
    try:
        header = json.loads(data[8 : _data_start(data)])
        metadata = header.pop("__metadata__", None) or {}
        if not isinstance(metadata, dict):
            raise TypeError("its metadata is not an object")
        end = max((int(t["data_offsets"][1]) for t in header.values()), default=0)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
        raise CheckpointError(f"{path}: corrupt weights file (its header does not parse: {err})") from None
    size = _data_start(data) + end
    if size != len(data):
        raise CheckpointError(
            f"{path}: corrupt weights file ({'cut' if len(data) < size else 'extra bytes'}: {len(data)} bytes, "
            f"its header describes {size})"
        )
    expected = metadata.get(DIGEST_KEY)
    if expected and hashlib.sha256(data[_data_start(data) :]).hexdigest() != expected:
        raise CheckpointError(f"{path}: corrupt weights file (checksum mismatch: its tensors changed since written)")
    return metadata


def verify_weights_file(path: str | Path, sha256: Optional[str] = None) -> None:
    """The one integrity check of a trained-weights file (``.pt`` or ``.safetensors``, the module
    doc); ``sha256``: the whole file's digest where a record gives it (an export's card)."""
    path = Path(path)
    if path.suffix == ".safetensors":  # its own checks first: they say what is wrong (cut, changed)
        data = path.read_bytes()
        verify_safetensors(path, data)
        digest = hashlib.sha256(data).hexdigest() if sha256 is not None else None
    else:
        verify_checkpoint(path)
        digest = file_sha256(path) if sha256 is not None else None
    if sha256 is not None and digest != sha256:
        raise CheckpointError(f"{path}: corrupt weights file (its SHA-256 is not the one its folder's card records)")


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The verified tensors of a ``.safetensors`` file and its header metadata."""
    path = Path(path)
    problem = not_a_file(path, "weights file", FOLDER_HINT)
    if problem:
        raise CheckpointError(problem)
    data = path.read_bytes()
    metadata = verify_safetensors(path, data)
    try:
        return load_safetensors(data), metadata
    except Exception as err:  # safetensors' own error type: a header it cannot use
        raise CheckpointError(f"{path}: corrupt weights file ({err})") from None


def read_trained_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The trained state dict in a ``checkpoint_*.pt`` or an exported ``.safetensors``."""
    path = Path(path)
    if path.is_dir() or path.suffix == ".safetensors":
        return read_safetensors(path)[0]
    if path.suffix not in TRAINING_SUFFIXES:
        raise WeightsMismatchError(f"{path}: trained weights are a checkpoint_*.pt or a .safetensors file")
    return read_training_checkpoint(path)["model"]


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """A ``.safetensors`` file of ``tensors`` (contiguous CPU tensors) whose header holds
    ``metadata`` and the SHA-256 of the tensor bytes (``DIGEST_KEY``)."""
    draft = save_safetensors(tensors, metadata=metadata)  # the tensor bytes do not depend on the header
    digest = hashlib.sha256(draft[_data_start(draft) :]).hexdigest()
    return save_safetensors(tensors, metadata={**metadata, DIGEST_KEY: digest})


def write_trained_weights(
    state: dict[str, torch.Tensor],
    path: str | Path,
    metadata: dict[str, str] | None = None,
    content: str = "trainable",
    mode: int | None = None,
) -> Path:
    """A ``.safetensors`` of a state dict (contiguous CPU copies), written atomically with its
    checksum, marked ``content`` (``trainable``: the trained tensors; ``full``: every tensor);
    ``metadata`` (strings) goes into the header beside the mark, e.g. the run and step; ``mode``:
    the file's permission bits (an export's are 0o644, for anyone to read)."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    data = safetensors_bytes(tensors, {**(metadata or {}), CONTENT_KEY: content})
    return atomic_write_bytes(path, data, mode)


def weights_metadata(path: str | Path) -> dict[str, str]:
    """The header metadata of a ``.safetensors`` (empty when it has none)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as err:  # safetensors' own error type: a cut or mangled header
        raise CheckpointError(f"{path}: corrupt weights file ({err})") from None
