"""LAVIS / Mr. BLIP / SMS ``.pth`` state dicts -> this model's parameter names.

LAVIS names (``lavis/models/eva_vit.py``, ``blip2.py``, ``Qformer.py`` = BERT naming):
  visual_encoder.cls_token / pos_embed / patch_embed.proj.*   -> vision_model.embeddings.*
  visual_encoder.blocks.i.norm1|norm2|attn.qkv|attn.proj|mlp.fc1|mlp.fc2
                                                              -> vision_model.encoder.layers.i.*
  visual_encoder.blocks.i.attn.q_bias + v_bias                -> ...self_attn.qkv.bias = [q, 0, v]
  ln_vision.*                                                 -> vision_model.post_layernorm.*
  Qformer.bert.embeddings.LayerNorm.*                         -> qformer.layernorm.*
  Qformer.bert.encoder.layer.i.(cross)attention.self.*        -> qformer.encoder.layer.i.(cross)attention.attention.*
  Qformer.bert.encoder.layer.i.*  (other)                     -> qformer.encoder.layer.i.*
  query_tokens                                                -> query_tokens
  t5_proj.*                                                   -> language_projection.*
  t5_model.base_model.model.* | t5_model.*                    -> language_model.*
  ...lora_A.weight (peft without adapter names)               -> ...lora_A.default.weight
  <fusion prefix>.*                                           -> fusion.*
The same mapping as transformers' BLIP-2 conversion for the ViT and Q-Former. Keys that BLIP-2
itself never uses (the Q-Former's text embeddings, text FFNs and LM head) are dropped.
``eva_vit_g.pth`` holds the bare ViT (``blocks.0...``): read it with ``prefix="visual_encoder."``.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

import torch
from lavis.common.errors import UserError

# Parts of LAVIS's BERT Q-Former that BLIP-2 (and so Mr. BLIP/SMS) deletes or never runs.
UNUSED_LAVIS_KEYS = re.compile(
    r"^Qformer\.(cls\.|bert\.embeddings\.(word_embeddings|position_embeddings|position_ids)"
    r"|bert\.encoder\.layer\.\d+\.(intermediate|output)\.)"
)
_RENAMES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"^visual_encoder\.cls_token$"), "vision_model.embeddings.class_embedding"),
    (re.compile(r"^visual_encoder\.pos_embed$"), "vision_model.embeddings.position_embedding"),
    (re.compile(r"^visual_encoder\.patch_embed\.proj\."), "vision_model.embeddings.patch_embedding."),
    (re.compile(r"^visual_encoder\.blocks\.(\d+)\.norm1\."), r"vision_model.encoder.layers.\1.layer_norm1."),
    (re.compile(r"^visual_encoder\.blocks\.(\d+)\.norm2\."), r"vision_model.encoder.layers.\1.layer_norm2."),
    (re.compile(r"^visual_encoder\.blocks\.(\d+)\.attn\.qkv\."), r"vision_model.encoder.layers.\1.self_attn.qkv."),
    (
        re.compile(r"^visual_encoder\.blocks\.(\d+)\.attn\.proj\."),
        r"vision_model.encoder.layers.\1.self_attn.projection.",
    ),
    (re.compile(r"^visual_encoder\.blocks\.(\d+)\.mlp\."), r"vision_model.encoder.layers.\1.mlp."),
    (re.compile(r"^ln_vision\."), "vision_model.post_layernorm."),
    (re.compile(r"^Qformer\.bert\.embeddings\.LayerNorm\."), "qformer.layernorm."),
    (
        re.compile(r"^Qformer\.bert\.encoder\.layer\.(\d+)\.(attention|crossattention)\.self\."),
        r"qformer.encoder.layer.\1.\2.attention.",
    ),
    (re.compile(r"^Qformer\.bert\."), "qformer."),
    (re.compile(r"^t5_proj\."), "language_projection."),
    (re.compile(r"^t5_model\.base_model\.model\."), "language_model."),
    (re.compile(r"^t5_model\."), "language_model."),
    (re.compile(r"\.(lora_[AB])\.weight$"), r".\1.default.weight"),
]
_QV_BIAS = re.compile(r"^visual_encoder\.blocks\.(\d+)\.attn\.(q|v)_bias$")


class ConversionError(UserError, ValueError):
    """A state dict that does not fit the model; lists the offending keys."""


def unwrap_checkpoint(obj: object, source: str) -> dict[str, torch.Tensor]:
    """LAVIS files are ``{"model": state_dict, ...}``; DDP adds ``module.``."""
    state = obj.get("model", obj) if isinstance(obj, Mapping) else None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{source}: not a state dict (or a LAVIS checkpoint with a 'model' state dict)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def convert_lavis_state_dict(
    state: Mapping[str, torch.Tensor], fusion_prefixes: Iterable[str] = ("fusion.",), prefix: str = ""
) -> dict[str, torch.Tensor]:
    """Rename a LAVIS-layout state dict (see the module docstring). ``prefix`` is prepended to
    every key first (``"visual_encoder."`` for ``eva_vit_g.pth``). Keys that match no rule are
    kept as they are, so the caller's key check reports them."""
    state = {prefix + k: v for k, v in state.items()}
    out: dict[str, torch.Tensor] = {}
    qv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if UNUSED_LAVIS_KEYS.match(key):
            continue
        if m := _QV_BIAS.match(key):
            qv.setdefault(m.group(1), {})[m.group(2)] = value
            continue
        fusion = next((p for p in fusion_prefixes if key.startswith(p)), None)
        if fusion is not None:
            out["fusion." + key[len(fusion) :]] = value
            continue
        for pattern, repl in _RENAMES:
            key = pattern.sub(repl, key)
        out[key] = value
    for layer, biases in qv.items():
        if set(biases) != {"q", "v"}:
            raise ConversionError(f"visual_encoder.blocks.{layer}.attn has only {sorted(biases)}_bias (needs q and v)")
        q, v = biases["q"], biases["v"]
        # EVA has no k bias; HF's fused qkv bias is [q, 0, v].
        out[f"vision_model.encoder.layers.{layer}.self_attn.qkv.bias"] = torch.cat([q, torch.zeros_like(v), v])
    return out


def to_lora_names(state: Mapping[str, torch.Tensor], model_keys: set[str]) -> dict[str, torch.Tensor]:
    """Base weights saved without LoRA (``...q.weight``) go to ``...q.base_layer.weight`` when the
    model wraps that module with an adapter."""
    out = {}
    for key, value in state.items():
        if key not in model_keys:
            stem, _, leaf = key.rpartition(".")
            wrapped = f"{stem}.base_layer.{leaf}"
            if wrapped in model_keys:
                key = wrapped
        out[key] = value
    return out
