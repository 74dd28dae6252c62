"""The tiny blip2_mr model on CPU: forward/backward/generate, gradients, masks, precision, learning."""

import pytest
import torch

from lavis.common.registry import registry
from lavis.models.blip2_mr.answer import ScoredWindows
from lavis.models.blip2_mr.model import Blip2MR
from lavis.models.blip2_mr.prompt import FRAME
from lavis.models.blip2_mr.random_batch import random_batch
from lavis.models.model_config import model_config

# The published (full-size) training setup at tiny sizes: frozen encoders and LLM, LoRA.
PUBLISHED = [
    "model.freeze_vit=true",
    "model.freeze_qformer=true",
    "model.freeze_audio=true",
    "model.freeze_llm=true",
    "model.lora.enabled=true",
    "model.prompt.timestamp_mode=token",
    "model.llm.number_embedding_init=random",
]


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(*options, seed=0):
    torch.manual_seed(seed)
    return Blip2MR.from_config(model_config("blip2_mr", "tiny", list(options)))


def batch_for(model, b=2, t=4, seed=0, **kw):
    return random_batch(
        model.cfg, b, t, duration=20.0, audio_frames=40, generator=torch.Generator().manual_seed(seed), **kw
    )


def assert_every_trainable_param_has_grad(model):
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"trainable parameters without gradient: {missing}"
    # LoRA's B starts at zero, so A's first gradient is zero; everything else must move.
    zero = [
        n for n, p in model.named_parameters() if p.requires_grad and "lora_A" not in n and not p.grad.abs().sum() > 0
    ]
    assert not zero, f"trainable parameters with an all-zero gradient: {zero}"


def test_registered_and_presets_load():
    assert registry.get("model", "blip2_mr") is Blip2MR
    assert set(Blip2MR.PRETRAINED_MODEL_CONFIG_DICT) == {"pretrain_flant5xl", "tiny"}
    cfg = model_config("blip2_mr", "pretrain_flant5xl")
    assert cfg.vision.num_layers == 39 and cfg.qformer.num_query_tokens == 32 and cfg.llm.d_model == 2048
    assert cfg.lora.r == 8 and cfg.lora.target_modules == ["q", "k", "v", "o", "wi_0", "wi_1", "wo", "lm_head"]


def test_forward_backward_generate_predict():
    model = tiny()
    batch = batch_for(model)
    out = model(batch)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert_every_trainable_param_has_grad(model)
    model.eval()
    beams = model.generate(batch)
    assert len(beams) == 2 and all(len(b) == model.cfg.generation.num_beams for b in beams)
    for sample in beams:
        scores = [s for _, s in sample]
        assert scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores)
    preds = model.predict(batch)
    assert all(isinstance(p, ScoredWindows) and len(p.windows) <= 10 for p in preds)


def test_published_setup_trains_exactly_lora_fusion_projection_and_vit_norm():
    model = tiny(*PUBLISHED)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    groups = {
        "lora": {n for n in trainable if "lora_" in n},
        "fusion": {n for n in trainable if n.startswith("fusion.")},
        "projection": {n for n in trainable if n.startswith("language_projection.")},
        "vit_ln": {n for n in trainable if n.startswith("vision_model.post_layernorm.")},
    }
    assert all(groups.values()) and set().union(*groups.values()) == trainable
    assert not any("lm_head" in n for n in groups["lora"])
    model(batch_for(model))["loss"].backward()
    assert_every_trainable_param_has_grad(model)
    model.train()
    assert not model.vision_model.training and not model.qformer.training and not model.audio_encoder.training
    assert model.language_model.training


@pytest.mark.parametrize(
    "options, tokens_per_frame",
    [
        (["model.fusion.position=late", "model.prompt.timestamp_mode=token"], 4),
        (["model.fusion.name=concat", "model.prompt.timestamp_mode=token"], 5),
        (["model.fusion.name=none", "model.prompt.interleave=false"], 4),
        (["model.prompt.frame_token_aggregation=mean"], 1),
    ],
)
def test_sequence_layout_shapes(options, tokens_per_frame):
    model = tiny(*options)
    assert model.tokens_per_frame == tokens_per_frame  # what lavis.inspect_model reports
    batch = batch_for(model, b=2, t=3)
    batch["frame_mask"][1, 2] = False
    batch["audio_mask"][0, 0] = False  # concat learns a token for frames without audio
    inputs, mask = model.encode(batch)
    assert inputs.shape[-1] == model.cfg.llm.d_model
    lengths = mask.sum(1).tolist()
    for b, length in enumerate(lengths):
        fed = batch["timestamps"][b][batch["frame_mask"][b]].tolist()
        sample = model.prompt.encoder_sample(fed, float(batch["duration"][b]), batch["query"][b], tokens_per_frame)
        assert length == len(sample.ids) and sample.ids.count(FRAME) == tokens_per_frame * len(fed)
    assert lengths[0] > lengths[1] and not mask[1, lengths[1] :].any()
    model(batch)["loss"].backward()
    assert_every_trainable_param_has_grad(model)


