"""Issue 13, findings 3, 4, 5, 7 and 8: a resume continues the same run, from a good checkpoint,
with its clock and schedule; an epoch's training survives its validation and a signal during it."""

import json
import random
import signal

import pytest
import torch
from helpers.toy_run import ToyTask, toy_experiment, train_losses

from lavis.common.errors import RunInterrupted
from lavis.runners import runner as runner_mod
from lavis.runners.checkpoint import CheckpointError, load_checkpoint, verify_checkpoint
from lavis.runners.hooks import Hook
from lavis.runners.resume import ResumeError
from lavis.runners.runner import RunnerBase


def runner_for(out, task=None, **overrides):
    cfg, toy_task, model, datasets = toy_experiment(out, **overrides)
    return RunnerBase(cfg, task or toy_task, model, datasets)


def records(out, kind):
    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["type"] == kind]


def assert_same_losses(a, b):
    assert sorted(a) == sorted(b)
    for step in a:
        assert a[step] == pytest.approx(b[step], abs=1e-7), step


class Clock:
    """time.time for the runner: one second per call, so elapsed time is a function of the steps."""

    def __init__(self):
        self.now = 1_000.0

    def time(self):
        self.now += 1.0
        return self.now


def test_resume_restores_elapsed_time_and_the_time_schedule(tmp_path, monkeypatch):
    # Finding 3: a resumed max_minutes run restarted its budget and its cosine (lr back to init_lr).
    run = dict(max_epoch=1000, max_minutes=0.5, valid_every_epochs=0, dropout=0.0)
    monkeypatch.setattr(runner_mod, "time", Clock())
    runner_for(tmp_path / "full", **run).train()
    full = train_losses(tmp_path / "full")

    monkeypatch.setattr(runner_mod, "time", Clock())
    cut = runner_for(tmp_path / "cut", **run)

    class StopAt(Hook):  # a SIGTERM during step 10
        def before_step(self):
            if self.trainer.state.step == 9:
                cut.signals.received = signal.SIGTERM

    cut.register_hooks([StopAt()])
    with pytest.raises(RunInterrupted) as stopped:
        cut.train()
    assert load_checkpoint(stopped.value.checkpoint)["elapsed"] >= 10

    monkeypatch.setattr(runner_mod, "time", Clock())
    runner_for(tmp_path / "cut", resume_ckpt_path=str(tmp_path / "cut"), **run).train()
    lrs = {r["step"]: r["lr"] for r in records(tmp_path / "cut", "train")}
    assert lrs[11] < lrs[10] < 1e-2  # the cosine goes on from where it was
    assert_same_losses(train_losses(tmp_path / "cut"), full)  # and the budget ends at the same step


def test_resume_with_a_changed_config_names_the_keys(tmp_path):
    # Finding 4: a checkpoint resumed silently under another model/data/optimisation config.
    out = tmp_path / "run"
    runner_for(out).train()
    with pytest.raises(ResumeError, match=r"model\.dropout: 0\.1 -> 0\.3; run\.init_lr: 0\.01 -> 0\.02"):
        runner_for(out, dropout=0.3, init_lr=0.02, resume_ckpt_path=str(out)).train()
    # Keys that say how long to train, how to log and save may change: 2 more epochs.
    runner_for(out, max_epoch=4, log_freq=2, resume_ckpt_path=str(out)).train()
    assert max(r["step"] for r in records(out, "train")) == 24


def test_resume_from_the_best_checkpoint_is_refused_clearly(tmp_path):
    out = tmp_path / "run"
    runner_for(out).train()
    with pytest.raises(ResumeError, match=r"checkpoint_best\.pt holds weights only .* resume from the run folder"):
        runner_for(out, resume_ckpt_path=str(out / "checkpoint_best.pt")).train()


def flip_bits(path, count, rng):
    data = bytearray(path.read_bytes())
    for _ in range(count):
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))


