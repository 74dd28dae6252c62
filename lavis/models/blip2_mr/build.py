"""The model's parts from transformers/peft, sized by the typed config; freezing and dtypes.

Nothing here reads files: weights are loaded afterwards (``checkpoint.py``), so the same code
builds the full preset on the meta device for inspection.
"""

from __future__ import annotations

import warnings

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn
from transformers import (
    Blip2QFormerConfig,
    Blip2QFormerModel,
    Blip2VisionConfig,
    Blip2VisionModel,
    T5Config,
    T5ForConditionalGeneration,
)

from lavis.models.blip2_mr.config import Blip2MRConfig, LLMConfig, LoraConfig, QFormerConfig, VisionConfig
from lavis.models.blip2_mr.tokenizer import TextTokenizer

LORA_MARK = "lora_"  # peft names every adapter parameter lora_A / lora_B / lora_embedding_*


def build_vision(cfg: VisionConfig, attn_implementation: str) -> Blip2VisionModel:
    """The ViT (``Blip2VisionModel``, EVA ViT-g at full size) of ``cfg``, randomly initialized."""
    vision = Blip2VisionModel(
        Blip2VisionConfig(
            hidden_size=cfg.hidden_size,
            intermediate_size=cfg.intermediate_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            image_size=cfg.image_size,
            patch_size=cfg.patch_size,
            layer_norm_eps=cfg.layer_norm_eps,
            initializer_range=cfg.initializer_range,
            qkv_bias=True,
            attn_implementation=attn_implementation,
        )
    )
    # transformers gives the final LayerNorm the blocks' eps; LAVIS's ln_vision has its own.
    vision.post_layernorm.eps = cfg.ln_vision_eps
    return vision


def build_qformer(
    cfg: QFormerConfig, vision_width: int, attn_implementation: str
) -> tuple[Blip2QFormerModel, nn.Parameter]:
    """The Q-Former (query path only, no text embeddings) and its learned query tokens."""
    qformer = Blip2QFormerModel(
        Blip2QFormerConfig(
            hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            intermediate_size=cfg.intermediate_size,
            cross_attention_frequency=cfg.cross_attention_frequency,
            encoder_hidden_size=vision_width,
            hidden_dropout_prob=cfg.dropout,
            attention_probs_dropout_prob=cfg.dropout,
            layer_norm_eps=cfg.layer_norm_eps,
            initializer_range=cfg.initializer_range,
            attn_implementation=attn_implementation,
        )
    )
    # BLIP-2 initialises its queries like its BERT weights: N(0, initializer_range).
    query_tokens = nn.Parameter(torch.randn(1, cfg.num_query_tokens, cfg.hidden_size) * cfg.initializer_range)
    return qformer, query_tokens


def build_llm(cfg: LLMConfig, vocab_size: int, attn_implementation: str) -> T5ForConditionalGeneration:
    """The T5 of ``cfg`` with a ``vocab_size`` embedding, randomly initialized (weights load later)."""
    t5_config = T5Config(
        vocab_size=vocab_size,
        d_model=cfg.d_model,
        d_kv=cfg.d_kv,
        d_ff=cfg.d_ff,
        num_layers=cfg.num_layers,
        num_decoder_layers=cfg.num_decoder_layers,
        num_heads=cfg.num_heads,
        feed_forward_proj=cfg.feed_forward_proj,
        dropout_rate=cfg.dropout,
        layer_norm_epsilon=cfg.layer_norm_eps,
        relative_attention_num_buckets=cfg.relative_attention_num_buckets,
        relative_attention_max_distance=cfg.relative_attention_max_distance,
        tie_word_embeddings=cfg.tie_word_embeddings,
        decoder_start_token_id=0,
        attn_implementation=attn_implementation,
    )
    if cfg.dense_act_fn is not None:
        # T5Config derives dense_act_fn from feed_forward_proj (gated-gelu -> gelu_new); LAVIS
        # overrides it after loading the config, as here.
        t5_config.dense_act_fn = cfg.dense_act_fn
    t5 = T5ForConditionalGeneration(t5_config)
    if not cfg.tie_word_embeddings:
        # transformers ties lm_head to the input embeddings at construction; Flan-T5 has its own.
        t5.lm_head.weight = nn.Parameter(t5.shared.weight.detach().clone())
        t5.all_tied_weights_keys.pop("lm_head.weight", None)
    return t5


def init_number_embeddings(embedding: nn.Embedding, tokenizer: TextTokenizer, max_number: int) -> int:
    """Set the embedding of every single-token integer ``v`` in ``0..max_number`` to sin/cos
    features of ``v`` (periods up to ~2*pi*2*max_number, so the whole range stays ordered),
    scaled to the embedding's current RMS. Returns how many tokens were set."""
    weight = embedding.weight
    found = [(v, ids[0]) for v in range(max_number + 1) if len(ids := tokenizer.encode(str(v))) == 1]
    if not found or weight.is_meta:
        return len(found)
    dim = weight.shape[1]
    values = torch.tensor([v for v, _ in found], dtype=torch.float64)
    freqs = (2.0 * max_number) ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    angles = values[:, None] * freqs[None, :]
    features = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)[:, :dim]
    rms = weight.detach().float().pow(2).mean().sqrt()
    features = features * (rms / features.pow(2).mean().sqrt())
    with torch.no_grad():
        weight[torch.tensor([i for _, i in found])] = features.to(weight.dtype)
    return len(found)