def test_masked_frames_and_audio_do_not_reach_the_model():
    model = tiny().eval()
    batch = batch_for(model, b=2, t=4)
    batch["frame_mask"][0, 3] = False
    batch["audio_mask"][1, 1] = False
    loss = model(batch)["loss"]
    changed = {k: v.clone() if torch.is_tensor(v) else v for k, v in batch.items()}
    changed["video"][0, 3] = 100.0
    changed["audio_features"][0, 3] = 100.0
    changed["audio_features"][1, 1] = float("nan")
    torch.testing.assert_close(model(changed)["loss"], loss)
    # ... while audio that is present does matter.
    changed["audio_features"][1, 0] += 5.0
    assert not torch.allclose(model(changed)["loss"], loss)


def test_audio_tower_one_channel_equals_the_fused_four_channel_input():
    model = tiny().eval()
    enc = model.audio_encoder
    feats = torch.randn(3, 40, model.cfg.audio.num_mel_bins)
    ours = enc(feats, torch.tensor([True, False, True]))
    four = feats[:, None].expand(-1, 4, -1, -1)  # what ClapFeatureExtractor stacks for short clips
    ref = enc.clap(input_features=four, is_longer=torch.zeros(3, 1, dtype=torch.bool)).audio_embeds
    ref = torch.nn.functional.normalize(ref, dim=-1)
    torch.testing.assert_close(ours[[0, 2]], ref[[0, 2]])
    assert ours[1].abs().sum() == 0 and ours.shape == (3, model.cfg.audio.projection_dim)
    with pytest.raises(ValueError, match="num_mel_bins=32"):
        enc(torch.randn(1, 40, 64), torch.tensor([True]))


def test_wrong_frame_size_is_a_clear_error():
    model = tiny()
    batch = batch_for(model)
    batch["video"] = batch["video"][..., :32, :32]
    with pytest.raises(ValueError, match="image_size is 64"):
        model(batch)


