import json
import re
import signal

import pytest
import torch
from helpers.toy_run import toy_experiment, train_losses

from lavis.common.errors import RunInterrupted
from lavis.runners import checkpoint as ckpt_mod
from lavis.runners.hooks import Hook
from lavis.runners.nonfinite import NonFiniteLossError
from lavis.runners.runner import RunnerBase


def run(tmp_path, name, **overrides):
    cfg, task, model, datasets = toy_experiment(tmp_path / name, **overrides)
    runner = RunnerBase(cfg, task, model, datasets)
    return runner, runner.train()


def test_train_validates_picks_best_and_tests(tmp_path):
    runner, results = run(tmp_path, "a")
    out = tmp_path / "a"
    assert results["test"]["brief"]["n"] == 11 and len(set(results["test"]["qids"])) == 11
    assert (out / "checkpoint_best.pt").exists() and (out / "config.yaml").exists()
    assert json.loads((out / "metrics_test.json").read_text())["brief"]["n"] == 11
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert len(epochs) == 2 and all("valid_score" in r and r["skipped_videos"] == 0 for r in epochs)
    # 24 samples / batch 4 = 6 steps per epoch, 2 epochs.
    assert sorted(train_losses(out)) == list(range(1, 13))
    # Best + last 2 step checkpoints only.
    assert sorted(p.name for p in out.glob("checkpoint_step*.pt")) == ["checkpoint_step12.pt", "checkpoint_step6.pt"]


def test_loss_decreases(tmp_path):
    _, _ = run(tmp_path, "a", max_epoch=6, dropout=0.0)
    losses = train_losses(tmp_path / "a")
    assert losses[max(losses)] < 0.5 * losses[1]


@pytest.mark.parametrize("accum", [1, 2])
def test_resume_mid_epoch_reproduces_the_same_losses(tmp_path, accum):
    full_runner, _ = run(tmp_path, "full", accum_grad_iters=accum, batch_size_train=2)
    full = train_losses(tmp_path / "full")

    cfg, task, model, datasets = toy_experiment(tmp_path / "cut", accum_grad_iters=accum, batch_size_train=2)
    runner = RunnerBase(cfg, task, model, datasets)

    class StopAt(Hook):  # deliver a SIGTERM-equivalent during step 4 (mid-epoch)
        def before_step(self):
            if self.trainer.state.step == 3:
                runner.signals.received = signal.SIGTERM

    runner.register_hooks([StopAt()])
    with pytest.raises(RunInterrupted) as stopped:
        runner.train()
    assert stopped.value.checkpoint.name == "checkpoint_step4.pt"

    cfg, task, model, datasets = toy_experiment(
        tmp_path / "cut", accum_grad_iters=accum, batch_size_train=2, resume_ckpt_path=str(stopped.value.checkpoint)
    )
    RunnerBase(cfg, task, model, datasets).train()
    resumed = train_losses(tmp_path / "cut")
    assert sorted(resumed) == sorted(full)
    for step in full:
        assert resumed[step] == pytest.approx(full[step], abs=1e-7), step


def test_nonfinite_loss_stops_with_step_and_qids(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"at step \d+, on the queries: .*qid t5"):
        run(tmp_path, "a", nan_at_qid=["t5"])


def test_nonfinite_loss_skip_policy_counts(tmp_path):
    run(tmp_path, "a", nan_at_qid=["t5"], nonfinite_loss="skip")
    epochs = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert sum(r.get("nonfinite_steps", 0) for r in epochs if r["type"] == "epoch") == 2  # once per epoch


def test_evaluate_only_loads_weights(tmp_path):
    runner, _ = run(tmp_path, "a")
    trained = {k: v.clone() for k, v in runner.model.state_dict().items()}
    cfg, task, model, datasets = toy_experiment(
        tmp_path / "b", evaluate=True, resume_ckpt_path=str(tmp_path / "a" / "checkpoint_best.pt")
    )
    results = RunnerBase(cfg, task, model, datasets).train()
    assert set(results) == {"val", "test"}
    best = torch.load(tmp_path / "a" / "checkpoint_best.pt", weights_only=False)["model"]
    for key, value in best.items():
        assert torch.equal(model.state_dict()[key], value)
    assert trained  # the best checkpoint may be from epoch 1; weights above come from it


def test_crash_mid_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    ckpt_mod.atomic_torch_save({"a": 1}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)
    with pytest.raises(OSError):
        ckpt_mod.atomic_torch_save({"a": 2}, path)
    monkeypatch.undo()
    assert ckpt_mod.load_checkpoint(path) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "checkpoint_step3.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match=r"no usable checkpoint_step\*\.pt \(corrupt: checkpoint_step3\.pt\)"):
        ckpt_mod.load_checkpoint(tmp_path)
    with pytest.raises(RuntimeError, match="checkpoint_step3.pt: corrupt checkpoint"):
        ckpt_mod.load_checkpoint(bad)


def test_time_budget_stops_validates_and_tests(tmp_path):
    runner, results = run(tmp_path, "a", max_epoch=100000, max_minutes=0.03, valid_every_epochs=0, min_lr=1e-4)
    records = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert epochs and [r for r in epochs if "valid_score" in r] == epochs[-1:]  # validated once, at the end
    assert results["test"]["brief"]["n"] == 11
    # The cosine follows the clock: decreasing after warmup and near min_lr when time ran out
    # (the last logged lr lags the clock by one step, which may be long on a busy machine).
    lrs = [r["lr"] for r in records if r["type"] == "train"][2:]
    assert all(a >= b for a, b in zip(lrs, lrs[1:])) and lrs[-1] < 0.5 * 1e-2


@pytest.mark.parametrize("accum", [1, 2])
def test_named_parts_of_the_loss_are_logged_beside_it(tmp_path, accum):
    """A task whose train_step returns {"loss", <parts>} (blip2_mr with the saliency head:
    loss_lm, loss_saliency) gets each part's interval mean in metrics.jsonl."""
    cfg, task, model, datasets = toy_experiment(tmp_path / "a", max_epoch=1, dropout=0.0, accum_grad_iters=accum)
    plain = task.train_step
    task.train_step = lambda m, b: {"loss": (loss := plain(m, b)), "loss_half": loss.detach() / 2}
    RunnerBase(cfg, task, model, datasets).train()
    records = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["type"] == "train"]
    assert train and all(r["loss_half"] == pytest.approx(r["loss"] / 2, rel=1e-5) for r in train)


class Clock:
    """time.time for the runner: one second per call, so the elapsed time follows the steps."""

    def __init__(self):
        self.now = 1_000.0

    def time(self):
        self.now += 1.0
        return self.now


def test_a_time_budget_run_shows_the_budget_on_its_bar(tmp_path, monkeypatch, capsys):
    # The demo showed `2349/77000 [03:40<1:55:51]` for a 6-minute run: steps and an ETA of max_epoch.
    from lavis.runners import runner as runner_mod

    monkeypatch.setattr(runner_mod, "time", Clock())
    run(tmp_path, "budget", max_epoch=1000, max_minutes=0.5, valid_every_epochs=0)
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()
    last = [line for line in bar if line.startswith("training:")][-1]
    assert re.search(r"training: 100%\|.*\| 00:30/00:30 trained, 00:00 left, step \d+, loss=", last), last
    assert "/1000" not in "".join(bar) and "6000" not in "".join(bar)  # no step count of max_epoch


def test_a_step_run_shows_its_steps(tmp_path, capsys):
    run(tmp_path, "steps")
    assert "12/12 [" in capsys.readouterr().err
