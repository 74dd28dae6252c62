"""blip2_mr computes what the reference SMS code computes, on the reference's own files.

The fixture (``../shared/reference_sms``, see its README; the tests skip without it) holds the
reference's BLIP-2 files, an SMS ``checkpoint_best.pth`` exactly as its runner saved it, a tiny
Flan-T5-style model + tokenizer, and what the reference computed from them. The model is built
the way ``python -m lavis.evaluate --cfg-path X --options ...`` builds it: the published preset at
the fixture's sizes (``tests/configs/reference_sms_tiny.yaml``) with the documented
``model.weights.*`` keys. Every
stage must match to 1e-4 of the output's scale (fp32), and the encoder sequence token for token.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from lavis.common.config import load_experiment
from lavis.models import build_model
from lavis.models.blip2_mr.checkpoint import WeightsMismatchError
from lavis.models.blip2_mr.generation import beam_search, hf_generation_config
from lavis.models.blip2_mr.model import Blip2MR

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURE = REPO_ROOT.parent / "shared" / "reference_sms"
CKPT = FIXTURE / "checkpoints"
CONFIG = REPO_ROOT / "tests" / "configs" / "reference_sms_tiny.yaml"
RTOL = 1e-4  # of each output's scale: what the reference's own fp32 CPU reruns meet

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(not FIXTURE.is_dir(), reason=f"reference fixture not found at {FIXTURE}"),
]

BLIP2_FILES = [
    f"model.weights.eva_vit_pth={CKPT / 'eva_vit_g.pth'}",
    f"model.weights.blip2_lavis_pth={CKPT / 'blip2_pretrained_flant5xl.pth'}",
    f"model.weights.llm_dir={CKPT / 'flan_t5_tiny'}",
]
SMS_CHECKPOINT = [
    f"model.weights.finetuned={CKPT / 'checkpoint_best.pth'}",
    "model.weights.finetuned_fusion_prefixes=[gatedCrossAttention.]",
]


class FixedAudioEmbedding(nn.Module):
    """The fixture's stand-in for CLAP (its README: a fixed embedding per frame): each clip's
    'features' are its embedding, ``[N, 1, 512]`` -> ``[N, 512]``."""

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return features[:, 0]


def build(*options: str) -> Blip2MR:
    model = build_model(load_experiment(CONFIG, list(options)).model).eval()
    if model.audio_encoder is not None:
        model.audio_encoder = FixedAudioEmbedding()
    return model


@pytest.fixture(scope="module")
def ref() -> dict:
    return torch.load(FIXTURE / "ref_outputs.pt", weights_only=True)


@pytest.fixture(scope="module")
def batch() -> dict:
    inp = torch.load(FIXTURE / "inputs.pt", weights_only=True)
    b, t = inp["timestamps"].shape
    ones = torch.ones(b, t, dtype=torch.bool)
    return {
        "video": inp["frames"],
        "frame_mask": ones,
        "timestamps": inp["timestamps"],
        "duration": inp["durations"],
        "query": inp["queries"],
        "windows": inp["windows"],
        "audio_mask": ones,
        "audio_features": inp["audio"].view(b, t, 1, -1),  # sample-major, as the fixture stores it
        "x_t5": inp["x_t5"],
        "x_mask": inp["x_mask"],
        "x_labels": inp["x_labels"],
    }


@pytest.fixture(scope="module")
def sms(ref) -> Blip2MR:
    torch.manual_seed(0)
    return build(*BLIP2_FILES, *SMS_CHECKPOINT)


def assert_matches(ours: torch.Tensor, reference: torch.Tensor, what: str) -> None:
    ours, reference = ours.detach().float(), reference.float()
    assert ours.shape == reference.shape, f"{what}: shape {tuple(ours.shape)} vs {tuple(reference.shape)}"
    err, scale = (ours - reference).abs().max().item(), reference.abs().max().item()
    assert err <= RTOL * scale, f"{what}: max error {err:.3g} > {RTOL} x scale {scale:.3g}"


def towers(model: Blip2MR, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ViT blocks' output (LAVIS ``visual_encoder``), after ``ln_vision``, and the Q-Former's."""
    vision = model.vision_model(pixel_values=frames.flatten(0, 1), output_hidden_states=True)
    queries = model.query_tokens.expand(vision.last_hidden_state.shape[0], -1, -1)
    qformer = model.qformer(query_embeds=queries, encoder_hidden_states=vision.last_hidden_state).last_hidden_state
    return vision.hidden_states[-1], vision.last_hidden_state, qformer


