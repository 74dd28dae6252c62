"""The audio-visual fusion modules: shapes, gradients, the missing-audio contract, row
independence, bf16 autocast, and agreement with torch's own attention."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lavis.common.registry import RegistryError, registry
from lavis.common.typed import ConfigError, from_dict
from lavis.models.fusion import FusionConfig, build_fusion, fusion_config
from lavis.models.fusion.attention import CrossAttention

PUBLISHED = ["none", "gca", "bigca", "avde", "lcam", "concat"]  # the names SMS's configs use
# Every registered fusion keeps the contract: a new one is tested without editing this file.
NAMES = registry.names("fusion")
AUDIO_FUSIONS = [n for n in NAMES if FusionConfig.variants()[n].reads_audio]
# (token width, audio width): early = Q-Former width, late = LLM width (tiny stand-ins).
DIMS = {"early": (48, 24), "late": (64, 16)}
N, Q = 6, 5
MASK = torch.tensor([True, False, True, True, False, True])


def make(name: str, position: str = "early", **overrides):
    torch.manual_seed(0)
    dim, audio_dim = DIMS[position]
    fusion = build_fusion(fusion_config(name, position=position, **overrides), dim, audio_dim)
    gen = torch.Generator().manual_seed(1)
    video = torch.randn(N, Q, dim, generator=gen)
    audio = torch.randn(N, audio_dim, generator=gen)
    return fusion, video, audio


def test_every_fusion_is_registered_with_its_own_config():
    assert set(PUBLISHED) <= set(NAMES) and "none" not in AUDIO_FUSIONS and "gca" in AUDIO_FUSIONS
    for name in NAMES:
        config_class = registry.get("fusion", name).config_class
        assert issubclass(config_class, FusionConfig) and config_class().name == name


@pytest.mark.parametrize("position", ["early", "late"])
@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_every_parameter_gets_a_gradient(name, position):
    fusion, video, audio = make(name, position)
    fusion.train()
    video.requires_grad_(True)
    out = fusion(video, audio, MASK)
    assert out.shape == (N, Q + fusion.added_tokens, DIMS[position][0])
    assert out.dtype == video.dtype
    # A random readout: a plain sum can have structurally zero gradients (e.g. after a LayerNorm).
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(2))).sum().backward()
    assert video.grad is not None and video.grad.abs().sum() > 0
    for pname, param in fusion.named_parameters():
        assert param.grad is not None, f"{name}/{position}: {pname} has no gradient"
        # A floor, not > 0: a structurally zero gradient can come out as ~1e-9 rounding noise.
        assert param.grad.norm() > 1e-4, f"{name}/{position}: {pname} has a (near) zero gradient"
        assert torch.isfinite(param.grad).all(), f"{name}/{position}: {pname} gradient not finite"
    # The query, key and value weights of each attention separately: a softmax over one key
    # leaves the query/key slices with rounding noise (~1e-6 of the value slice's gradient).
    for mname, module in fusion.named_modules():
        if isinstance(module, CrossAttention):
            q_grad, k_grad, v_grad = module.in_proj_weight.grad.chunk(3)
            for part, grad in (("query", q_grad), ("key", k_grad)):
                ratio = (grad.norm() / v_grad.norm()).item()
                assert ratio > 1e-2, f"{name}/{position}: {mname} {part} weights barely train ({ratio:.1e})"
    if name == "none":
        assert not list(fusion.parameters()) and out is video


@pytest.mark.parametrize("name", AUDIO_FUSIONS)
def test_parameters_stay_in_the_graph_for_a_batch_without_audio(name):
    """DDP without find_unused_parameters: every parameter is used even if no frame has audio."""
    fusion, video, audio = make(name)
    out = fusion(video, audio, torch.zeros(N, dtype=torch.bool))
    (out * torch.randn(out.shape)).sum().backward()
    assert all(p.grad is not None for p in fusion.parameters())


def test_concat_appends_the_configured_number_of_audio_tokens():
    fusion, video, audio = make("concat", num_audio_tokens=3)
    out = fusion(video, audio, MASK)
    assert fusion.added_tokens == 3 and out.shape == (N, Q + 3, DIMS["early"][0])
    assert torch.equal(out[:, :Q], video)


@pytest.mark.parametrize("name", AUDIO_FUSIONS)
def test_frames_without_audio_get_the_no_audio_output(name):
    fusion, video, audio = make(name)
    fusion.eval()
    out = fusion(video, audio, MASK)
    silent = ~MASK
    # What the fusion gives with no audio at all: those frames fused alone, all masked.
    alone = fusion(
        video[silent], torch.zeros(int(silent.sum()), audio.shape[1]), torch.zeros(int(silent.sum()), dtype=torch.bool)
    )
    assert torch.equal(out[silent], alone)
    if name == "concat":
        assert torch.equal(out[silent][:, :Q], video[silent])
        assert torch.equal(out[silent][:, Q:], fusion.missing.expand(int(silent.sum()), -1, -1))
    else:
        assert torch.equal(out[silent], video[silent])
    # Whatever the caller leaves in the audio of those frames (even NaN) changes nothing,
    # neither the output nor the gradients.
    garbage = audio.clone()
    garbage[silent] = float("nan")
    fusion.train()
    out_garbage = fusion(video, garbage, MASK)
    fusion.eval()
    assert torch.equal(fusion(video, garbage, MASK), out)
    (out_garbage * torch.randn(out_garbage.shape)).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in fusion.parameters())


@pytest.mark.parametrize("name", AUDIO_FUSIONS)
def test_frames_with_audio_depend_on_the_audio(name):
    fusion, video, audio = make(name)
    fusion.eval()
    out = fusion(video, audio, MASK)
    other = fusion(video, audio.flip(0), MASK)
    heard = MASK
    no_audio = fusion(video, audio, torch.zeros(N, dtype=torch.bool))
    for row in torch.nonzero(heard).flatten().tolist():
        assert not torch.allclose(out[row], no_audio[row]), f"{name}: frame {row} ignores its audio"
        if not torch.equal(audio[row], audio.flip(0)[row]):
            assert not torch.allclose(out[row], other[row]), f"{name}: frame {row} output independent of audio"


@pytest.mark.parametrize("name", NAMES)
def test_rows_are_independent(name):
    fusion, video, audio = make(name)
    fusion.eval()
    out = fusion(video, audio, MASK)
    for row in range(N):
        single = fusion(video[row : row + 1], audio[row : row + 1], MASK[row : row + 1])
        torch.testing.assert_close(single[0], out[row], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_bf16_autocast_on_cpu(name):
    fusion, video, audio = make(name, "late")
    fusion.eval()
    reference = fusion(video, audio, MASK)
    video.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fusion(video, audio, MASK)
    assert out.dtype == torch.float32  # the caller's dtype, not autocast's
    torch.testing.assert_close(out, reference, rtol=0.05, atol=0.05)
    out.float().sum().backward()
    assert torch.isfinite(video.grad).all()
    # Late fusion under autocast may receive bf16 tokens (the projection's output).
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_bf16 = fusion(video.detach().bfloat16(), audio, MASK)
    assert out_bf16.dtype == torch.bfloat16 and torch.isfinite(out_bf16.float()).all()


def test_full_width_audio_at_llm_width():
    """The real widths: CLAP's 512-d audio into 768-d (early) and 2048-d (late) tokens."""
    for dim in (768, 2048):
        fusion = build_fusion(fusion_config("gca"), dim, 512)
        out = fusion(torch.randn(2, 32, dim), torch.randn(2, 512), torch.tensor([True, False]))
        assert out.shape == (2, 32, dim)


