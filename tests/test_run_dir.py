"""Issue 13, findings 1 and 2 and the minor ones: a run directory belongs to one run, one run at a
time, with every file written atomically and temporary files of killed writers cleaned."""

import json
import os
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml
from helpers.toy_run import toy_experiment, train_losses

from lavis.common.files import atomic_write_text, remove_stale_temp_files
from lavis.common.registry import RegistryError
from lavis.common.run_dir import RunDir
from lavis.runners.hooks import Hook
from lavis.runners.nonfinite import NonFiniteLossError
from lavis.runners.run_lock import RunDirError, RunLock, claim_run_dir
from lavis.runners.runner import RunnerBase


def run(out, **overrides):
    cfg, task, model, datasets = toy_experiment(out, **overrides)
    runner = RunnerBase(cfg, task, model, datasets)
    return runner, runner.train()


def test_new_run_into_a_used_folder_is_refused_and_the_old_run_kept(tmp_path):
    # Finding 1: the new run pruned its own checkpoints (the old run's steps were higher).
    out = tmp_path / "run"
    run(out, max_epoch=3)
    files = lambda: {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != ".lock"}  # noqa: E731
    before = files()
    with pytest.raises(RunDirError, match=r"already holds a run .*checkpoint_step18\.pt.*run\.resume_ckpt_path="):
        run(out, max_epoch=1)
    assert files() == before


def test_evaluation_writes_into_its_own_run_but_not_into_another(tmp_path):
    out = tmp_path / "run"
    run(out)
    config = (out / "config.yaml").read_text()
    run(out, evaluate=True, resume_ckpt_path=str(out / "checkpoint_best.pt"))
    assert (out / "config.yaml").read_text() == config  # the trained run's config is kept
    other = tmp_path / "other"
    run(other)
    with pytest.raises(RunDirError, match="evaluates that run's own checkpoint"):
        run(other, evaluate=True, resume_ckpt_path=str(out / "checkpoint_best.pt"))


def test_a_second_run_into_a_locked_folder_is_refused(tmp_path):
    # Finding 2: two runs into one output_dir both exited 0 with their files mixed.
    out = tmp_path / "run"
    holder = RunLock(out)
    holder.acquire()  # an open file description of its own: as another process's lock
    try:
        with pytest.raises(RunDirError, match=rf"in use by another run \(PID {os.getpid()} on "):
            run(out)
        assert not (out / "config.yaml").exists()
    finally:
        holder.release()
    run(out)  # released: the folder is usable again
    assert (out / "metrics_test.json").exists()


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path, caplog):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (out / ".lock").write_text(f"{pid} {socket.gethostname()}\n")
    lock = claim_run_dir(out, None, False, SimpleNamespace(is_main=True, broadcast_object=lambda obj: obj))
    lock.release()
    assert f"stale lock of PID {pid}" in caplog.text
    assert (out / ".lock").read_text() == ""  # released: no PID left to look stale


@pytest.mark.parametrize(
    "overrides, error",
    [
        ({"nan_at_qid": ["t5"]}, NonFiniteLossError),  # fails at step 2
        ({"hooks": ["nope"]}, RegistryError),  # fails opening the logging hooks
    ],
)
def test_the_lock_is_released_when_the_run_fails(tmp_path, overrides, error):
    with pytest.raises(error):
        run(tmp_path / "run", **overrides)
    lock = RunLock(tmp_path / "run")
    lock.acquire()
    lock.release()


def test_temp_files_of_dead_writers_are_removed_at_start(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    dead = int(
        subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout
    )
    stale = out / f".checkpoint_step4.pt.tmp-{dead}"
    mine = out / f".preds_val.jsonl.tmp-{os.getpid()}"
    stale.write_bytes(b"partial")
    mine.write_bytes(b"being written")
    assert remove_stale_temp_files(out) == [stale]
    assert mine.exists()
    mine.unlink()
    stale.write_bytes(b"partial")
    run(out)
    assert not stale.exists()


def test_run_files_are_written_atomically(tmp_path, monkeypatch):
    # A config.yaml cut short loaded with defaults filled in; a crash mid-write must leave the old file.
    path = tmp_path / "config.yaml"
    atomic_write_text(path, "run:\n  max_epoch: 3\n")

    def crash(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", crash)  # the new text is written, then the disk fills
    with pytest.raises(OSError):
        atomic_write_text(path, "run:\n  max_epoch: 5\n  init_lr: 1\n")
    monkeypatch.undo()
    assert yaml.safe_load(path.read_text()) == {"run": {"max_epoch": 3}}
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]
    cfg, *_ = toy_experiment(tmp_path / "run")
    saved = RunDir(tmp_path / "run").write_config(cfg)
    assert yaml.safe_load(saved.read_text())["run"]["output_dir"] == str(tmp_path / "run")


def test_metrics_jsonl_has_each_step_once_after_a_resume(tmp_path):
    out = tmp_path / "run"
    cfg, task, model, datasets = toy_experiment(out, save_every_iters=4)
    runner = RunnerBase(cfg, task, model, datasets)

    class KillAfter(Hook):  # the process dies (no save) after step 5 was logged
        def after_step(self):
            if self.trainer.state.step == 5:
                raise KeyboardInterrupt

    runner.register_hooks([KillAfter()])
    with pytest.raises(KeyboardInterrupt):
        runner.train()
    run(out, save_every_iters=4, resume_ckpt_path=str(out))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["type"] == "train"]
    assert steps == list(range(1, 13))
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [1, 2]
    assert sorted(train_losses(out)) == steps
