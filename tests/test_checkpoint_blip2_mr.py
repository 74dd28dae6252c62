"""blip2_mr weights in and out: HF directories, LAVIS / Mr. BLIP .pth files, our safetensors."""

import pytest
import torch
from safetensors.torch import save_file
from transformers import Blip2Config, Blip2ForConditionalGeneration, ClapConfig, ClapModel

from lavis.models.blip2_mr.checkpoint import WeightsMismatchError, load_weights, save_weights
from lavis.models.blip2_mr.convert import convert_lavis_state_dict
from lavis.models.blip2_mr.model import Blip2MR
from lavis.models.model_config import model_config

# The full preset's setup (frozen parts, LoRA) at tiny sizes, with pretrained-style random LLM init.
PUBLISHED = [
    "model.freeze_vit=true",
    "model.freeze_qformer=true",
    "model.freeze_audio=true",
    "model.freeze_llm=true",
    "model.lora.enabled=true",
    "model.llm.number_embedding_init=random",
]


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(*options, seed=0):
    torch.manual_seed(seed)
    return Blip2MR.from_config(model_config("blip2_mr", "tiny", [*PUBLISHED, *options]))


def assert_same(a: torch.Tensor, b: torch.Tensor):
    torch.testing.assert_close(a.float(), b.float(), rtol=0, atol=0)


def test_hf_blip2_directory_loads_through_the_preset_path(tmp_path):
    ref = tiny(seed=1)  # only for the HF sub-configs of the same sizes
    hf = Blip2ForConditionalGeneration(
        Blip2Config(
            vision_config=ref.vision_model.config.to_dict(),
            qformer_config=ref.qformer.config.to_dict(),
            text_config=ref.language_model.config.to_dict(),
            num_query_tokens=ref.cfg.qformer.num_query_tokens,
        )
    )
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_()  # HF zero-inits some tensors; make every one distinguishable
    hf.save_pretrained(tmp_path / "blip2")
    model = tiny(f"model.weights.blip2_hf_dir={tmp_path / 'blip2'}", "model.tokenizer.source=builtin", seed=2)
    q = "encoder.block.0.layer.0.SelfAttention.q"
    assert_same(model.language_model.get_submodule(q).base_layer.weight, hf.language_model.get_submodule(q).weight)
    assert_same(
        model.vision_model.encoder.layers[1].self_attn.qkv.bias, hf.vision_model.encoder.layers[1].self_attn.qkv.bias
    )
    assert_same(
        model.qformer.encoder.layer[0].crossattention.attention.key.weight,
        hf.qformer.encoder.layer[0].crossattention.attention.key.weight,
    )
    assert_same(model.query_tokens, hf.query_tokens)
    assert_same(model.language_projection.weight, hf.language_projection.weight)
    assert_same(model.language_model.shared.weight, hf.language_model.shared.weight)


def test_sincos_numbers_refuse_pretrained_llm_weights(tmp_path):
    with pytest.raises(WeightsMismatchError, match="sincos"):
        tiny(
            "model.llm.number_embedding_init=sincos",
            f"model.weights.llm_dir={tmp_path}",
            "model.tokenizer.source=builtin",
        )