def test_unknown_fusion_name_lists_the_registered_ones():
    with pytest.raises(RegistryError) as err:
        build_fusion(FusionConfig(name="cross_modal_magic"), 32, 16)
    message = str(err.value)
    assert "cross_modal_magic" in message
    assert all(name in message for name in NAMES)


def test_bad_inputs_raise_clear_errors():
    fusion, video, audio = make("gca")
    with pytest.raises(ValueError, match=r"video tokens must be \[N, Q, 48\]"):
        fusion(video[..., :40], audio, MASK)
    with pytest.raises(ValueError, match=r"audio must be one embedding per frame, \[N=6, 24\]"):
        fusion(video, audio[:, None].expand(-1, Q, -1), MASK)
    with pytest.raises(ValueError, match="audio_mask must be bool"):
        fusion(video, audio, MASK.long())
    with pytest.raises(ValueError, match="not a multiple of fusion.num_heads 5"):
        build_fusion(fusion_config("lcam", num_heads=5), 48, 24)


def test_config_values_are_checked():
    with pytest.raises(ConfigError, match="early"):
        from_dict(FusionConfig, {"position": "middle"}, "exp.yaml", "model.fusion")
    with pytest.raises(ConfigError, match="dropout"):
        from_dict(FusionConfig, {"dropout": 1.5}, "exp.yaml", "model.fusion")
    with pytest.raises(ConfigError, match="num_audio_tokens"):
        from_dict(FusionConfig, {"name": "concat", "num_audio_tokens": 0}, "exp.yaml", "model.fusion")


