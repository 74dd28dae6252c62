"""Typed config of the ``blip2_mr`` model (the SMS / Mr. BLIP architecture).

Every field is read somewhere in ``lavis/models/blip2_mr/``. Defaults are the full-size
``pretrain_flant5xl`` preset (EVA ViT-g/14 at 224, a 12-layer Q-Former with 32 queries,
Flan-T5-XL, CLAP htsat-fused); ``configs/models/blip2_mr_tiny.yaml`` shrinks every part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from lavis.common.constraints import DropoutRate, NonNegativeFloat, PositiveFloat, PositiveInt
from lavis.models.blip2_mr.saliency import SaliencyConfig
from lavis.models.blip2_mr.text_config import DecodingConfig, PromptConfig
from lavis.models.fusion import FusionConfig
from lavis.models.fusion.gated import GatedCrossAttentionConfig


@dataclass
class VisionConfig:
    """``Blip2VisionModel`` (EVA ViT-g at full size). Frames are ``[3, image_size, image_size]``."""

    image_size: PositiveInt = 224
    patch_size: PositiveInt = 14
    hidden_size: PositiveInt = 1408
    intermediate_size: PositiveInt = 6144
    num_layers: PositiveInt = 39
    num_heads: PositiveInt = 16
    layer_norm_eps: PositiveFloat = 1e-6  # the transformer blocks' LayerNorms (EVA: 1e-6)
    # The final LayerNorm (LAVIS ``ln_vision``): a plain ``nn.LayerNorm`` in LAVIS / SMS / Mr. BLIP,
    # so PyTorch's default 1e-5, not the blocks' 1e-6. It shows on low-variance features only.
    ln_vision_eps: PositiveFloat = 1e-5
    # Std of the random init (pretrained weights replace it). 0.02 (BERT's) makes a from-scratch
    # tiny ViT + Q-Former pass ~1 % of the frame-to-frame differences on to the LLM; the demo's
    # from-scratch recipe uses 0.1 so that the frames look different from the first step.
    initializer_range: NonNegativeFloat = 0.02

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"vision.image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"vision.hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")


@dataclass
class QFormerConfig:
    """``Blip2QFormerModel`` plus ``num_query_tokens`` learned queries (query path only)."""

    num_query_tokens: PositiveInt = 32
    hidden_size: PositiveInt = 768
    num_layers: PositiveInt = 12
    num_heads: PositiveInt = 12
    intermediate_size: PositiveInt = 3072
    cross_attention_frequency: PositiveInt = 2
    dropout: DropoutRate = 0.1
    layer_norm_eps: PositiveFloat = 1e-12
    initializer_range: NonNegativeFloat = 0.02  # random-init std (see VisionConfig); the query tokens' too

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"qformer.hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")


@dataclass
class LLMConfig:
    """``T5ForConditionalGeneration`` (Flan-T5-XL at full size)."""

    vocab_size: Optional[PositiveInt] = 32128  # null: the tokenizer's size (built-in tokenizer)
    d_model: PositiveInt = 2048
    d_kv: PositiveInt = 64
    d_ff: PositiveInt = 5120
    num_layers: PositiveInt = 24
    num_decoder_layers: PositiveInt = 24
    num_heads: PositiveInt = 32
    feed_forward_proj: str = "gated-gelu"
    # The FFN activation. LAVIS, Mr. BLIP and SMS set exact GELU on Flan-T5 (``dense_act_fn =
    # "gelu"``); transformers' default for ``gated-gelu`` is the tanh approximation ``gelu_new``
    # (T5 logits move by ~3e-3). null: what ``feed_forward_proj`` implies in transformers.
    dense_act_fn: Optional[Literal["gelu", "gelu_new", "relu", "silu"]] = "gelu"
    dropout: DropoutRate = 0.1
    layer_norm_eps: PositiveFloat = 1e-6
    relative_attention_num_buckets: PositiveInt = 32
    relative_attention_max_distance: PositiveInt = 128
    # Flan-T5 has a separate lm_head; tying also scales decoder outputs by d_model**-0.5 (T5 v1.0).
    tie_word_embeddings: bool = False
    # "sincos": every single-token integer's embedding starts as sin/cos of its value, so nearby
    # numbers start out similar (what a from-scratch tiny LLM needs to learn times quickly).
    number_embedding_init: Literal["random", "sincos"] = "random"


@dataclass
class AudioTowerConfig:
    """``ClapAudioModelWithProjection`` (the HTSAT audio tower of CLAP htsat-fused at full size).

    Input: one log-mel per frame, ``[n_frames, num_mel_bins]`` with ``n_frames`` at most
    ``spec_size * (spec_size // num_mel_bins)`` (1024 for htsat: 10 s at hop 480 is 1001 frames).
    """

    num_mel_bins: PositiveInt = 64
    spec_size: PositiveInt = 256
    window_size: PositiveInt = 8
    patch_size: PositiveInt = 4
    patch_stride: PositiveInt = 4
    patch_embeds_hidden_size: PositiveInt = 96
    depths: list[PositiveInt] = field(default_factory=lambda: [2, 2, 6, 2])
    num_heads: list[PositiveInt] = field(default_factory=lambda: [4, 8, 16, 32])
    projection_dim: PositiveInt = 512
    enable_fusion: bool = True
    fusion_type: str = "aff_2d"
    normalize: bool = True  # L2-normalize the embedding, as CLAP's get_audio_features does

    def __post_init__(self) -> None:
        if self.spec_size % self.num_mel_bins:
            raise ValueError(f"audio.spec_size {self.spec_size} is not a multiple of num_mel_bins {self.num_mel_bins}")
        if len(self.depths) != len(self.num_heads):
            raise ValueError(f"audio.depths {self.depths} and audio.num_heads {self.num_heads} differ in length")

    @property
    def max_frames(self) -> int:
        """The longest log-mel clip (in frames) the CLAP tower's spectrogram size holds."""
        return self.spec_size * (self.spec_size // self.num_mel_bins)


@dataclass
class LoraConfig:
    """LoRA on the LLM through ``peft``.

    The default targets are the reference's: its regex over every ``Linear`` of T5 finds
    ``q, k, v, o, wi_0, wi_1, wo`` and ``lm_head``, so SMS / Mr. BLIP checkpoints carry LoRA on
    ``lm_head`` too. Loading a checkpoint whose targets differ is an error that names both lists.
    """

    enabled: bool = True
    r: PositiveInt = 8
    alpha: PositiveInt = 8
    dropout: DropoutRate = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q", "k", "v", "o", "wi_0", "wi_1", "wo", "lm_head"])

    def __post_init__(self) -> None:
        if self.enabled and (self.r < 1 or not self.target_modules):
            raise ValueError("lora needs r >= 1 and at least one target module when enabled")


@dataclass
class TokenizerConfig:
    """``model.tokenizer``: which tokenizer writes the prompt and reads the answers."""

    # auto: a pretrained tokenizer from `path`, else from weights.blip2_hf_dir / weights.llm_dir
    # when set; the built-in one when none is set. pretrained: read from one of those directories
    # (an error naming this section when none holds tokenizer files).
    source: Literal["auto", "builtin", "pretrained"] = "pretrained"
    path: Optional[str] = None
    max_number: PositiveInt = 300  # built-in: every integer 0..max_number is one token
    words: list[str] = field(default_factory=list)  # built-in: extra whole-word tokens

    def locations(self, weights: WeightsConfig) -> list[str]:
        """The directories a pretrained tokenizer is looked for in, in order (those that are set)."""
        return [p for p in ([self.path] if self.path else [weights.blip2_hf_dir, weights.llm_dir]) if p]

    def is_builtin(self, weights: WeightsConfig) -> bool:
        """Whether the built-in tokenizer is used: asked for, or ``auto`` with no directory set."""
        return self.source == "builtin" or (self.source == "auto" and not self.locations(weights))


@dataclass
class WeightsConfig:
    """Local paths only (null: random init). See checkpoints/README.md for what goes where."""

    blip2_hf_dir: Optional[str] = None  # HF-format Blip2ForConditionalGeneration (Flan-T5-XL) dir
    eva_vit_pth: Optional[str] = None  # LAVIS eva_vit_g.pth
    blip2_lavis_pth: Optional[str] = None  # LAVIS blip2_pretrained_flant5xl.pth
    llm_dir: Optional[str] = None  # HF T5 dir (Flan-T5-XL): LLM weights (+ tokenizer)
    clap_dir: Optional[str] = None  # HF CLAP dir (laion/clap-htsat-fused): the audio tower
    # Loaded last: what training writes (checkpoint_*.pt), an exported .safetensors (lavis.export),
    # or a Mr. BLIP / SMS .pth exactly as the reference saved it (checkpoints/README.md).
    finetuned: Optional[str] = None
    # Trainable parameters `finetuned` may lack (key prefixes), e.g. ["fusion."] to start SMS
    # from a video-only Mr. BLIP checkpoint with a fresh fusion module.
    finetuned_allow_missing: list[str] = field(default_factory=list)
    # Key prefixes of the fusion module in a reference .pth (renamed to `fusion.`).
    finetuned_fusion_prefixes: list[str] = field(default_factory=lambda: ["fusion."])

    def __post_init__(self) -> None:
        if self.blip2_hf_dir and (self.eva_vit_pth or self.blip2_lavis_pth):
            raise ValueError("weights: give blip2_hf_dir or the LAVIS files (eva_vit_pth, blip2_lavis_pth), not both")


@dataclass
class Blip2MRConfig:
    """``model:`` of a ``blip2_mr`` experiment: every part of the model, its weights and what trains."""

    arch: str = "blip2_mr"
    model_type: str = "pretrain_flant5xl"
    vision: VisionConfig = field(default_factory=VisionConfig)
    qformer: QFormerConfig = field(default_factory=QFormerConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    audio: AudioTowerConfig = field(default_factory=AudioTowerConfig)
    fusion: FusionConfig = field(default_factory=GatedCrossAttentionConfig)  # the fusion's own config
    lora: LoraConfig = field(default_factory=LoraConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    generation: DecodingConfig = field(default_factory=DecodingConfig)
    saliency: SaliencyConfig = field(default_factory=SaliencyConfig)  # per-frame relevance head (off)
    weights: WeightsConfig = field(default_factory=WeightsConfig)
    # Freezing. Trainable by default: LoRA, the fusion, the projection, the ViT's final LayerNorm.
    freeze_vit: bool = True  # patch embedding + transformer blocks
    freeze_vit_ln: bool = False  # the ViT's final LayerNorm (LAVIS `ln_vision`)
    freeze_qformer: bool = True  # Q-Former and its query tokens
    freeze_audio: bool = True  # CLAP audio tower
    freeze_llm: bool = True  # the LLM's own weights (LoRA adapters stay trainable)
    # bfloat16: frozen Linear/Conv/Embedding weights are stored in bf16 (halves the frozen
    # ViT-g/T5/CLAP memory on GPU) and the model runs under bf16 autocast.
    frozen_dtype: Literal["float32", "bfloat16"] = "float32"
    gradient_checkpointing: bool = False  # ViT, Q-Former and LLM blocks recompute activations
    # Attention kernels of the ViT, Q-Former and T5 (transformers' attn_implementation): "sdpa" is
    # torch's scaled_dot_product_attention (T5's relative position bias enters as its additive
    # mask), "eager" the plain matmul + softmax (for debugging). CLAP's windowed attention has no
    # SDPA path in transformers and always runs eager (64-token windows: little to gain).
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    # torch.compile backend for the ViT, Q-Former, CLAP, the fusion and the LLM's encoder blocks
    # (nearly all the FLOPs); null: no compilation. The LLM decoder stays eager: generation calls
    # it with a growing KV cache, which would recompile at every length. "aot_eager" traces the
    # same graphs without code generation (a quick check that compilation works).
    compile: Optional[Literal["inductor", "aot_eager"]] = None

    def __post_init__(self) -> None:
        if self.lora.enabled and not self.freeze_llm:
            raise ValueError("lora.enabled with freeze_llm: false trains the LLM twice; pick one")
        if self.prompt.layout == "reference" and self.tokenizer.is_builtin(self.weights):
            # Checked here, not at the first batch: a full-size model takes minutes to build.
            raise ValueError(
                "prompt.layout=reference writes Flan-T5's tokens (its <extra_id_0> sentinel and "
                "number pieces), which the built-in tokenizer does not have: set model.tokenizer.path "
                "(or model.weights.llm_dir) to a local Flan-T5 tokenizer directory, or use "
                "model.prompt.layout=plain"
            )

    @property
    def uses_audio(self) -> bool:
        """Whether the model reads audio (its fusion does): it then has a CLAP tower and needs audio inputs."""
        return self.fusion.reads_audio