@torch.no_grad()
def test_blip2_files_alone_match_stage_by_stage(ref, batch):
    """A_*: the BLIP-2 files (EVA ViT, stage-2 Q-Former, Flan-T5) as Mr. BLIP starts from them."""
    model = build(*BLIP2_FILES, "model.fusion.name=none")
    vit, ln, qformer = towers(model, batch["video"])
    assert_matches(vit, ref["A_vit"], "ViT")
    assert_matches(ln, ref["A_ln"], "ln_vision")
    assert_matches(qformer, ref["A_qformer"], "Q-Former")
    assert_matches(model.frame_tokens(batch), ref["A_proj_nofusion"], "projection")
    t5 = model.language_model(inputs_embeds=batch["x_t5"], attention_mask=batch["x_mask"], labels=batch["x_labels"])
    assert_matches(t5.logits, ref["A_t5_fixed_logits"], "T5 logits")
    assert_matches(t5.loss, ref["A_t5_fixed_loss"], "T5 loss")


@torch.no_grad()
def test_sms_checkpoint_matches_every_stage(sms, ref, batch):
    """B_*: the SMS checkpoint on top: towers, fusion, projection, the encoder sequence, the loss
    and the logits of a training step."""
    vit, ln, qformer = towers(sms, batch["video"])
    assert_matches(vit, ref["B_vit"], "ViT")
    assert_matches(ln, ref["B_ln"], "ln_vision")
    assert_matches(qformer, ref["B_qformer"], "Q-Former")
    audio = batch["audio_features"].flatten(0, 1)[:, 0]
    assert_matches(sms.fusion(qformer, audio, batch["audio_mask"].flatten()), ref["B_fusion"], "gca fusion")
    assert_matches(sms.frame_tokens(batch), ref["B_proj"], "projection")

    inputs, mask = sms.encode(batch)
    layout = [
        [
            -1 if i < 0 else i
            for i in sms.prompt.encoder_sample(
                batch["timestamps"][b].tolist(),
                float(batch["duration"][b]),
                batch["query"][b],
                sms.cfg.qformer.num_query_tokens,
            ).ids
        ]
        for b in range(len(batch["query"]))
    ]
    assert layout == [[i for i in row if i is not None] for row in ref["B_layout"]]
    assert mask.long().tolist() == ref["B_attention_mask"].tolist()
    # Padded positions are masked out of every attention: only the real ones must agree.
    assert_matches(inputs * mask[..., None], ref["B_inputs_embeds"] * ref["B_attention_mask"][..., None], "inputs")

    labels = sms.target_labels(batch, inputs.device)
    assert labels.tolist() == ref["B_labels"].tolist()
    out = sms.language_model(inputs_embeds=inputs, attention_mask=mask, labels=labels)
    real = labels != -100
    assert_matches(out.logits[real], ref["B_logits"][real], "logits")
    assert_matches(sms(batch)["loss"], ref["B_loss"], "loss (forward)")
    t5 = sms.language_model(inputs_embeds=batch["x_t5"], attention_mask=batch["x_mask"], labels=batch["x_labels"])
    assert_matches(t5.logits, ref["B_t5_fixed_logits"], "T5 + LoRA logits")
    assert_matches(t5.loss, ref["B_t5_fixed_loss"], "T5 + LoRA loss")


@torch.no_grad()
@pytest.mark.parametrize("beams, key", [(1, "B_gen"), (5, "B_beam5")])
def test_sms_checkpoint_decodes_the_same_tokens(sms, ref, batch, beams, key):
    settings = dataclasses.replace(
        sms.cfg.generation, num_beams=beams, num_return_sequences=1, max_new_tokens=ref["sizes"]["max_new_tokens"]
    )
    inputs, mask = sms.encode(batch)
    encoded = sms.language_model.get_encoder()(inputs_embeds=inputs, attention_mask=mask)
    out = sms.language_model.generate(
        encoder_outputs=encoded, attention_mask=mask, generation_config=hf_generation_config(settings, sms.tokenizer)
    )
    assert out.sequences.tolist() == ref[f"{key}_sequences"].tolist()
    # beam_search (what generate and predict run) returns the same text as its best beam.
    best = [
        beams_of_sample[0][0]
        for beams_of_sample in beam_search(
            sms.language_model, sms.tokenizer, settings, sms.run_encoder(inputs, mask), mask
        )
    ]
    assert best == ref[f"{key}_text"]