def test_each_fusion_takes_only_its_own_keys():
    """``model.fusion.name`` picks the config class: another fusion's key fails, naming the valid ones."""
    cfg = from_dict(FusionConfig, {"name": "bigca", "ff_mult": 2}, "exp.yaml", "model.fusion")
    assert type(cfg).__name__ == "BiGatedCrossAttentionConfig" and cfg.ff_mult == 2
    with pytest.raises(ConfigError) as err:
        from_dict(FusionConfig, {"name": "concat", "num_heads": 4}, "exp.yaml", "model.fusion")
    assert "unknown key 'model.fusion.num_heads'" in str(err.value)
    assert "for name 'concat': ['dropout', 'name', 'num_audio_tokens', 'position']" in str(err.value)
    with pytest.raises(ConfigError, match=r"'model.fusion.name' must be one of \['avde', 'bigca'.*got 'nope'"):
        from_dict(FusionConfig, {"name": "nope"}, "exp.yaml", "model.fusion")
    with pytest.raises(TypeError, match="fusion 'lcam' takes a LocalCrossAttentionModulationConfig"):
        build_fusion(FusionConfig(name="lcam"), 48, 24)


def test_none_ignores_the_audio_entirely():
    fusion, video, _ = make("none")
    assert fusion(video, None, None) is video


def _torch_mha(attn: CrossAttention, dim: int, heads: int, bias_kv: bool) -> nn.MultiheadAttention:
    mha = nn.MultiheadAttention(dim, heads, batch_first=True, add_bias_kv=bias_kv)
    mha.load_state_dict(attn.state_dict())  # same names and shapes: reference checkpoints load
    return mha.eval()


@pytest.mark.parametrize("null_kv", [False, True])
def test_cross_attention_matches_torch_multihead_attention(null_kv):
    torch.manual_seed(3)
    attn = CrossAttention(32, 4, null_kv=null_kv).eval()
    with torch.no_grad():  # non-trivial values for the zero-initialised tensors
        for param in attn.parameters():
            param.add_(0.1 * torch.randn_like(param))
    query, kv = torch.randn(3, 5, 32), torch.randn(3, 7 if not null_kv else 1, 32)
    expected, _ = _torch_mha(attn, 32, 4, null_kv)(query, kv, kv, need_weights=False)
    torch.testing.assert_close(attn(query, kv), expected, rtol=1e-5, atol=1e-5)


def test_gca_is_the_published_formula():
    """SMS's gca: audio expanded to Q identical queries over the frame's tokens, sigmoid gate."""
    fusion, video, audio = make("gca")
    # The reference's state-dict keys (GatedCrossAttention with an nn.MultiheadAttention).
    assert set(fusion.state_dict()) == {
        "audio_proj.weight",
        "audio_proj.bias",
        "gate.weight",
        "gate.bias",
        "cross_attn.in_proj_weight",
        "cross_attn.in_proj_bias",
        "cross_attn.out_proj.weight",
        "cross_attn.out_proj.bias",
    }
    fusion.eval()
    mha = _torch_mha(fusion.cross_attn, 48, 8, bias_kv=False)
    with torch.no_grad():
        a = fusion.audio_proj(audio).unsqueeze(1).expand(-1, Q, -1)
        attended, _ = mha(a, video, video, need_weights=False)
        g = torch.sigmoid(fusion.gate(a))
        expected = g * attended + (1 - g) * video
        out = fusion(video, audio, torch.ones(N, dtype=torch.bool))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
