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
The same mapping as transformers' BLIP-2 conversion for the ViT and Q-Former.
``eva_vit_g.pth`` holds the bare ViT (``blocks.0...``): read it with ``prefix="visual_encoder."``.

Keys that these files hold but the model never computes with are dropped by name, rule by rule
(``UnusedKeys``, ``drop_unused``), before renaming; every other key must fit the model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch

from lavis.common.errors import UserError


@dataclass(frozen=True)
class UnusedKeys:
    """A named rule for keys that a LAVIS / Mr. BLIP / SMS file holds but the model never uses."""

    name: str
    pattern: re.Pattern
    why: str


QFORMER_TEXT_PARTS = UnusedKeys(
    "Q-Former text parts",
    re.compile(
        r"^Qformer\.(cls\.|bert\.embeddings\.(word_embeddings|position_embeddings)\."
        r"|bert\.encoder\.layer\.\d+\.(intermediate|output)\.)"
    ),
    "BLIP-2 deletes them (it runs the query path only)",
)
QFORMER_POSITION_IDS = UnusedKeys(
    "Q-Former position_ids",
    re.compile(r"^Qformer\.bert\.embeddings\.position_ids$"),
    "the index buffer of the deleted position embeddings",
)
TIED_EMBEDDING_COPIES = UnusedKeys(
    "T5 embed_tokens copies",
    re.compile(r"^t5_model\.(base_model\.model\.)?(encoder|decoder)\.embed_tokens\.weight$"),
    "the frozen shared embedding again under its tied names (the reference's runner drops a frozen "
    "parameter by its first name only)",
)
UNUSED_AUDIO_PROJECTION = UnusedKeys(
    "audio_t5_proj",
    re.compile(r"^audio_t5_proj\."),
    "SMS creates and trains it for every fusion, but only its late fusion reads it",
)
PRETRAINED_UNUSED = (QFORMER_TEXT_PARTS, QFORMER_POSITION_IDS)


def finetuned_unused(fusion_position: str) -> tuple[UnusedKeys, ...]:
    """The rules for a Mr. BLIP / SMS fine-tuned ``.pth`` loaded into a model whose fusion sits at
    ``fusion_position`` (with late fusion, ``audio_t5_proj`` is not unused and must fit)."""
    rules = (*PRETRAINED_UNUSED, TIED_EMBEDDING_COPIES)
    return rules if fusion_position == "late" else (*rules, UNUSED_AUDIO_PROJECTION)


def drop_unused(
    state: Mapping[str, torch.Tensor], rules: Iterable[UnusedKeys]
) -> tuple[dict[str, torch.Tensor], dict[UnusedKeys, list[str]]]:
    """``state`` without the keys a rule matches, and the dropped keys by rule."""
    rules = tuple(rules)
    kept: dict[str, torch.Tensor] = {}
    dropped: dict[UnusedKeys, list[str]] = {}
    for key, value in state.items():
        rule = next((r for r in rules if r.pattern.match(key)), None)
        if rule is None:
            kept[key] = value
        else:
            dropped.setdefault(rule, []).append(key)
    return kept, dropped


def describe_dropped(dropped: Mapping[UnusedKeys, list[str]]) -> str:
    """One line: each rule's name, key count, an example and why."""
    return "; ".join(
        f"{rule.name} ({len(keys)} key{'s' if len(keys) > 1 else ''}, e.g. {sorted(keys)[0]}): {rule.why}"
        for rule, keys in dropped.items()
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
    kept as they are, so the caller's key check reports them (drop unused keys first)."""
    state = {prefix + k: v for k, v in state.items()}
    out: dict[str, torch.Tensor] = {}
    qv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
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
