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
from lavis.models.blip2_mr.cached_features import CACHED_KEYS, cached_features, compute_frozen_key, scatter_frames
from lavis.models.blip2_mr.checkpoint import load_configured_weights
from lavis.models.blip2_mr.config import Blip2MRConfig
from lavis.models.blip2_mr.generation import beam_search
from lavis.models.blip2_mr.input_checks import check_dataset_inputs
from lavis.models.blip2_mr.llm_inputs import EncoderInput, encoder_input, target_labels
from lavis.models.blip2_mr.prompt import PromptBuilder
from lavis.models.blip2_mr.saliency import SaliencyHead, frame_relevance, saliency_loss
from lavis.models.blip2_mr.tokenizer import TextTokenizer, build_tokenizer
from lavis.models.fusion import build_fusion


@registry.register_model("blip2_mr")
class Blip2MR(nn.Module):
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

    @property
    def device(self) -> torch.device:
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
            tokens, audio, audio_mask = cached_features(self.cfg, self.frozen_key, batch, frame_mask)
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

    def _frozen_features(
        self, batch: dict[str, Any], frame_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The towers on the fed frames: Q-Former tokens ``[N, Q, Dq]``, CLAP embeddings
        ``[N, Da]`` (zero where there is no audio) and the audio mask ``[N]``."""
        video = batch["video"]
        size = self.cfg.vision.image_size
        if video.shape[-2:] != (size, size):
            raise ValueError(f"video frames are {tuple(video.shape[-2:])}, model.vision.image_size is {size}")
        frames = video[frame_mask]  # [N, 3, H, W]
        image = self.vision_model(pixel_values=frames).last_hidden_state  # [N, 1+P, Dv]
        queries = self.query_tokens.expand(frames.shape[0], -1, -1)
        tokens = self.qformer(query_embeds=queries, encoder_hidden_states=image).last_hidden_state  # [N, Q, Dq]
        audio, audio_mask = self._audio(batch, frame_mask)
        return tokens, audio, audio_mask

    @torch.no_grad()
    def encode_frozen(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """What ``mr_data.cache_features`` stores: the towers' outputs on a video batch in the
        batch layout, ``qformer_tokens [B, T, Q, Dq]`` and ``audio_embeds [B, T, Da]`` (zero at
        padded frames and clips without audio)."""
        frame_mask = batch["frame_mask"].bool()
        with self.autocast():
            tokens, audio, _ = self._frozen_features(batch, frame_mask)
        return {"qformer_tokens": scatter_frames(tokens, frame_mask), "audio_embeds": scatter_frames(audio, frame_mask)}

    @property
    def frozen_key(self) -> str:
        """Fingerprint of the frozen towers' weights (``cached_features.py``); computed once, when first
        needed or by ``from_config`` after loading the weights (before any sharding)."""
        if self._frozen_key is None:
            self._frozen_key = self._compute_frozen_key()
        return self._frozen_key

    def _compute_frozen_key(self) -> str:
        parts = {"query_tokens": self.query_tokens, "vision_model": self.vision_model, "qformer": self.qformer}
        return compute_frozen_key({**parts, "audio_encoder": self.audio_encoder})

    def _audio(self, batch: dict[str, Any], frame_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[N, Da]`` CLAP embeddings of the fed frames' clips (zero where there is no audio) and
        the ``[N]`` audio mask."""
        n = int(frame_mask.sum())
        if self.audio_encoder is None:
            zeros = torch.zeros(n, self.cfg.audio.projection_dim, device=frame_mask.device)
            return zeros, torch.zeros(n, dtype=torch.bool, device=frame_mask.device)
        for key in ("audio_features", "audio_mask"):
            if key not in batch:
                raise KeyError(f"batch has no '{key}', which fusion '{self.cfg.fusion.name}' needs")
        audio_mask = batch["audio_mask"].bool()[frame_mask]
        return self.audio_encoder(batch["audio_features"][frame_mask], audio_mask), audio_mask

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
        """Teacher-forced cross-entropy of the target text, plus (``saliency.enabled``) the
        saliency loss weighted by ``saliency.loss_weight``: ``{"loss", "loss_lm"[, "loss_saliency"]}``."""
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
                frame_mask = batch["frame_mask"].bool()
                sample_of = torch.arange(frame_mask.shape[0], device=frame_mask.device)[:, None].expand_as(frame_mask)
                sal = saliency_loss(
                    self._frame_logits(hidden, encoded),
                    batch["saliency_targets"][frame_mask],
                    sample_of[frame_mask],
                    self.cfg.saliency,
                )
                losses["loss_saliency"] = sal.detach()
                losses["loss"] = out.loss + self.cfg.saliency.loss_weight * sal
        return losses

    # Inference -------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, batch: dict[str, Any]) -> list[list[tuple[str, float]]]:
        """Beam search; per sample the returned beams, best first, as ``(text, score)`` with the
        length-normalized sequence log-probability as score."""
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
        """Per sample at most ``generation.max_windows`` ``[start, end, score]`` windows in
        seconds, best first (beams parsed, merged and scored by ``windows_from_beams``). With the
        saliency head, each sample also carries its fed frames' times and relevance (0..1), and
        (``window_score: vote_x_saliency``) each window's vote is weighted by the relevance
        inside it."""
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
