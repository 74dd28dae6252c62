"""``blip2_mr``: SMS (Sight meets Sound) / Mr. BLIP for video moment retrieval.

frames ``[B, T, 3, H, W]`` -> ViT (``[N, 1+P, Dv]``, N = the fed frames) -> Q-Former with learned
queries (``[N, Q, Dq]``) -> fusion with the frame's CLAP audio embedding (``[N, Da]``; early:
here, at Dq) -> projection (``[N, Q, D]``; late fusion: here, at the LLM width D) -> optional
per-frame mean (Q = 1) -> interleaved with timestamp tokens, ``>`` + duration and the prompt
(``prompt.py``) -> T5 with LoRA -> ``[[24, 30]]``.

``forward`` (teacher-forced loss) and ``generate`` share ``encode``; the batch becomes the LLM's
input tensors in ``llm_inputs.py``. The model does no I/O and no logging; weights are read by
``from_config`` (``checkpoint.py``).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from lavis.common.registry import registry
from lavis.models.blip2_mr import build
from lavis.models.blip2_mr.answer import ScoredWindows, beams_to_windows, rescore_windows
from lavis.models.blip2_mr.audio import ClapAudioEncoder
from lavis.models.blip2_mr.cached_features import CACHED_KEYS, cached_features
from lavis.models.blip2_mr.checkpoint import load_configured_weights
from lavis.models.blip2_mr.config import Blip2MRConfig
from lavis.models.blip2_mr.generation import beam_search
from lavis.models.blip2_mr.input_checks import check_dataset_inputs
from lavis.models.blip2_mr.llm_inputs import EncoderInput, encoder_input, target_labels
from lavis.models.blip2_mr.prompt import PromptBuilder
from lavis.models.blip2_mr.saliency import SaliencyHead, batch_saliency_loss, frame_relevance
from lavis.models.blip2_mr.tokenizer import TextTokenizer, build_tokenizer
from lavis.models.blip2_mr.towers import FrozenTowers
from lavis.models.fusion import build_fusion


@registry.register_model("blip2_mr")
class Blip2MR(FrozenTowers, nn.Module):
    """The ``blip2_mr`` model (see the module docstring): a batch of ``lavis.datasets.collate`` to
    a loss (``forward``), beams (``generate``) or scored windows (``predict``).

    Example:
        >>> from lavis.models.model_config import model_config
        >>> from lavis.models.blip2_mr.random_batch import random_batch
        >>> model = Blip2MR.from_config(model_config("blip2_mr", "tiny"))  # random weights
        >>> batch = random_batch(model.cfg, batch_size=2, num_frames=4)  # video [2, 4, 3, 224, 224], ...
        >>> model.tokens_per_frame  # the tiny preset's 4 Q-Former queries per frame
        4
    """

    config_class = Blip2MRConfig
    PRETRAINED_MODEL_CONFIG_DICT = {
        "pretrain_flant5xl": "configs/models/blip2_mr_pretrain_flant5xl.yaml",
        "tiny": "configs/models/blip2_mr_tiny.yaml",
    }
    check_inputs = staticmethod(check_dataset_inputs)  # load-time checks against each dataset

    def __init__(self, cfg: Blip2MRConfig, tokenizer: TextTokenizer):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.prompt = PromptBuilder(cfg.prompt, tokenizer)
        self.vision_model = build.build_vision(cfg.vision, cfg.attn_implementation)
        self.qformer, self.query_tokens = build.build_qformer(
            cfg.qformer, cfg.vision.hidden_size, cfg.attn_implementation
        )
        self.language_model = build.build_llm(
            cfg.llm, build.check_vocab(cfg.llm.vocab_size, tokenizer), cfg.attn_implementation
        )
        if cfg.llm.number_embedding_init == "sincos":
            build.init_number_embeddings(
                self.language_model.get_input_embeddings(), tokenizer, cfg.tokenizer.max_number
            )
        self.language_projection = nn.Linear(cfg.qformer.hidden_size, cfg.llm.d_model)
        self.audio_encoder = ClapAudioEncoder(cfg.audio) if cfg.uses_audio else None
        fusion_dim = cfg.qformer.hidden_size if cfg.fusion.position == "early" else cfg.llm.d_model
        self.fusion = build_fusion(cfg.fusion, fusion_dim, cfg.audio.projection_dim)
        self.saliency_head = SaliencyHead(cfg.llm.d_model) if cfg.saliency.enabled else None
        if cfg.lora.enabled:
            build.add_lora(self.language_model, cfg.lora)
        build.set_trainable(self, cfg)
        if cfg.gradient_checkpointing:
            build.enable_checkpointing(self)
        if cfg.frozen_dtype == "bfloat16":
            build.cast_frozen(self, torch.bfloat16)
        self._frozen_key: str | None = None
        if cfg.compile is not None:
            build.compile_parts(self, cfg.compile)
        self.train()

    @classmethod
    def from_config(cls, cfg: Blip2MRConfig, load_weights: bool = True) -> Blip2MR:
        """Build, then load the weights ``cfg.weights`` names (skipped with ``load_weights=False``,
        e.g. on the meta device)."""
        model = cls(cfg, build_tokenizer(cfg))
        if load_weights:
            load_configured_weights(model, cfg.weights)
            model._frozen_key = model._compute_frozen_key()
        return model

    # Modes and precision ---------------------------------------------------------------------
    def train(self, mode: bool = True) -> Blip2MR:
        """Frozen encoders stay in eval mode (no dropout; CLAP's batch norm keeps its statistics)."""
        super().train(mode)
        cfg = self.cfg
        frozen = [
            (self.vision_model, cfg.freeze_vit),
            (self.qformer, cfg.freeze_qformer),
            (self.audio_encoder, cfg.freeze_audio),
        ]
        for module, is_frozen in frozen:
            if module is not None and is_frozen:
                module.eval()
        return self

    def ready_for_prediction(self) -> Blip2MR:
        """Once its trained weights are loaded, for a model that only predicts: the towers' key
        is taken again on them (a run may train the ViT's last LayerNorm, or every tower; the
        video index is keyed by it), and LoRA is folded into the LLM's weights
        (``build.merge_lora``: faster, and training on would count it twice). Returns the model."""
        self.refresh_frozen_key()
        build.merge_lora(self.language_model)
        return self

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters."""
        return self.query_tokens.device

    def autocast(self) -> contextlib.AbstractContextManager:
        """The precision ``forward``, ``generate`` and ``encode_frozen`` run under (for callers
        that run their parts separately, e.g. the benchmarks)."""
        # bf16-stored weights mean bf16 compute. Otherwise leave precision to the caller's
        # autocast (the runner's `amp`); an `enabled=False` block here would switch it off.
        if self.cfg.frozen_dtype == "bfloat16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # Encoding --------------------------------------------------------------------------------
    @property
    def tokens_per_frame(self) -> int:
        """Q': the LLM tokens each fed frame contributes (``frame_tokens``' second dimension)."""
        if self.cfg.prompt.frame_token_aggregation == "mean":
            return 1
        return self.cfg.qformer.num_query_tokens + self.fusion.added_tokens

    def frame_tokens(self, batch: dict[str, Any]) -> torch.Tensor:
        """The LLM-width tokens of every fed frame (``frame_mask`` True), in (sample, frame) order:
        ``[N, Q', D]`` (Q' = Q, or 1 with the per-frame mean, or more if the fusion appends).

        The frozen part comes from the towers (``video``, ``audio_features``) or, in a batch of
        cached features (``qformer_tokens [B, T, Q, Dq]``, ``audio_embeds [B, T, Da]``), from the
        cache (``cached_features.py``); everything from the fusion on is the same code."""
        frame_mask = batch["frame_mask"].bool()
        if CACHED_KEYS[0] in batch:
            tokens, audio, audio_mask = cached_features(
                self.cfg, self.frozen_key, batch, frame_mask, self.trainable_towers()
            )
        else:
            tokens, audio, audio_mask = self._frozen_features(batch, frame_mask)
        if self.cfg.fusion.position == "early":
            tokens = self.fusion(tokens, audio, audio_mask)
        tokens = self.language_projection(tokens)  # [N, Q, D]
        if self.cfg.fusion.position == "late":
            tokens = self.fusion(tokens, audio, audio_mask)
        if self.cfg.prompt.frame_token_aggregation == "mean":
            tokens = tokens.mean(dim=1, keepdim=True)
        return tokens

    def encode(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The LLM encoder's input: ``inputs_embeds [B, L, D]`` and ``attention_mask [B, L]``
        (right-padded). Frames with ``frame_mask`` False are not in the sequence at all."""
        encoded = self._encode(batch)
        return encoded.inputs_embeds, encoded.attention_mask

    def _encode(self, batch: dict[str, Any]) -> EncoderInput:
        return encoder_input(self.prompt, self.language_model.get_input_embeddings(), self.frame_tokens(batch), batch)

    def run_encoder(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The LLM encoder's output ``[B, L, D]``; run once per batch and shared by the LM loss
        (or beam search) and the saliency head."""
        encoder = self.language_model.get_encoder()
        return encoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state

    def _frame_logits(self, hidden: torch.Tensor, encoded: EncoderInput) -> torch.Tensor:
        """``[N]`` saliency logits of the fed frames, in (sample, frame) order."""
        return self.saliency_head(hidden, encoded.frame_slots, encoded.tokens_per_frame)

    # Training --------------------------------------------------------------------------------
    def target_labels(self, batch: dict[str, Any], device: torch.device) -> torch.Tensor:
        """``[B, Lt]`` target ids (``[[s, e], ...]`` + eos), padded with -100 (ignored)."""
        return target_labels(self.prompt, batch, device)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The training losses of a batch (the target text teacher-forced).

        Args:
            batch: ``lavis.datasets.collate``'s dict: ``video [B, T, 3, H, W]``, ``frame_mask
                [B, T]``, ``timestamps [B, T]``, ``audio_features``/``audio_mask`` (or the cached
                ``qformer_tokens``/``audio_embeds``), ``duration [B]``, ``query`` and ``windows``
                (lists), and ``saliency_targets [B, T]`` for the saliency head.

        Returns:
            ``{"loss", "loss_lm"[, "loss_saliency"]}``: ``loss`` (scalar, what is optimized) is
            the LM cross-entropy plus ``saliency.loss_weight`` times the saliency loss; the parts
            are detached, for logging.

        Example (``model`` and ``batch`` from the class example):
            >>> losses = model(batch)
            >>> sorted(losses), losses["loss"].shape
            (['loss', 'loss_lm'], torch.Size([]))
        """
        with self.autocast():
            encoded = self._encode(batch)
            labels = self.target_labels(batch, encoded.inputs_embeds.device)
            hidden = self.run_encoder(encoded.inputs_embeds, encoded.attention_mask)
            out = self.language_model(
                encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                attention_mask=encoded.attention_mask,
                labels=labels,
            )
            losses = {"loss": out.loss, "loss_lm": out.loss.detach()}
            if self.saliency_head is not None:
                sal = batch_saliency_loss(self._frame_logits(hidden, encoded), batch, self.cfg.saliency)
                losses["loss_saliency"] = sal.detach()
                losses["loss"] = out.loss + self.cfg.saliency.loss_weight * sal
        return losses

    # Inference -------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, batch: dict[str, Any]) -> list[list[tuple[str, float]]]:
        """Beam search (``model.generation``: beams, lengths) on a batch, without windows.

        Args:
            batch: as for ``forward``; ``windows`` and ``saliency_targets`` are not read.

        Returns:
            Per sample the returned beams, best first, as ``(text, score)`` with the
            length-normalized sequence log-probability as score.

        Example (``model`` and ``batch`` from the class example):
            >>> beams = model.generate(batch)
            >>> len(beams), len(beams[0]) == model.cfg.generation.num_beams, type(beams[0][0][0])
            (2, True, <class 'str'>)
        """
        with self.autocast():
            return self._search(batch)[0]

    def _search(self, batch: dict[str, Any]) -> tuple[list[list[tuple[str, float]]], torch.Tensor, EncoderInput]:
        """Beam search's beams, the encoder output it decoded from and the encoder input."""
        encoded = self._encode(batch)
        hidden = self.run_encoder(encoded.inputs_embeds, encoded.attention_mask)
        beams = beam_search(self.language_model, self.tokenizer, self.cfg.generation, hidden, encoded.attention_mask)
        return beams, hidden, encoded

    @torch.no_grad()
    def predict(self, batch: dict[str, Any]) -> list[ScoredWindows]:
        """Scored windows per sample: the beams parsed, merged and scored (``answer.py``).

        Args:
            batch: as for ``generate``.

        Returns:
            Per sample a ``ScoredWindows``: at most ``generation.max_windows`` ``[start, end,
            score]`` windows in seconds, best first, ``invalid`` (the best beam needed repairs)
            and the beams' ``texts``. With the saliency head also its fed frames' times and
            relevance (0..1), and (``window_score: vote_x_saliency``) each window's vote
            weighted by the relevance inside it.

        Example (``model`` and ``batch`` from the class example; random weights write no
        windows, a trained model does):
            >>> [scored.invalid for scored in model.predict(batch)]
            [True, True]
        """
        with self.autocast():
            beams, hidden, encoded = self._search(batch)
            relevance = (
                None if self.saliency_head is None else torch.sigmoid(self._frame_logits(hidden, encoded).float())
            )
        durations = batch["duration"].float().cpu().tolist()
        results = beams_to_windows(beams, durations, self.prompt.time_format, self.cfg.generation.max_windows)
        if relevance is not None:
            for result, (times, scores) in zip(results, frame_relevance(relevance, batch)):
                result.frame_times, result.frame_scores = times, scores
                if self.cfg.saliency.window_score == "vote_x_saliency":
                    rescore_windows(result)
        return results
