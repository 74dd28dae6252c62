"""``python -m lavis.inspect_model``: the full preset on the meta device, counted analytically;
the human summary and the JSON behind ``--json``."""

import json

import pytest

from lavis.inspect_model import main
from lavis.models.model_config import model_config

FULL = "configs/models/blip2_mr_pretrain_flant5xl.yaml"


def linear(i, o, bias=True):
    return i * o + (o if bias else 0)


def vit_params(c):
    d, f, patches = c.hidden_size, c.intermediate_size, (c.image_size // c.patch_size) ** 2
    embed = linear(3 * c.patch_size**2, d) + d + (patches + 1) * d  # patch conv, cls, positions
    layer = 2 * 2 * d + linear(d, 3 * d) + linear(d, d) + linear(d, f) + linear(f, d)
    return embed + c.num_layers * layer + 2 * d  # + final LayerNorm


def qformer_params(c, vision_width):
    d, f = c.hidden_size, c.intermediate_size
    self_attn = 3 * linear(d, d) + linear(d, d) + 2 * d
    cross = linear(d, d) + 2 * linear(vision_width, d) + linear(d, d) + 2 * d
    ffn = linear(d, f) + linear(f, d) + 2 * d
    n_cross = len(range(0, c.num_layers, c.cross_attention_frequency))
    return 2 * d + c.num_layers * (self_attn + ffn) + n_cross * cross


def t5_params(c):
    d, inner, f = c.d_model, c.d_kv * c.num_heads, c.d_ff
    attn = 4 * d * inner + d  # q, k, v, o (no biases) + its RMS norm
    ffn = 3 * d * f + d  # gated: wi_0, wi_1, wo
    bias = c.relative_attention_num_buckets * c.num_heads  # first block of each stack
    embeddings = c.vocab_size * d * (1 if c.tie_word_embeddings else 2)
    return embeddings + c.num_layers * (attn + ffn) + c.num_decoder_layers * (2 * attn + ffn) + 2 * (bias + d)


def lora_params(c, r, targets):
    d, inner, f = c.d_model, c.d_kv * c.num_heads, c.d_ff
    shapes = {
        "q": (d, inner),
        "k": (d, inner),
        "v": (d, inner),
        "o": (inner, d),
        "wi_0": (d, f),
        "wi_1": (d, f),
        "wo": (f, d),
        "lm_head": (d, c.vocab_size),
    }
    per = {t: r * sum(shapes[t]) for t in targets}
    attn = sum(per.get(t, 0) for t in "qkvo")
    ffn = sum(per.get(t, 0) for t in ("wi_0", "wi_1", "wo"))
    return c.num_layers * (attn + ffn) + c.num_decoder_layers * (2 * attn + ffn) + per.get("lm_head", 0)


@pytest.fixture(scope="module")
def full_report():
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--cfg-path", FULL, "--meta", "--json"]) == 0
    return json.loads(out.getvalue())


def test_full_preset_counts(full_report):
    cfg = model_config("blip2_mr", "pretrain_flant5xl")
    lora = lora_params(cfg.llm, cfg.lora.r, cfg.lora.target_modules)
    assert lora == 17_968_128  # r=8 on q,k,v,o,wi_0,wi_1,wo and lm_head of Flan-T5-XL (the reference's targets)
    m = full_report["modules"]
    assert full_report["lora"] == lora
    assert m["vision_model"]["total"] == vit_params(cfg.vision) == 985_952_256
    assert m["qformer"]["total"] == qformer_params(cfg.qformer, cfg.vision.hidden_size) == 105_137_664
    assert m["language_model"]["total"] == t5_params(cfg.llm) + lora
    assert t5_params(cfg.llm) == 2_849_757_184  # Flan-T5-XL
    assert m["query_tokens"]["total"] == 32 * 768
    assert m["language_projection"]["total"] == linear(768, 2048)
    without_audio = full_report["total"] - m["audio_encoder"]["total"] - m["fusion"]["total"]
    assert 3.9e9 < without_audio < 4.0e9
    # Trainable: LoRA, the fusion, the projection and the ViT's final LayerNorm; nothing else.
    expected = lora + m["fusion"]["total"] + linear(768, 2048) + 2 * 1408
    assert full_report["trainable"] == expected
    assert m["vision_model"]["trainable"] == 2 * 1408 and m["qformer"]["trainable"] == 0
    assert m["audio_encoder"]["trainable"] == 0 and m["audio_encoder"]["total"] > 20e6


def test_options_and_errors(capsys):
    assert main(["--cfg-path", FULL, "--meta", "--json", "--options", "model.lora.r=4", "model.fusion.name=none"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["lora"] == 17_968_128 // 2 and "audio_encoder" not in report["modules"]
    assert main(["--cfg-path", FULL, "--meta", "--options", "model.lora.rank=4"]) == 2
    assert "model.lora.rank" in capsys.readouterr().err


def test_json_names_frames_tokens_fusion_and_llm(full_report, capsys):
    assert full_report["frames_per_sample"] == {} and full_report["tokens_per_frame"] == 32  # a preset: no dataset
    assert full_report["fusion"] == {"name": "gca", "position": "early", "num_heads": 8, "dropout": 0.0, "width": 768}
    llm = full_report["llm"]
    assert (llm["class"], llm["encoder_layers"], llm["d_model"], llm["vocab_size"]) == (
        "T5ForConditionalGeneration",
        24,
        2048,
        32128,
    )
    assert llm["lora"] == {"r": 8, "target_modules": ["q", "k", "v", "o", "wi_0", "wi_1", "wo", "lm_head"]}
    # An experiment is loaded whole (its base: chain too), so its datasets give the frames.
    assert main(["--cfg-path", "configs/experiments/qvh/sms_saliency.yaml", "--meta", "--json"]) == 0
    qvh = json.loads(capsys.readouterr().out)
    assert qvh["frames_per_sample"] == {"qvh": 60} and "saliency_head" in qvh["modules"]
    assert qvh["total"] == full_report["total"] + qvh["modules"]["saliency_head"]["total"]


def test_the_summary_is_a_few_labelled_lines(capsys):
    assert main(["--cfg-path", "configs/experiments/charades_sta/sms.yaml", "--meta"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "configs/experiments/charades_sta/sms.yaml (meta device: no weights read)"
    assert lines[1] == "parameters  3.99 B, 22.3 M trainable (0.56 %), 18.0 M of them LoRA"
    assert lines[2] == "frames      20 per sample (datasets.charades_sta.num_frames)"
    assert lines[3].startswith("tokens      32 per frame, 640 frame tokens per sample; + each frame's timestamp")
    assert lines[4].startswith("fusion      gca, early (768-d tokens), num_heads=8, dropout=0.0: ")
    assert lines[5].startswith(
        "LLM         T5ForConditionalGeneration, 24 + 24 layers, d_model 2048, vocabulary 32,128"
    )
    assert lines[6].startswith("modules") and any(line.split()[0] == "fusion" for line in lines[7:])
