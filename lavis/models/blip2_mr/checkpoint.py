"""Weights in and out: pretrained parts from local files, our own safetensors checkpoints.

Sources (``WeightsConfig``, all local paths), loaded in this order:
  1. ``blip2_hf_dir``: an HF ``Blip2ForConditionalGeneration`` directory (its key names are ours:
     ``vision_model.*``, ``qformer.*``, ``query_tokens``, ``language_projection.*``,
     ``language_model.*``); or the LAVIS files ``eva_vit_pth`` + ``blip2_lavis_pth`` (converted);
  2. ``llm_dir``: an HF T5 directory, for ``language_model.*``;
  3. ``clap_dir``: an HF CLAP directory (``ClapModel`` or audio-only), for the audio tower;
  4. ``finetuned``: our ``.safetensors`` (trainable-only or full) or a Mr. BLIP / SMS ``.pth``.
Every load checks keys both ways and raises ``WeightsMismatchError`` listing what is missing
and what is unexpected (and, when the LoRA targets differ, both lists of targets). Tied
parameters (T5's shared embeddings) count as present when any of their names is. Keys that the
LAVIS / Mr. BLIP / SMS files hold but the model never uses are dropped by the named rules of
``convert.py`` first, and said once in the log.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from lavis.common.trained_state import trained_names, trained_parameter_names, warn_missing_buffers
from lavis.models.blip2_mr.build import is_lora_parameter
from lavis.models.blip2_mr.config import WeightsConfig
from lavis.models.blip2_mr.convert import (
    PRETRAINED_UNUSED,
    UnusedKeys,
    convert_lavis_state_dict,
    describe_dropped,
    drop_unused,
    finetuned_unused,
    lora_targets,
    to_lora_names,
    unwrap_checkpoint,
)
from lavis.common.errors import UserError

logger = logging.getLogger(__name__)

FORMAT_KEY = "blip2_mr"  # safetensors metadata: "trainable" or "full"
PRETRAINED_PARTS = ("vision_model.", "qformer.", "query_tokens", "language_projection.", "language_model.")
_SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")


class WeightsMismatchError(UserError, RuntimeError):
    """A weights file that does not fit the model."""


def _show(keys: Iterable[str], limit: int = 20) -> str:
    keys = sorted(keys)
    return (
        ", ".join(keys[:limit]) + (f" ... ({len(keys) - limit} more)" if len(keys) > limit else "") if keys else "none"
    )


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


def _alias_groups(model: nn.Module) -> dict[str, set[str]]:
    """name -> every name of the same tensor (tied parameters)."""
    by_tensor: dict[int, set[str]] = {}
    for name, tensor in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        by_tensor.setdefault(id(tensor), set()).add(name)
    return {name: names for names in by_tensor.values() for name in names}


def load_checked(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    expected: Iterable[str],
    source: str,
    allow_missing: Iterable[str] = (),
) -> None:
    """Load ``state`` after checking it: every ``expected`` key (or a tied alias) present unless
    it starts with an ``allow_missing`` prefix, and no key the model does not have."""
    model_state = model.state_dict(keep_vars=True)
    state = to_lora_names(state, set(model_state))
    aliases = _alias_groups(model)
    allow = tuple(allow_missing)
    present = set(state)
    missing = {k for k in expected if not aliases.get(k, {k}) & present and not (allow and k.startswith(allow))}
    unexpected = present - set(model_state)
    bad_shapes = {k for k in present - unexpected if tuple(state[k].shape) != tuple(model_state[k].shape)}
    if missing or unexpected or bad_shapes:
        shapes = ", ".join(
            f"{k}: file {tuple(state[k].shape)} vs model {tuple(model_state[k].shape)}" for k in sorted(bad_shapes)[:10]
        )
        raise WeightsMismatchError(
            f"{source} does not fit the model:\n  missing ({len(missing)}): {_show(missing)}\n"
            f"  unexpected ({len(unexpected)}): {_show(unexpected)}\n"
            f"  wrong shape ({len(bad_shapes)}): {shapes or 'none'}" + _lora_hint(present, set(model_state))
        )
    model.load_state_dict(dict(state), strict=False)


def _lora_hint(file_keys: set[str], model_keys: set[str]) -> str:
    """A line naming both LoRA target lists when a file's adapters sit on other modules."""
    in_file, in_model = lora_targets(file_keys), lora_targets(model_keys)
    if not in_file or in_file == in_model:
        return ""
    return (
        f"\n  LoRA targets differ: the file has LoRA on {sorted(in_file)}, the model (model.lora.target_modules) "
        f"on {sorted(in_model)}; set model.lora.target_modules=[{','.join(sorted(in_file))}]"
    )