def test_bf16_autocast_reaches_every_part():
    model = tiny(*PUBLISHED)
    parts = {
        "vision": model.vision_model.encoder.layers[0].mlp.fc1,
        "qformer": model.qformer.encoder.layer[0].intermediate_query.dense,
        "audio": model.audio_encoder.clap.audio_projection.linear1,
        "projection": model.language_projection,
        "llm_encoder": model.language_model.encoder.block[0].layer[1].DenseReluDense.wo,
        "llm_decoder": model.language_model.decoder.block[0].layer[0].SelfAttention.q,
    }
    dtypes = {}

    def record(name):
        def hook(module, inputs, output):
            dtypes.setdefault(name, output.dtype)

        return hook

    hooks = [m.register_forward_hook(record(n)) for n, m in parts.items()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(batch_for(model))["loss"]
    for h in hooks:
        h.remove()
    assert dtypes == {n: torch.bfloat16 for n in parts}
    loss.backward()
    assert_every_trainable_param_has_grad(model)


def test_frozen_weights_stored_in_bf16():
    model = tiny(*PUBLISHED, "model.frozen_dtype=bfloat16")
    frozen = model.language_model.encoder.block[0].layer[0].SelfAttention.q.base_layer.weight
    assert (
        frozen.dtype == torch.bfloat16 and model.vision_model.encoder.layers[0].mlp.fc1.weight.dtype == torch.bfloat16
    )
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    loss = model(batch_for(model))["loss"]  # no outer autocast: the model runs its own
    assert torch.isfinite(loss)
    loss.backward()
    assert_every_trainable_param_has_grad(model)
    assert len(model.eval().generate(batch_for(model))) == 2


def test_tiny_model_overfits_a_few_samples_until_generation_is_exact():
    """A real learning test: 4 videos of random frames and audio, each with its own window."""
    model = tiny(seed=0)
    batch = batch_for(model, b=4, t=4, seed=1)
    batch["windows"] = [[(0.0, 5.0)], [(5.0, 10.0)], [(10.0, 15.0)], [(12.0, 18.0)]]
    wanted = ["[[0, 5]]", "[[5, 10]]", "[[10, 15]]", "[[12, 18]]"]
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    texts = []
    for step in range(150):
        model.train()
        loss = model(batch)["loss"]
        optim.zero_grad()
        loss.backward()
        optim.step()
        if step % 10 == 9:
            texts = [beams[0][0] for beams in model.eval().generate(batch)]
            if texts == wanted:
                break
    assert texts == wanted, f"after {step + 1} steps (loss {loss.item():.3f}) generated {texts}"
    windows = [p.windows[0][:2] for p in model.predict(batch)]
    assert windows == [[0.0, 5.0], [5.0, 10.0], [10.0, 15.0], [12.0, 18.0]]


def test_greedy_generation_and_activation_checkpointing():
    model = tiny("model.generation.num_beams=1", "model.gradient_checkpointing=true")
    batch = batch_for(model)
    model(batch)["loss"].backward()
    assert_every_trainable_param_has_grad(model)
    beams = model.eval().generate(batch)
    assert [len(b) for b in beams] == [1, 1] and all(b[0][1] <= 0 for b in beams)


def test_pretrained_tokenizer_from_a_local_directory(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = [
        "<pad>",
        "</s>",
        "<unk>",
        "[",
        "]",
        ",",
        ">",
        ":",
        "?",
        ".",
        *map(str, range(60)),
        "Query",
        "a",
        "dog",
        "barks",
    ]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    hf = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    hf.save_pretrained(tmp_path / "tok")
    model = tiny(
        f"model.tokenizer.path={tmp_path / 'tok'}", "model.tokenizer.source=pretrained", "model.tokenizer.max_number=59"
    )
    assert model.tokenizer.vocab_size == len(words) and model.language_model.config.vocab_size == len(words)
    assert model.tokenizer.encode("[[12, 30]]") == [3, 3, 22, 5, 40, 4, 4]
    batch = batch_for(model)
    batch["windows"] = [[(2.0, 9.0)], [(4.0, 6.0)]]
    assert torch.isfinite(model(batch)["loss"])
    with pytest.raises(FileNotFoundError, match="no tokenizer files"):
        tiny(f"model.tokenizer.path={tmp_path}", "model.tokenizer.source=pretrained")


def test_full_size_clap_tower_on_the_data_pipelines_features():
    """The data side's log-mels (htsat-fused settings, 1.5 s clips) through the full-size audio
    tower equal what transformers' own extractor + CLAP give, with ``is_longer`` False for every
    clip (the extractor itself flags one random short clip as longer: the reference's defect)."""
    from lavis.datasets.audio_features import AudioClipConfig, ClapLogMel
    from lavis.models.blip2_mr.audio import ClapAudioEncoder
    from lavis.models.blip2_mr.config import AudioTowerConfig

    torch.manual_seed(0)
    encoder = ClapAudioEncoder(AudioTowerConfig()).eval()
    data = AudioClipConfig()
    clips = torch.randn(2, int(1.5 * data.sampling_rate)) * 0.1
    ours = encoder(ClapLogMel(data)(clips), torch.tensor([True, True]))
    hf_inputs = data.feature_extractor()(
        [c.numpy() for c in clips], sampling_rate=data.sampling_rate, return_tensors="pt"
    )
    assert hf_inputs["input_features"].shape == (2, 4, 1001, 64)
    with torch.no_grad():
        ref = encoder.clap(input_features=hf_inputs["input_features"], is_longer=torch.zeros(2, 1, dtype=torch.bool))
    torch.testing.assert_close(ours, torch.nn.functional.normalize(ref.audio_embeds, dim=-1), rtol=1e-5, atol=1e-5)
    assert ours.shape == (2, 512)


def test_generation_runs_the_encoder_once_uses_the_kv_cache_and_obeys_the_config():
    model = tiny("model.generation.num_beams=3", "model.generation.max_new_tokens=5").eval()
    calls = {"encoder": 0, "decoder_inputs": []}

    def on_encoder(module, args, kwargs):
        calls["encoder"] += 1

    def on_decoder(module, args, kwargs):
        calls["decoder_inputs"].append(kwargs["input_ids"].shape[1])

    h1 = model.language_model.encoder.register_forward_pre_hook(on_encoder, with_kwargs=True)
    h2 = model.language_model.decoder.register_forward_pre_hook(on_decoder, with_kwargs=True)
    beams = model.generate(batch_for(model))
    h1.remove()
    h2.remove()
    assert calls["encoder"] == 1
    assert calls["decoder_inputs"] and set(calls["decoder_inputs"]) == {1}  # one new token per step: cached
    assert len(calls["decoder_inputs"]) <= 5 and all(len(b) == 3 for b in beams)  # max_new_tokens, num_beams
