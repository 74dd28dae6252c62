"""The benchmarks' CPU smoke runs (--preset tiny) print one JSON line of the documented schema,
and the speed options they exercise (SDPA, torch.compile, activation checkpointing) work on the
tiny model. Timings are never asserted: CPU numbers say nothing about GPU speed."""

import json

import pytest
import torch

from benchmarks import generate_throughput, loader_throughput, train_throughput
from benchmarks.common import RESULT_KEYS
from lavis.models.blip2_mr.model import Blip2MR
from lavis.models.blip2_mr.random_batch import random_batch
from lavis.models.model_config import model_config

SMALL = ["--preset", "tiny", "--frames", "2", "--batch-size", "2", "--steps", "1", "--warmup", "0", "--threads", "1"]


pytestmark = pytest.mark.usefixtures("one_thread")


def printed_result(capsys, returned):
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines  # exactly one JSON line on stdout
    result = json.loads(lines[0])
    assert result == json.loads(json.dumps(returned))
    assert list(result)[: len(RESULT_KEYS)] == list(RESULT_KEYS)
    assert result["preset"] == "tiny" and result["smoke"] is True and result["samples_per_s"] > 0
    assert result["peak_memory_gib"] > 0 and result["memory_kind"] == "cpu_max_rss"
    assert result["device"].startswith("cpu") and result["torch"] == torch.__version__
    assert all(isinstance(v, float) and v >= 0 for v in result["breakdown_s"].values())
    return result


@pytest.mark.parametrize("cached", [False, True])
def test_train_throughput_smoke(capsys, cached):
    result = printed_result(capsys, train_throughput.main(SMALL + (["--cached-features"] if cached else [])))
    assert result["benchmark"] == "train_throughput" and result["unit"] == "training samples"
    assert set(result["breakdown_s"]) == {"data", "forward", "backward", "optimizer"}
    config = result["config"]
    assert (config["batch_size"], config["num_frames"], config["cached_features"]) == (2, 2, cached)
    assert config["fusion"] == "gca" and config["lora_r"] == 8 and result["steps"] == 1


def test_generate_throughput_smoke(capsys):
    args = SMALL + ["--beams", "2", "--max-new-tokens", "4", "--cached-features"]
    result = printed_result(capsys, generate_throughput.main(args))
    assert result["benchmark"] == "generate_throughput" and result["unit"] == "queries"
    assert set(result["breakdown_s"]) == {"encode", "generate", "windows"}
    assert (result["config"]["beams"], result["config"]["min_new_tokens"]) == (2, 4)


@pytest.mark.parametrize("cached", [False, True])
def test_loader_throughput_smoke(capsys, cached):
    args = ["--preset", "tiny", "--frames", "2", "--workers", "0"] + (["--cached-features"] if cached else [])
    result = printed_result(capsys, loader_throughput.main(args))
    assert result["benchmark"] == "loader_throughput"
    if cached:
        assert result["unit"] == "cached samples" and set(result["breakdown_s"]) == {"read"}
    else:
        assert result["unit"] == "videos" and set(result["breakdown_s"]) == set(result["wall_s"])
        assert set(result["workers_needed"]) == {"25", "60"} and result["per_worker_videos_per_s"] > 0


