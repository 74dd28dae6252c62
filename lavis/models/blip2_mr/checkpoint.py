"""Weights in and out: every source ``model.weights`` names, and our own weights files.

Sources (``WeightsConfig``, all local paths), loaded in this order:
  1. ``blip2_hf_dir``: an HF ``Blip2ForConditionalGeneration`` directory (its key names are ours:
     ``vision_model.*``, ``qformer.*``, ``query_tokens``, ``language_projection.*``,
     ``language_model.*``); or the LAVIS files ``eva_vit_pth`` + ``blip2_lavis_pth`` (converted);
  2. ``llm_dir``: an HF T5 directory, for ``language_model.*``;
  3. ``clap_dir``: an HF CLAP directory (``ClapModel`` or audio-only), for the audio tower;
  4. ``finetuned``: what training wrote (``checkpoint_*.pt``), an exported ``.safetensors``
     (``python -m lavis.export``, ``save_weights``) or a Mr. BLIP / SMS ``.pth`` (the reference's).
Steps 1-3 and the ``.pth`` are read by ``pretrained.py``. Every load goes through one key check
(``common.trained_state.check_keys``, via ``state_load.load_checked``), which raises
``WeightsMismatchError`` naming every missing, unexpected or wrongly shaped key. Tied parameters
(T5's shared embeddings) count as present when any of their names is.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from lavis.common.trained_state import WeightsMismatchError, trained_names
from lavis.common.weights_file import (
    CONTENT_KEY,
    TRAINING_SUFFIXES,
    read_trained_weights,
    weights_metadata,
    write_trained_weights,
)
from lavis.models.blip2_mr.config import WeightsConfig
from lavis.models.blip2_mr.pretrained import (
    load_blip2_hf_dir,
    load_clap_dir,
    load_lavis_pretrained,
    load_llm_dir,
    load_reference_finetuned,
)
from lavis.models.blip2_mr.state_load import load_checked, load_trained

__all__ = ["WeightsMismatchError", "load_configured_weights", "load_finetuned", "load_weights", "save_weights"]


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """What training changes: trainable parameters and their modules' buffers (trained_state.py)."""
    trained = trained_names(model)
    return {n: t.detach() for n, t in model.state_dict(keep_vars=True).items() if n in trained}


def save_weights(model: nn.Module, path: str | Path, trainable_only: bool = True) -> Path:
    """Write a ``.safetensors`` of the trained tensors (default: what training checkpoints hold
    under ``"model"``, in the format ``lavis.export`` writes) or of every tensor (tied tensors once)."""
    if trainable_only:
        return write_trained_weights(trainable_state_dict(model), path)
    state, seen = {}, set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) not in seen:  # safetensors stores a shared tensor once
            seen.add(id(tensor))
            state[name] = tensor
    return write_trained_weights(state, path, content="full")


def load_weights(model: nn.Module, path: str | Path, allow_missing: Iterable[str] = ()) -> None:
    """Read a file written by ``save_weights`` (checks keys against what it claims to hold)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    kind = weights_metadata(path).get(CONTENT_KEY)
    if kind not in ("trainable", "full"):
        raise WeightsMismatchError(f"{path}: not a blip2_mr weights file (no '{CONTENT_KEY}' metadata)")
    state = read_trained_weights(path)
    if kind == "trainable":
        load_trained(model, state, str(path), allow_missing)
    else:
        load_checked(model, state, set(model.state_dict()), f"{path} (full weights)", allow_missing)


def load_finetuned(
    model: nn.Module, path: str | Path, allow_missing: Iterable[str] = (), fusion_prefixes: Iterable[str] = ("fusion.",)
) -> None:
    """``model.weights.finetuned``, by file type: ``checkpoint_*.pt`` (what training writes),
    ``.safetensors`` (ours), anything else a Mr. BLIP / SMS ``.pth`` (LAVIS names, converted)."""
    suffix = Path(path).suffix
    if suffix == ".safetensors":
        load_weights(model, path, allow_missing)
    elif suffix in TRAINING_SUFFIXES:
        load_trained(model, read_trained_weights(path), f"training checkpoint {path}", allow_missing)
    else:
        load_reference_finetuned(model, path, allow_missing, fusion_prefixes)


def load_configured_weights(model: nn.Module, cfg: WeightsConfig) -> None:
    """Load every source ``cfg`` names, in the order of the module docstring."""
    llm_weights = cfg.blip2_hf_dir or cfg.llm_dir
    if llm_weights and model.cfg.llm.number_embedding_init == "sincos":
        raise WeightsMismatchError(
            "llm.number_embedding_init: sincos would be overwritten by the pretrained LLM weights"
        )
    if cfg.blip2_hf_dir:
        load_blip2_hf_dir(model, cfg.blip2_hf_dir)
    elif cfg.eva_vit_pth or cfg.blip2_lavis_pth:
        load_lavis_pretrained(model, cfg.eva_vit_pth, cfg.blip2_lavis_pth)
    if cfg.llm_dir:
        load_llm_dir(model, cfg.llm_dir)
    if cfg.clap_dir:
        load_clap_dir(model, cfg.clap_dir)
    if cfg.finetuned:
        load_finetuned(model, cfg.finetuned, cfg.finetuned_allow_missing, cfg.finetuned_fusion_prefixes)
