"""Pretrained and reference weights from local files: HF directories, the LAVIS BLIP-2 files and
the Mr. BLIP / SMS fine-tuned ``.pth`` (LAVIS names, converted by ``convert.py``).

Keys that the LAVIS / Mr. BLIP / SMS files hold but the model never uses are dropped by the named
rules of ``convert.py`` first, and said once in the log; every other key must fit
(``load_checked``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from lavis.common.trained_state import WeightsMismatchError
from lavis.models.blip2_mr.build import is_lora_parameter
from lavis.models.blip2_mr.convert import (
    PRETRAINED_UNUSED,
    UnusedKeys,
    convert_lavis_state_dict,
    describe_dropped,
    drop_unused,
    finetuned_unused,
    unwrap_checkpoint,
)
from lavis.models.blip2_mr.state_load import load_checked, load_trained

logger = logging.getLogger(__name__)

PRETRAINED_PARTS = ("vision_model.", "qformer.", "query_tokens", "language_projection.", "language_model.")
_SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")


def read_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A ``.safetensors`` or a torch pickle (``.pth``/``.pt``/``.bin``, tensors only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types; all mean "unreadable"
        raise WeightsMismatchError(f"{path}: not a readable torch checkpoint ({err})") from None
    return unwrap_checkpoint(obj, str(path))


def read_hf_dir(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of an HF model directory (single file or sharded, safetensors or bin)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model directory not found: {path}")
    for index_name in _SHARD_INDEXES:
        if (path / index_name).is_file():
            shards = sorted(set(json.loads((path / index_name).read_text())["weight_map"].values()))
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(read_state_file(path / shard))
            return state
    for name in _SINGLE_FILES:
        if (path / name).is_file():
            return read_state_file(path / name)
    raise FileNotFoundError(f"{path}: no {' / '.join(_SINGLE_FILES + _SHARD_INDEXES)}")


def _drop_unused(state: dict[str, torch.Tensor], rules: tuple[UnusedKeys, ...], source: str) -> dict[str, torch.Tensor]:
    kept, dropped = drop_unused(state, rules)
    if dropped:
        logger.info("%s: ignoring keys the model never uses: %s", source, describe_dropped(dropped))
    return kept


def pretrained_keys(model: nn.Module, prefixes: tuple[str, ...]) -> set[str]:
    """The model's non-adapter keys under ``prefixes`` (what pretrained files must provide)."""
    return {k for k in model.state_dict() if k.startswith(prefixes) and not is_lora_parameter(k)}


def load_blip2_hf_dir(model: nn.Module, path: str | Path) -> None:
    """Load the ViT, Q-Former, query tokens, projection and LLM from a Hugging Face BLIP-2 directory
    (every expected tensor must fit)."""
    load_checked(model, read_hf_dir(path), pretrained_keys(model, PRETRAINED_PARTS), f"BLIP-2 directory {path}")


def load_lavis_pretrained(model: nn.Module, eva_vit_pth: str | None, blip2_pth: str | None) -> None:
    """LAVIS ``eva_vit_g.pth`` (bare ViT keys) + ``blip2_pretrained_flant5xl.pth`` (Q-Former,
    queries, ``ln_vision``, ``t5_proj``): everything but the LLM."""
    state: dict[str, torch.Tensor] = {}
    if eva_vit_pth:
        raw = read_state_file(eva_vit_pth)
        state.update(
            convert_lavis_state_dict(
                raw, prefix="" if any(k.startswith("visual_encoder.") for k in raw) else "visual_encoder."
            )
        )
    if blip2_pth:
        raw = _drop_unused(read_state_file(blip2_pth), PRETRAINED_UNUSED, str(blip2_pth))
        state.update(convert_lavis_state_dict(raw))
    expected = pretrained_keys(model, PRETRAINED_PARTS[:-1])
    load_checked(model, state, expected, f"LAVIS files {[p for p in (eva_vit_pth, blip2_pth) if p]}")


def load_llm_dir(model: nn.Module, path: str | Path) -> None:
    """Load the LLM from a Hugging Face T5 directory (e.g. Flan-T5-XL), every tensor checked."""
    state = {"language_model." + k: v for k, v in read_hf_dir(path).items()}
    load_checked(model, state, pretrained_keys(model, ("language_model.",)), f"LLM directory {path}")


def load_clap_dir(model: nn.Module, path: str | Path) -> None:
    """The audio tower of a CLAP directory; its text tower and logit scales are not used."""
    if model.audio_encoder is None:
        raise WeightsMismatchError(f"weights.clap_dir={path} is set but fusion 'none' builds no audio tower")
    audio = {k: v for k, v in read_hf_dir(path).items() if k.startswith(("audio_model.", "audio_projection."))}
    state = {"audio_encoder.clap." + k: v for k, v in audio.items()}
    load_checked(model, state, pretrained_keys(model, ("audio_encoder.",)), f"CLAP directory {path}")


def load_reference_finetuned(
    model: nn.Module, path: str | Path, allow_missing: Iterable[str] = (), fusion_prefixes: Iterable[str] = ("fusion.",)
) -> None:
    """A Mr. BLIP / SMS ``.pth`` as the reference's runner saved it (LAVIS names, converted). It
    must provide every trainable parameter (except ``allow_missing`` prefixes); the keys the
    reference saves but never uses are dropped by ``convert.finetuned_unused``'s named rules."""
    cfg = model.cfg
    if cfg.prompt.layout != "reference":
        logger.warning(
            "%s is a Mr. BLIP / SMS checkpoint, trained on the reference prompt layout, but "
            "model.prompt.layout=%s: it gets inputs it never saw (set model.prompt.layout=reference "
            "to compute what the reference computes)",
            path,
            cfg.prompt.layout,
        )
    raw = _drop_unused(read_state_file(path), finetuned_unused(cfg.fusion.position), f"checkpoint {path}")
    load_trained(model, convert_lavis_state_dict(raw, fusion_prefixes), f"checkpoint {path}", allow_missing)
