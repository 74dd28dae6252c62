import torch
from safetensors.torch import save_file

from lavis.common.weights_file import CONTENT_KEY
from lavis.models.blip2_mr.checkpoint import load_weights, save_weights
from lavis.models.blip2_mr.model import Blip2MR
from lavis.models.blip2_mr.random_batch import random_batch
from lavis.models.model_config import model_config
from lavis.runners.config import RunConfig
from lavis.runners.strategies import SingleDevice


def trained_tiny(seed):
    torch.manual_seed(seed)
    model = Blip2MR.from_config(model_config("blip2_mr", "tiny"))
    batch = random_batch(
        model.cfg, batch_size=2, num_frames=4, audio_frames=101, generator=torch.Generator().manual_seed(1)
    )
    model.train()
    with torch.no_grad():
        for _ in range(3):  # train-mode forwards move the CLAP tower's BatchNorm statistics
            model(batch)
    return model.eval(), batch


def test_a_reloaded_model_hears_and_sees_what_the_trained_one_did(tmp_path):
    model, batch = trained_tiny(seed=0)
    strategy = SingleDevice(RunConfig(device="cpu", amp="off"))
    state = strategy.trainable_state_dict(model)
    assert any(k.endswith("running_mean") for k in state)  # not only the parameters

    fresh, _ = trained_tiny(seed=1)  # other weights, other statistics
    strategy.load_trainable_state_dict(fresh, state)
    assert torch.equal(fresh.eval().frame_tokens(batch), model.frame_tokens(batch))

    # The safetensors export carries them too.
    other, _ = trained_tiny(seed=2)
    load_weights(other, save_weights(model, tmp_path / "w.safetensors"))
    assert torch.equal(other.eval().frame_tokens(batch), model.frame_tokens(batch))


def test_a_checkpoint_without_statistics_still_loads_with_a_warning(caplog, tmp_path):
    model, _ = trained_tiny(seed=0)
    strategy = SingleDevice(RunConfig(device="cpu", amp="off"))
    state = {
        k: v for k, v in strategy.trainable_state_dict(model).items() if "running_" not in k and "num_batches" not in k
    }
    strategy.load_trainable_state_dict(trained_tiny(seed=1)[0], dict(state))  # (torch fills the dict it gets)
    assert "checkpoint has no running statistics" in caplog.text

    # The same for a safetensors export written without them (an older file).
    caplog.clear()
    path = tmp_path / "old.safetensors"
    save_file({k: v.clone() for k, v in state.items()}, str(path), metadata={CONTENT_KEY: "trainable"})
    load_weights(trained_tiny(seed=2)[0], path)
    assert "old.safetensors has no running statistics" in caplog.text
