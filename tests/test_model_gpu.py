"""The full-size preset with random weights on a GPU: one bf16 training step at batch 8 x 20
frames and one generate, with the peak memory printed (``pytest -m gpu -s``)."""

import pytest
import torch

from lavis.models.blip2_mr.model import Blip2MR
from lavis.models.blip2_mr.random_batch import random_batch
from lavis.models.model_config import model_config

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_full_preset_train_step_and_generate_in_bf16():
    torch.manual_seed(0)
    cfg = model_config("blip2_mr", "pretrain_flant5xl", ["model.tokenizer.source=builtin", "model.prompt.layout=plain"])
    with torch.device("cuda"):
        model = Blip2MR.from_config(cfg)
    batch = random_batch(
        cfg, 8, 20, duration=30.0, audio_frames=1001, generator=torch.Generator().manual_seed(0), device="cuda"
    )
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    torch.cuda.reset_peak_memory_stats()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(batch)["loss"]
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    optim.step()
    train_peak = torch.cuda.max_memory_allocated() / 2**30
    model.eval()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        preds = model.predict(batch)
    generate_peak = torch.cuda.max_memory_allocated() / 2**30
    print(
        f"loss {loss.item():.3f}, peak memory: train step {train_peak:.1f} GiB, with generate {generate_peak:.1f} GiB"
    )
    assert torch.isfinite(loss) and len(preds) == 8