def _drop_unused(state: dict[str, torch.Tensor], rules: tuple[UnusedKeys, ...], source: str) -> dict[str, torch.Tensor]:
    kept, dropped = drop_unused(state, rules)
    if dropped:
        logger.info("%s: ignoring keys the model never uses: %s", source, describe_dropped(dropped))
    return kept


def pretrained_keys(model: nn.Module, prefixes: tuple[str, ...]) -> set[str]:
    """The model's non-adapter keys under ``prefixes`` (what pretrained files must provide)."""
    return {k for k in model.state_dict() if k.startswith(prefixes) and not is_lora_parameter(k)}


def load_blip2_hf_dir(model: nn.Module, path: str | Path) -> None:
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
    state = {"language_model." + k: v for k, v in read_hf_dir(path).items()}
    load_checked(model, state, pretrained_keys(model, ("language_model.",)), f"LLM directory {path}")


def load_clap_dir(model: nn.Module, path: str | Path) -> None:
    """The audio tower of a CLAP directory; its text tower and logit scales are not used."""
    if model.audio_encoder is None:
        raise WeightsMismatchError(f"weights.clap_dir={path} is set but fusion 'none' builds no audio tower")
    audio = {k: v for k, v in read_hf_dir(path).items() if k.startswith(("audio_model.", "audio_projection."))}
    state = {"audio_encoder.clap." + k: v for k, v in audio.items()}
    load_checked(model, state, pretrained_keys(model, ("audio_encoder.",)), f"CLAP directory {path}")


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """What training changes: trainable parameters and their modules' buffers (trained_state.py)."""
    trained = trained_names(model)
    return {n: t.detach() for n, t in model.state_dict(keep_vars=True).items() if n in trained}


def save_weights(model: nn.Module, path: str | Path, trainable_only: bool = True) -> Path:
    """Write a ``.safetensors`` of the trainable parameters (default) or of every tensor (tied
    tensors once)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if trainable_only:
        state = trainable_state_dict(model)
    else:
        state, seen = {}, set()
        for name, tensor in model.state_dict(keep_vars=True).items():
            if id(tensor) not in seen:  # safetensors stores a shared tensor once
                seen.add(id(tensor))
                state[name] = tensor
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    save_file(state, str(path), metadata={FORMAT_KEY: "trainable" if trainable_only else "full"})
    return path


def load_weights(model: nn.Module, path: str | Path, allow_missing: Iterable[str] = ()) -> None:
    """Read a file written by ``save_weights`` (checks keys against what it claims to hold)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        kind = (f.metadata() or {}).get(FORMAT_KEY)
    if kind not in ("trainable", "full"):
        raise WeightsMismatchError(f"{path}: not a blip2_mr weights file (no '{FORMAT_KEY}' metadata)")
    state = load_file(str(path))
    expected = trained_parameter_names(model) if kind == "trainable" else set(model.state_dict())
    load_checked(model, state, expected, f"{path} ({kind} weights)", allow_missing)
    if kind == "trainable":
        warn_missing_buffers(model, state, str(path))


def load_finetuned(
    model: nn.Module, path: str | Path, allow_missing: Iterable[str] = (), fusion_prefixes: Iterable[str] = ("fusion.",)
) -> None:
    """Ours (``.safetensors``) or a Mr. BLIP / SMS ``.pth`` (LAVIS names, converted). A ``.pth``
    must provide every trainable parameter (except ``allow_missing`` prefixes); the keys the
    reference saves but never uses are dropped by ``convert.finetuned_unused``'s named rules."""
    if Path(path).suffix == ".safetensors":
        load_weights(model, path, allow_missing)
        return
    cfg = model.cfg
    if cfg.prompt.layout != "reference":
        logger.warning(
            "%s is a Mr. BLIP / SMS checkpoint, trained on the reference prompt layout, but "
            "model.prompt.layout=%s: it gets inputs it never saw (set model.prompt.layout=reference "
            "to compute what the reference computes)", path, cfg.prompt.layout,
        )
    raw = _drop_unused(read_state_file(path), finetuned_unused(cfg.fusion.position), f"checkpoint {path}")
    state = convert_lavis_state_dict(raw, fusion_prefixes)
    load_checked(model, state, trained_parameter_names(model), f"checkpoint {path}", allow_missing)
    warn_missing_buffers(model, state, f"checkpoint {path}")


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
