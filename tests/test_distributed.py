"""Multi-process runs on CPU with gloo, launched through torchrun like a user would."""

import subprocess
import sys

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


@pytest.mark.slow
def test_deepspeed_zero2_matches_one_process(tmp_path):
    pytest.importorskip("deepspeed")
    torchrun(1, tmp_path / "one", "single", 4)
    torchrun(2, tmp_path / "ds", "deepspeed", 2)
    one, ds = train_losses(tmp_path / "one"), train_losses(tmp_path / "ds")
    assert sorted(one) == sorted(ds)
    for step in one:
        assert ds[step] == pytest.approx(one[step], abs=1e-4), step