def test_full_preset_needs_a_gpu_or_says_so(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the full preset would run")
    with pytest.raises(SystemExit, match="CUDA GPU"):
        train_throughput.main(["--preset", "pretrain_flant5xl"])


def tiny_model(*options, seed=0):
    torch.manual_seed(seed)
    return Blip2MR.from_config(model_config("blip2_mr", "tiny", list(options)))


def batch_for(model):
    return random_batch(model.cfg, 2, 3, duration=20.0, audio_frames=40, generator=torch.Generator().manual_seed(0))


def test_sdpa_is_used_and_matches_eager_attention():
    sdpa, eager = tiny_model(), tiny_model("model.attn_implementation=eager")
    for model, impl in ((sdpa, "sdpa"), (eager, "eager")):
        parts = (model.vision_model, model.qformer, model.language_model)
        assert {p.config._attn_implementation for p in parts} == {impl}
    batch = batch_for(sdpa)
    torch.testing.assert_close(sdpa(batch)["loss"], eager(batch)["loss"], rtol=1e-5, atol=1e-6)


def test_compile_option_wraps_the_encoder_side_only():
    plain, compiled = tiny_model(), tiny_model("model.compile=aot_eager")
    assert compiled.vision_model._compiled_call_impl is not None and compiled.qformer._compiled_call_impl is not None
    encoder, decoder = compiled.language_model.encoder, compiled.language_model.decoder
    assert all(b._compiled_call_impl is not None for b in encoder.block)
    assert all(b._compiled_call_impl is None for b in decoder.block)  # generation's decoder stays eager
    assert plain.vision_model._compiled_call_impl is None
    assert list(compiled.state_dict()) == list(plain.state_dict())  # checkpoints are unaffected


@pytest.mark.slow
def test_compiled_model_trains_and_generates_like_the_eager_one():
    published = [
        "model.freeze_vit=true",
        "model.freeze_qformer=true",
        "model.freeze_audio=true",
        "model.freeze_llm=true",
        "model.lora.enabled=true",
        "model.generation.max_new_tokens=6",
    ]
    plain, compiled = tiny_model(*published), tiny_model(*published, "model.compile=aot_eager")
    batch = batch_for(plain)
    losses = []
    for model in (plain, compiled):
        torch.manual_seed(1)  # the same LoRA dropout masks
        losses.append(model(batch)["loss"])
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)
    for loss in losses:
        loss.backward()
    for (name, p), q in zip(plain.named_parameters(), compiled.parameters()):
        if p.requires_grad:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert [p.windows for p in plain.eval().predict(batch)] == [p.windows for p in compiled.eval().predict(batch)]


def test_activation_checkpointing_keeps_every_gradient_of_the_published_setup():
    published = [
        "model.freeze_vit=true",
        "model.freeze_qformer=true",
        "model.freeze_audio=true",
        "model.freeze_llm=true",
        "model.lora.enabled=true",
    ]
    plain, checkpointed = tiny_model(*published), tiny_model(*published, "model.gradient_checkpointing=true")
    batch = batch_for(plain)
    for model in (plain, checkpointed):
        torch.manual_seed(1)  # the same LoRA dropout masks
        model(batch)["loss"].backward()
    # The ViT's final LayerNorm is trainable behind a frozen, checkpointed Q-Former: its gradient
    # must still arrive (reentrant checkpointing would drop it).
    assert checkpointed.vision_model.post_layernorm.weight.grad.abs().sum() > 0
    for (name, p), q in zip(plain.named_parameters(), checkpointed.parameters()):
        if p.requires_grad:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_query_latency_smoke(capsys, tiny_run, tmp_path):
    from benchmarks import query_latency

    args = ["--run-dir", str(tiny_run.run_dir), "--videos", "1", "--threads", "1", "--data", str(tmp_path / "videos")]
    returned = query_latency.main(args)
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result == json.loads(json.dumps(returned)) and list(result)[: len(RESULT_KEYS)] == list(RESULT_KEYS)
    assert result["benchmark"] == "query_latency" and result["smoke"] is False
    calls = {c["call"]: c for c in result["calls"]}
    assert set(calls) == {"first", "next", "disk", "llm_split"}
    assert (calls["first"]["index"], calls["next"]["index"], calls["disk"]["index"]) == ("computed", "memory", "disk")
    assert calls["next"]["towers_s"] == 0.0 and calls["first"]["towers_s"] > 0
    assert set(result["breakdown_s"]) >= {"first_decode", "first_towers", "llm_encoder", "llm_beam_search"}
    assert result["next_over_first"] == pytest.approx(result["next_s"] / result["first_s"], rel=1e-3)
