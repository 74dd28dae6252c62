"""Many machines, tested on one: ``run_scripts/launch.sh`` with ``NNODES=2`` started twice on this
machine (``NODE_RANK`` 0 and 1, ``MASTER_ADDR=127.0.0.1``, one CPU process per "node", gloo) trains
the tiny SMS on synthetic videos with the same losses as one process on the same global batch.

This is the path a cluster takes (the same command on every node, torchrun's static rendezvous),
down to the shell script; only the network is the loopback.
"""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.tiny_run import EXPERIMENT, SPEC

from mr_data.synthetic import generate_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]
STEPS = 4
GLOBAL_BATCH = 4
LAUNCH_ENV = ("NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "NPROC", "RANK", "WORLD_SIZE", "LOCAL_RANK")


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("multinode") / "data"
    generate_dataset(data, num_videos=8, seed=1, spec=SPEC, workers=1)
    return data


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def options(data: Path, run_dir: Path, strategy: str, batch_per_process: int) -> list[str]:
    # Dropout is off in the tiny preset; the audio tower is frozen so that its batch norm uses
    # running statistics (batch statistics would differ between one batch of 4 and two of 2). The
    # temporal crop is off: a cropped sample can feed fewer frames, and a loss averaged over each
    # process's own frames (a per-frame loss) equals the one-process average only when every
    # process feeds as many frames.
    return [
        f"datasets.synthetic_av.root={data}",
        "datasets.synthetic_av.num_frames=4",
        f"run.output_dir={run_dir}",
        f"run.strategy={strategy}",
        f"run.batch_size_train={batch_per_process}",
        f"run.max_iters={STEPS}",
        "run.max_epoch=1",
        "run.max_minutes=null",
        "run.warmup_steps=1",
        "run.log_freq=1",
        "run.num_workers=0",
        "run.torch_threads=1",
        "run.valid_splits=[]",
        "run.test_splits=[]",
        "model.freeze_audio=true",
        "datasets.synthetic_av.temporal_crop.prob=0.0",
    ]


def launch(env_extra: dict[str, str], opts: list[str]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_ENV}
    # launch.sh runs `python`: this interpreter, whatever the caller's PATH holds.
    env.update(PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}", NPROC="1", **env_extra)
    return subprocess.Popen(
        ["bash", "run_scripts/launch.sh", "lavis.train", EXPERIMENT, "--options", *opts],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def kill(proc: subprocess.Popen) -> None:
    """The launcher and its workers (one process group: torchrun's workers outlive a killed agent)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def finish(proc: subprocess.Popen, what: str) -> str:
    try:
        out, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        kill(proc)
        out, _ = proc.communicate()
        pytest.fail(f"{what} did not finish in 240 s:\n{out[-3000:]}")
    assert proc.returncode == 0, f"{what} failed:\n{out[-4000:]}"
    return out


def train_losses(run_dir: Path) -> dict[int, float]:
    records = map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
    return {r["step"]: r["loss"] for r in records if r["type"] == "train"}


def test_two_nodes_match_one_process_on_the_same_global_batch(videos, tmp_path):
    one_dir, two_dir = tmp_path / "one_process", tmp_path / "two_nodes"
    port = str(free_port())
    nodes = [
        launch(
            {"NNODES": "2", "NODE_RANK": str(rank), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port},
            options(videos, two_dir, "ddp", GLOBAL_BATCH // 2),
        )
        for rank in (0, 1)
    ]
    try:
        for rank, node in enumerate(nodes):
            out = finish(node, f"node {rank} of 2")
            # launch.sh echoes its torchrun command (set -x): the multi-node rendezvous, not --standalone.
            assert f"--nnodes=2 --node_rank={rank} --master_addr=127.0.0.1 --master_port={port}" in out
    finally:
        for node in nodes:  # a node whose peer failed would wait for the rendezvous for minutes
            kill(node)
    finish(launch({}, options(videos, one_dir, "single", GLOBAL_BATCH)), "the one-process run")

    one, two = train_losses(one_dir), train_losses(two_dir)
    assert sorted(one) == sorted(two) == list(range(1, STEPS + 1))
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=1e-4, abs=1e-5), step
    assert len(set(one.values())) > 1  # the steps trained: the losses moved
