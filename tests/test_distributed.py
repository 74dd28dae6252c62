"""Multi-process runs on CPU with gloo, launched through torchrun like a user would."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.toy_run import train_losses


def torchrun(nproc, *args):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "tests/helpers/ddp_worker.py",
        *map(str, args),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    # torchrun prints a long summary last; the ranks' own tracebacks come first.
    rank_lines = [line for line in done.stderr.splitlines() if line.startswith("[rank")]
    # Otherwise (a rank aborted) the cause is at the start of stderr, torchrun's summary at the end.
    assert done.returncode == 0, "\n".join(rank_lines[-40:]) or done.stderr[:4000] + "\n...\n" + done.stderr[-1500:]


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one_on_the_same_global_batch(tmp_path, strategy):
    torchrun(1, tmp_path / "one", "single", 4)
    torchrun(2, tmp_path / "two", strategy, 2)
    one, two = train_losses(tmp_path / "one"), train_losses(tmp_path / "two")
    assert sorted(one) == sorted(two) == list(range(1, 7))
    for step in one:
        assert two[step] == pytest.approx(one[step], abs=1e-4), step


def _records(run: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["type"] == kind]


def test_one_and_two_processes_train_the_published_global_batch_on_the_same_schedule(tmp_path):
    # The experiment states its global batch (4) and the most one device takes (2): one process
    # accumulates 2 micro-batches, two processes take 2 each; the warm-up is a share of training.
    recipe = ["global_batch_size=4", "warmup_steps=None", "warmup_fraction=0.5"]
    torchrun(1, tmp_path / "one", "single", 2, *recipe)
    torchrun(2, tmp_path / "two", "ddp", 2, *recipe)
    layouts = {n: _records(tmp_path / n, "setup")[0] for n in ("one", "two")}
    assert (layouts["one"]["world_size"], layouts["one"]["per_device"], layouts["one"]["accumulation"]) == (1, 2, 2)
    assert (layouts["two"]["world_size"], layouts["two"]["per_device"], layouts["two"]["accumulation"]) == (2, 2, 1)
    assert layouts["one"]["global_batch"] == layouts["two"]["global_batch"] == 4
    for name in ("one", "two"):  # recorded with the run too
        recorded = json.loads((tmp_path / name / "run_info.json").read_text())["batch"]
        assert recorded == {k: v for k, v in layouts[name].items() if k not in ("type", "step", "time")}
    one, two = _records(tmp_path / "one", "train"), _records(tmp_path / "two", "train")
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, 7))  # 24 samples / 4
    assert [r["lr"] for r in one] == pytest.approx([r["lr"] for r in two])  # the same schedule
    assert one[0]["lr"] < one[2]["lr"] and max(r["lr"] for r in one) == one[2]["lr"]  # 3 of 6 steps warm up
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-4), a["step"]


@pytest.mark.slow
def test_deepspeed_zero2_matches_one_process(tmp_path):
    pytest.importorskip("deepspeed")
    torchrun(1, tmp_path / "one", "single", 4)
    torchrun(2, tmp_path / "ds", "deepspeed", 2)
    one, ds = train_losses(tmp_path / "one"), train_losses(tmp_path / "ds")
    assert sorted(one) == sorted(ds)
    for step in one:
        assert ds[step] == pytest.approx(one[step], abs=1e-4), step