def test_flipped_bits_in_a_checkpoint_never_load_silently(tmp_path):
    # Finding 5: 16 flipped bits loaded silently and training went on.
    original = tmp_path / "original.pt"
    torch.save({"model": {"w": torch.randn(64, 64)}, "step": 3}, original)
    reference = torch.load(original, weights_only=False)
    rng = random.Random(0)
    detected = 0
    for trial in range(40):
        path = tmp_path / f"flipped{trial}.pt"
        path.write_bytes(original.read_bytes())
        flip_bits(path, 16, rng)
        try:
            verify_checkpoint(path)
        except CheckpointError as err:
            assert str(path) in str(err)
            detected += 1
            continue
        # Undetected flips may only hit bytes that carry no data (zip alignment padding).
        assert torch.equal(torch.load(path, weights_only=False)["model"]["w"], reference["model"]["w"])
    assert detected >= 38


def test_resume_from_a_folder_skips_a_corrupt_newest_checkpoint(tmp_path, caplog):
    # Finding 5: a corrupt newest checkpoint stopped the resume with a traceback.
    runner_for(tmp_path / "full").train()
    out = tmp_path / "run"
    runner_for(out).train()
    flip_bits(out / "checkpoint_step12.pt", 16, random.Random(1))
    with pytest.raises(
        CheckpointError,
        match=r"checkpoint_step12\.pt: corrupt .* newest good checkpoint there is .*checkpoint_step6\.pt",
    ):
        load_checkpoint(out / "checkpoint_step12.pt")
    runner_for(out, resume_ckpt_path=str(out)).train()  # continues from step 6, saying so
    assert "skipping checkpoint_step12.pt" in caplog.text and "using checkpoint_step6.pt" in caplog.text
    assert_same_losses(train_losses(out), train_losses(tmp_path / "full"))
    verify_checkpoint(out / "checkpoint_step12.pt")  # rewritten, good


class FailingValidation(ToyTask):
    def evaluate(self, preds, records, skipped_videos=0):
        raise ValueError("image_size does not match the model")


def test_a_failing_validation_keeps_the_epoch_checkpoint(tmp_path):
    # Finding 7: validation ran before the epoch's save, so its error lost the epoch.
    runner_for(tmp_path / "full").train()
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="image_size"):
        runner_for(out, task=FailingValidation()).train()
    saved = load_checkpoint(out / "checkpoint_step6.pt")
    assert saved["step"] == 6 and saved["epoch_end_pending"]
    runner_for(out, resume_ckpt_path=str(out)).train()  # validates epoch 1 first, then goes on
    assert [r["step"] for r in records(out, "epoch")] == [6, 12]
    assert all("valid_score" in r for r in records(out, "epoch"))
    assert_same_losses(train_losses(out), train_losses(tmp_path / "full"))


class SignalDuringValidation(ToyTask):
    """Delivers SIGTERM (as the OS would: through the handler) in the n-th validation batch."""

    def __init__(self, at_call):
        self.calls, self.at_call = 0, at_call

    def valid_step(self, model, batch):
        self.calls += 1
        if self.calls == self.at_call:
            signal.raise_signal(signal.SIGTERM)
        return super().valid_step(model, batch)


@pytest.mark.parametrize("at_call", [1, 3, 5], ids=["first_validation", "final_validation", "final_test"])
def test_a_signal_during_validation_stops_and_the_resume_validates(tmp_path, at_call):
    # Finding 8: SIGTERM during evaluation was ignored until it finished; after a kill during the
    # final validation the resumed run skipped it and left no checkpoint_best.pt.
    before = signal.getsignal(signal.SIGTERM)
    full_results = runner_for(tmp_path / "full").train()
    assert signal.getsignal(signal.SIGTERM) is before  # the runner gives the handlers back
    out = tmp_path / "run"
    with pytest.raises(RunInterrupted) as stopped:
        runner_for(out, task=SignalDuringValidation(at_call)).train()
    assert stopped.value.exit_code == 128 + signal.SIGTERM
    step = 6 if at_call == 1 else 12  # validations: calls 1-2 (step 6), 3-4 (step 12); test: 5-7
    assert stopped.value.checkpoint.name == f"checkpoint_step{step}.pt"
    split = "test" if at_call == 5 else "val"
    assert not [r for r in records(out, "eval") if r["step"] == step and r["split"] == split]  # partial: not scored
    results = runner_for(out, resume_ckpt_path=str(out)).train()
    assert (out / "checkpoint_best.pt").exists()
    assert [r["step"] for r in records(out, "eval") if r["split"] == "val"] == [6, 12]
    assert_same_losses(train_losses(out), train_losses(tmp_path / "full"))
    assert results["test"]["brief"] == full_results["test"]["brief"]