def test_long_video_probe_layout_and_number_replacements(sms, ref):
    """Numbers the tokenizer splits (165) are written as the nearest one it does not (171); 199.6 s
    rounds to 200, which the reference never checks and writes in two pieces."""
    probe = ref["probe"]
    ids = sms.prompt.encoder_sample(
        probe["timestamps"][0].tolist(), float(probe["durations"][0]), probe["query"], sms.cfg.qformer.num_query_tokens
    ).ids
    assert ids == probe["layout"]
    numbers = sms.prompt.reference_numbers
    assert numbers.replacements == ref["annoying_numbers"]
    assert numbers.separator_id == ref["separator_token"]


def test_published_settings_are_the_references(sms, ref):
    lora = {name.rsplit(".", 1)[-1] for name, m in sms.language_model.named_modules() if hasattr(m, "lora_A")}
    assert sorted(lora) == ref["lora_targets"]
    assert [sms.cfg.lora.r, sms.cfg.lora.alpha] == ref["lora_r_alpha"]
    assert sms.language_model.config.dense_act_fn == "gelu"  # exact GELU, as LAVIS sets it
    with torch.no_grad():
        assert_matches(sms.vision_model.post_layernorm(ref["ln_probe_in"]), ref["ln_probe_out"], "ln_vision eps")


def test_unused_reference_keys_are_dropped_by_named_rules_and_said_once(caplog):
    with caplog.at_level(logging.INFO, logger="lavis.models.blip2_mr"):
        build(*BLIP2_FILES, *SMS_CHECKPOINT)
    lines = [r.getMessage() for r in caplog.records if "checkpoint_best.pth" in r.getMessage()]
    assert len(lines) == 1
    for rule in ("audio_t5_proj (2 keys", "T5 embed_tokens copies (2 keys", "Q-Former position_ids (1 key"):
        assert rule in lines[0]


def _edited_checkpoint(tmp_path: Path, add: dict, remove: tuple[str, ...] = ()) -> Path:
    ckpt = torch.load(CKPT / "checkpoint_best.pth", weights_only=True)
    ckpt["model"] = {k: v for k, v in ckpt["model"].items() if k not in remove} | add
    path = tmp_path / "edited.pth"
    torch.save(ckpt, path)
    return path


def test_anything_else_stays_strict_and_named(tmp_path):
    lora_key = "t5_model.base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.default.weight"
    path = _edited_checkpoint(tmp_path, {"audio_t5_proj_v2.weight": torch.zeros(1)}, remove=(lora_key,))
    with pytest.raises(WeightsMismatchError) as err:
        build(*BLIP2_FILES, f"model.weights.finetuned={path}", SMS_CHECKPOINT[1])
    assert "missing (1): language_model.encoder.block.0.layer.0.SelfAttention.q.lora_A.default.weight" in str(err.value)
    assert "unexpected (1): audio_t5_proj_v2.weight" in str(err.value)
    # Late fusion reads audio_t5_proj in the reference, so there it is not "unused": refused, named.
    with pytest.raises(WeightsMismatchError, match=r"unexpected \(2\): audio_t5_proj.bias, audio_t5_proj.weight"):
        build(*BLIP2_FILES, *SMS_CHECKPOINT, "model.fusion.position=late")


def test_other_lora_targets_are_named_with_the_option_to_set():
    with pytest.raises(WeightsMismatchError) as err:
        build(*BLIP2_FILES, *SMS_CHECKPOINT, "model.lora.target_modules=[q,k,v,o,wi_0,wi_1,wo]")
    msg = str(err.value)
    assert "LoRA targets differ: the file has LoRA on ['k', 'lm_head', 'o', 'q', 'v', 'wi_0', 'wi_1', 'wo']" in msg
    assert "set model.lora.target_modules=[k,lm_head,o,q,v,wi_0,wi_1,wo]" in msg


def test_a_reference_checkpoint_with_the_plain_layout_says_so(caplog, ref, batch):
    with caplog.at_level(logging.WARNING):
        model = build(*BLIP2_FILES, *SMS_CHECKPOINT, "model.prompt.layout=plain")
    assert any("model.prompt.layout=plain" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    with torch.no_grad():  # ... and it does change what the checkpoint computes
        assert abs(model(batch)["loss"].item() - ref["B_loss"].item()) > 1e-3


@torch.no_grad()
def test_bf16_frozen_weights_move_the_loss_little(ref, batch):
    """``frozen_dtype: bfloat16`` (the published preset's, for GPU memory) is not the reference's
    fp32: measured on this fixture it moves the loss by ~0.02 (0.25 %); checkpoints/README.md."""
    model = build(*BLIP2_FILES, *SMS_CHECKPOINT, "model.frozen_dtype=bfloat16")
    shift = abs(model(batch)["loss"].item() - ref["B_loss"].item())
    assert 0 < shift < 0.01 * ref["B_loss"].item()