def test_llm_and_clap_directories(tmp_path):
    ref = tiny(seed=1)
    # An HF T5 directory: config + weights without adapters, tied embeddings stored once.
    ref.language_model.config.save_pretrained(tmp_path / "t5")
    t5_state = {k.replace(".base_layer", ""): v for k, v in ref.language_model.state_dict().items() if "lora_" not in k}
    tied = ("lm_head.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
    clap = ClapModel(
        ClapConfig(
            text_config={
                "vocab_size": 99,
                "hidden_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "intermediate_size": 37,
                "projection_dim": 32,
            },
            audio_config=ref.audio_encoder.clap.config.to_dict(),
            projection_dim=32,
        )
    )
    clap.save_pretrained(tmp_path / "clap")
    save_file(
        {k: v.contiguous() for k, v in t5_state.items() if k not in tied}, str(tmp_path / "t5" / "model.safetensors")
    )
    model = tiny(
        f"model.weights.llm_dir={tmp_path / 't5'}",
        f"model.weights.clap_dir={tmp_path / 'clap'}",
        "model.tokenizer.source=builtin",
        seed=3,
    )
    assert_same(
        model.language_model.encoder.block[1].layer[1].DenseReluDense.wo.base_layer.weight,
        t5_state["encoder.block.1.layer.1.DenseReluDense.wo.weight"],
    )
    assert_same(model.audio_encoder.clap.audio_projection.linear1.weight, clap.audio_projection.linear1.weight)
    assert_same(
        model.audio_encoder.clap.audio_model.audio_encoder.batch_norm.running_var,
        clap.audio_model.audio_encoder.batch_norm.running_var,
    )


def _to_lavis(model: Blip2MR) -> tuple[dict, dict]:
    """Our tiny model's pretrained parts under LAVIS names: (eva_vit_g.pth, blip2_pretrained.pth)."""
    eva, blip2 = {}, {}
    dim = model.cfg.vision.hidden_size
    for key, value in model.state_dict().items():
        v = value.clone()
        if key.startswith("vision_model.embeddings."):
            name = {"class_embedding": "cls_token", "position_embedding": "pos_embed"}.get(key.split(".")[-1])
            eva[name or key.replace("vision_model.embeddings.patch_embedding.", "patch_embed.proj.")] = v
        elif key.startswith("vision_model.encoder.layers."):
            k = (
                key.replace("vision_model.encoder.layers.", "blocks.")
                .replace("layer_norm1", "norm1")
                .replace("layer_norm2", "norm2")
            )
            k = k.replace("self_attn.projection", "attn.proj").replace("self_attn.qkv", "attn.qkv")
            if k.endswith("attn.qkv.bias"):
                eva[k.replace("qkv.bias", "q_bias")], eva[k.replace("qkv.bias", "v_bias")] = v[:dim], v[2 * dim :]
            else:
                eva[k] = v
        elif key.startswith("vision_model.post_layernorm."):
            blip2[key.replace("vision_model.post_layernorm.", "ln_vision.")] = v
        elif key.startswith("qformer."):
            k = key.replace("qformer.layernorm.", "qformer.embeddings.LayerNorm.").replace(
                "qformer.", "Qformer.bert.", 1
            )
            blip2[k.replace("attention.attention.", "attention.self.")] = v
        elif key == "query_tokens" or key.startswith("language_projection."):
            blip2[key.replace("language_projection.", "t5_proj.")] = v
    # Parts of LAVIS's BERT Q-Former that BLIP-2 never uses.
    blip2["Qformer.cls.predictions.bias"] = torch.zeros(3)
    blip2["Qformer.bert.embeddings.word_embeddings.weight"] = torch.zeros(3, 2)
    blip2["Qformer.bert.encoder.layer.0.intermediate.dense.weight"] = torch.zeros(2, 2)
    blip2["Qformer.bert.encoder.layer.1.output.LayerNorm.weight"] = torch.zeros(2)
    return eva, {"model": blip2}


def test_lavis_pretrained_files_load(tmp_path):
    src = tiny(seed=4)
    dim = src.cfg.vision.hidden_size
    with torch.no_grad():
        for p in src.vision_model.parameters():
            p.normal_()
        for layer in src.vision_model.encoder.layers:
            layer.self_attn.qkv.bias[dim : 2 * dim] = 0  # EVA has no k bias
    eva, blip2 = _to_lavis(src)
    torch.save(eva, tmp_path / "eva_vit_g.pth")
    torch.save(blip2, tmp_path / "blip2_pretrained_flant5xl.pth")
    model = tiny(
        f"model.weights.eva_vit_pth={tmp_path / 'eva_vit_g.pth'}",
        f"model.weights.blip2_lavis_pth={tmp_path / 'blip2_pretrained_flant5xl.pth'}",
        seed=5,
    )
    ours = model.state_dict()
    for key, value in src.state_dict().items():
        if key.startswith(("vision_model.", "qformer.", "query_tokens", "language_projection.")):
            assert_same(ours[key], value)


def test_lavis_files_with_missing_and_unknown_keys_are_listed(tmp_path):
    eva, blip2 = _to_lavis(tiny(seed=4))
    del eva["blocks.0.mlp.fc1.weight"]
    blip2["model"]["Qformer.bert.pooler.dense.weight"] = torch.zeros(2, 2)
    torch.save(eva, tmp_path / "eva.pth")
    torch.save(blip2, tmp_path / "blip2.pth")
    with pytest.raises(WeightsMismatchError) as err:
        tiny(
            f"model.weights.eva_vit_pth={tmp_path / 'eva.pth'}",
            f"model.weights.blip2_lavis_pth={tmp_path / 'blip2.pth'}",
        )
    msg = str(err.value)
    assert "missing (1): vision_model.encoder.layers.0.mlp.fc1.weight" in msg
    assert "unexpected (1): qformer.pooler.dense.weight" in msg


def _mr_blip_checkpoint(model: Blip2MR, fusion_prefix: str) -> dict:
    """A Mr. BLIP / SMS training checkpoint of ``model``: its trainable parameters, LAVIS names."""
    state = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("language_model."):
            key = "t5_model.base_model.model." + name.removeprefix("language_model.")
        elif name.startswith("fusion."):
            key = fusion_prefix + name.removeprefix("fusion.")
        else:
            key = name.replace("language_projection.", "t5_proj.").replace("vision_model.post_layernorm.", "ln_vision.")
        state[key] = p.detach().clone()
    return {"model": state, "epoch": 3}


def test_mr_blip_sms_checkpoint_with_lora_and_fusion_keys(tmp_path):
    src = tiny(seed=6)
    with torch.no_grad():
        for p in src.parameters():
            if p.requires_grad:
                p.normal_()
    torch.save(_mr_blip_checkpoint(src, "attn_fusion."), tmp_path / "sms.pth")
    model = tiny(
        f"model.weights.finetuned={tmp_path / 'sms.pth'}",
        "model.weights.finetuned_fusion_prefixes=[attn_fusion.]",
        seed=7,
    )
    trained = dict(src.named_parameters())
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert_same(p, trained[name])
    # A video-only Mr. BLIP checkpoint starts an SMS model when the fusion may be missing.
    ckpt = _mr_blip_checkpoint(src, "attn_fusion.")
    ckpt["model"] = {k: v for k, v in ckpt["model"].items() if not k.startswith("attn_fusion.")}
    torch.save(ckpt, tmp_path / "mr_blip.pth")
    with pytest.raises(WeightsMismatchError, match=r"missing \(\d+\): fusion\."):
        tiny(f"model.weights.finetuned={tmp_path / 'mr_blip.pth'}")
    tiny(f"model.weights.finetuned={tmp_path / 'mr_blip.pth'}", "model.weights.finetuned_allow_missing=[fusion.]")


def test_converter_renames_old_peft_and_qv_bias():
    q, v = torch.arange(4.0), torch.arange(4.0) + 10
    out = convert_lavis_state_dict(
        {
            "t5_model.base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight": torch.ones(1),
            "t5_model.encoder.final_layer_norm.weight": torch.ones(1),
            "visual_encoder.blocks.3.attn.q_bias": q,
            "visual_encoder.blocks.3.attn.v_bias": v,
            "Qformer.bert.encoder.layer.2.crossattention.self.value.bias": torch.ones(1),
        }
    )
    assert set(out) == {
        "language_model.encoder.block.0.layer.0.SelfAttention.q.lora_A.default.weight",
        "language_model.encoder.final_layer_norm.weight",
        "vision_model.encoder.layers.3.self_attn.qkv.bias",
        "qformer.encoder.layer.2.crossattention.attention.value.bias",
    }
    assert out["vision_model.encoder.layers.3.self_attn.qkv.bias"].tolist() == [0, 1, 2, 3, 0, 0, 0, 0, 10, 11, 12, 13]


@pytest.mark.parametrize("trainable_only", [True, False])
def test_safetensors_round_trip(tmp_path, trainable_only):
    src = tiny(seed=8)
    with torch.no_grad():
        for p in src.parameters():
            p.add_(0.5)
    path = save_weights(src, tmp_path / "w.safetensors", trainable_only=trainable_only)
    model = tiny(seed=9)
    load_weights(model, path)
    ours = dict(model.named_parameters())
    for name, p in src.named_parameters():
        if p.requires_grad or not trainable_only:
            assert_same(ours[name], p)
    # The same file through the config path.
    again = tiny(f"model.weights.finetuned={path}", seed=10)
    assert_same(again.language_projection.weight, src.language_projection.weight)


def test_safetensors_of_another_config_is_a_clear_error(tmp_path):
    path = save_weights(tiny("model.lora.r=4"), tmp_path / "r4.safetensors")
    with pytest.raises(
        WeightsMismatchError, match=r"wrong shape \(\d+\): language_model\..*lora_A.*file \(4, 64\) vs model \(8, 64\)"
    ):
        load_weights(tiny(), path)
    with pytest.raises(WeightsMismatchError, match="unexpected"):
        load_weights(tiny("model.fusion.name=none"), path)