def add_lora(llm: nn.Module, cfg: LoraConfig) -> None:
    """LoRA adapters on the LLM's ``target_modules`` (in place; module names gain ``base_layer``)."""
    peft_cfg = PeftLoraConfig(
        r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=list(cfg.target_modules), bias="none"
    )
    with warnings.catch_warnings():
        if llm.get_output_embeddings().weight is not llm.get_input_embeddings().weight:
            # transformers' T5Config always reports tie_word_embeddings=True, so peft warns about
            # LoRA on a tied lm_head; build_llm gave this one its own weight.
            warnings.filterwarnings("ignore", message=".*tied layer is part of the adapter.*")
        inject_adapter_in_model(peft_cfg, llm)


def merge_lora(model: nn.Module) -> int:
    """Fold every LoRA adapter of ``model`` into its base weight (``W + scale * B A``), in place,
    and return how many: each adapted layer then runs one matmul instead of three plus casts.
    For prediction only: the adapters stay, marked merged (their forward is skipped), and
    training on would count them twice. On the full-size preset (bf16 weights, one thread of this
    project's CPU, three interleaved runs): beam search 6.6-6.9 s -> 5.9-6.2 s, the T5 encoder
    4.0-4.3 s -> 3.4-3.6 s; the same beams on random weights (the sums round differently in bf16)."""
    merged = 0
    for module in model.modules():
        if isinstance(module, LoraLayer) and not module.merged:
            module.merge()
            merged += 1
    return merged


def is_lora_parameter(name: str) -> bool:
    """Whether the parameter called ``name`` belongs to a LoRA adapter."""
    return LORA_MARK in name


def set_trainable(model: nn.Module, cfg: Blip2MRConfig) -> None:
    """``requires_grad`` from the freezing flags (see ``Blip2MRConfig``)."""
    vision = model.vision_model
    for module, frozen in ((vision.embeddings, cfg.freeze_vit), (vision.encoder, cfg.freeze_vit)):
        module.requires_grad_(not frozen)
    vision.post_layernorm.requires_grad_(not cfg.freeze_vit_ln)
    model.qformer.requires_grad_(not cfg.freeze_qformer)
    model.query_tokens.requires_grad_(not cfg.freeze_qformer)
    model.language_projection.requires_grad_(True)
    model.fusion.requires_grad_(True)
    for name, param in model.language_model.named_parameters():
        param.requires_grad_(is_lora_parameter(name) or not cfg.freeze_llm)
    if model.audio_encoder is not None:
        model.audio_encoder.requires_grad_(not cfg.freeze_audio)
        for param in model.audio_encoder.unused_parameters():
            param.requires_grad_(False)  # never reached: a trainable one would get no gradient


def cast_frozen(model: nn.Module, dtype: torch.dtype) -> None:
    """Store frozen Linear/Conv/Embedding weights in ``dtype`` (norms, biases of trainable
    layers and everything trainable stay fp32, the optimizer's master copy)."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.Embedding)):
            for param in module.parameters(recurse=False):
                if not param.requires_grad:
                    param.data = param.data.to(dtype)


def enable_checkpointing(model: nn.Module) -> None:
    """Recompute the activations of the ViT, Q-Former and LLM blocks in the backward pass (memory for time)."""
    for part in (model.vision_model, model.qformer, model.language_model):
        part.activation_checkpointing_enable()


def compile_parts(model: nn.Module, backend: str) -> list[str]:
    """``torch.compile`` (in place: parameter names and the state dict are unchanged) the parts
    named in ``Blip2MRConfig.compile``; returns their names. ``dynamic=True``: the number of fed
    frames and the prompt length change from batch to batch."""
    parts = {"vision_model": model.vision_model, "qformer": model.qformer, "fusion": model.fusion}
    if model.audio_encoder is not None:
        parts["audio_encoder"] = model.audio_encoder
    encoder = model.language_model.get_encoder()
    parts.update({f"language_model.encoder.block.{i}": block for i, block in enumerate(encoder.block)})
    for module in parts.values():
        module.compile(backend=backend, dynamic=True)
    return list(parts)


def check_vocab(llm_vocab: int | None, tokenizer: TextTokenizer) -> int:
    """The LLM's vocabulary size (``model.llm.vocab_size``, else the tokenizer's); smaller than the
    tokenizer's is an error, since some token ids would have no embedding."""
    size = llm_vocab if llm_vocab is not None else tokenizer.vocab_size
    if size < tokenizer.vocab_size:
        raise ValueError(
            f"model.llm.vocab_size {size} is smaller than the tokenizer's vocabulary ({tokenizer.vocab_size})"
        )
    return size
