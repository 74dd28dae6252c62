"""What makes a query's LLM part fast keeps its answers: the cross-attention keys and values
computed once per sample and never reordered by beam search give transformers' own beams, and
LoRA folded into the weights for prediction gives the adapters' answers."""

import pytest
import torch
from peft.tuners.lora import LoraLayer

from lavis import load_model
from lavis.models.blip2_mr import generation
from lavis.models.blip2_mr.build import merge_lora
from lavis.models.blip2_mr.model import Blip2MR
from lavis.models.blip2_mr.random_batch import random_batch
from lavis.models.model_config import model_config


def tiny(beams: int) -> Blip2MR:
    torch.manual_seed(0)
    options = [
        f"model.generation.num_beams={beams}",
        "model.generation.max_new_tokens=8",
        "model.lora.enabled=true",
        "model.freeze_llm=true",
    ]
    model = Blip2MR.from_config(model_config("blip2_mr", "tiny", options)).eval().requires_grad_(False)
    for module in model.modules():  # adapters that change the answer (LoRA B starts at zero)
        if isinstance(module, LoraLayer):
            torch.nn.init.normal_(module.lora_B["default"].weight, std=0.5)
    return model


@pytest.mark.parametrize("beams", [1, 4])
def test_shared_cross_attention_gives_transformers_own_beams(beams, monkeypatch, one_thread):
    model = tiny(beams)
    batch = random_batch(model.cfg, batch_size=3, num_frames=4, generator=torch.Generator().manual_seed(1))
    batch["frame_mask"][2, 2:] = False  # a padded encoder input too
    shared = model.generate(batch)
    monkeypatch.setattr(generation, "cross_attention_cache", lambda *args: None)  # transformers' own cache
    assert model.generate(batch) == shared


def test_the_cross_attention_cache_is_one_projection_per_sample():
    model = tiny(4)
    hidden = torch.randn(2, 7, model.cfg.llm.d_model)
    cache = generation.cross_attention_cache(model.language_model, hidden, beams=4)
    keys = cache.cross_attention_cache.layers[0].keys  # [B * beams, H, L, d_kv]
    assert keys.shape[0] == 8 and torch.equal(keys[0], keys[3]) and not torch.equal(keys[0], keys[4])
    single = generation.cross_attention_cache(model.language_model, hidden[:1], beams=4)
    assert single.cross_attention_cache.layers[0].keys.stride(0) == 0  # one sample: a view, no copy
    before = cache.cross_attention_cache.layers[0].keys
    cache.reorder_cache(torch.tensor([3, 2, 1, 0, 4, 4, 5, 6]))
    assert cache.cross_attention_cache.layers[0].keys is before  # beam search leaves it alone


def test_merged_lora_predicts_what_the_adapters_do(one_thread):
    model = tiny(4)
    batch = random_batch(model.cfg, batch_size=2, num_frames=4, generator=torch.Generator().manual_seed(2))
    adapters = model.generate(batch)
    assert merge_lora(model) > 0 and merge_lora(model) == 0  # once
    merged = model.generate(batch)
    assert [[t for t, _ in b] for b in merged] == [[t for t, _ in b] for b in adapters]
    assert [s for b in merged for _, s in b] == pytest.approx([s for b in adapters for _, s in b], abs=1e-4)


def test_a_loaded_model_is_ready_to_predict(tiny_run):
    model = load_model(tiny_run.run_dir, device="cpu").model
    assert not any(p.requires_grad for p in model.parameters())
    assert all(m.merged for m in model.modules() if isinstance(m, LoraLayer))
    assert model.frozen_key == model._compute_frozen_key()  # taken on the trained towers
