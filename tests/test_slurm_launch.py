"""``run_scripts/slurm/*.sbatch``: SLURM's variables mapped onto ``run_scripts/launch.sh``.

SLURM is not installed here, so ``srun``, ``scontrol`` and ``python`` are fakes on PATH: ``srun``
records its options and runs its command once per node with that node's ``SLURM_NODEID``;
``scontrol show hostnames`` expands the node list; ``python`` prints the torchrun command the
launcher would execute. What is checked is the command each node gets from a SLURM environment.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

FAKE_SRUN = """#!/usr/bin/env bash
echo "srun $*" >> "$FAKE_LOG"
while [ "$#" -gt 0 ] && [[ "$1" == --* ]]; do shift; done
for ((node = 0; node < SLURM_NNODES; node++)); do SLURM_NODEID=$node "$@" || exit $?; done
"""
FAKE_SCONTROL = """#!/usr/bin/env bash
echo "scontrol $*" >> "$FAKE_LOG"
[ "$1 $2" = "show hostnames" ] && printf '%s\\n' $FAKE_HOSTS
"""
FAKE_NVIDIA_SMI = """#!/usr/bin/env bash
printf 'GPU 0: Fake A\\nGPU 1: Fake B\\n'
"""
FAKE_PYTHON = """#!/usr/bin/env bash
[ "$1" = "-c" ] && exit 0   # launch.sh's "is the project importable?" check
echo "python $*" >> "$FAKE_LOG"
"""


@pytest.fixture
def slurm(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (
        ("srun", FAKE_SRUN),
        ("scontrol", FAKE_SCONTROL),
        ("python", FAKE_PYTHON),
        ("nvidia-smi", FAKE_NVIDIA_SMI),
    ):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls.log"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "FAKE_LOG": str(log),
        "FAKE_HOSTS": "gpu-node07 gpu-node08",
        "SLURM_SUBMIT_DIR": str(REPO_ROOT),
        "SLURM_JOB_ID": "4242",
        "SLURM_NNODES": "2",
        "SLURM_JOB_NODELIST": "gpu-node[07-08]",
        "SLURM_GPUS_ON_NODE": "4",
    }

    def run(script: str, *args: str, **extra: str) -> tuple[subprocess.CompletedProcess, list[str]]:
        done = subprocess.run(
            ["bash", str(REPO_ROOT / script), *args],
            env={**env, **extra},
            cwd=tmp_path,
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done, log.read_text().splitlines() if log.exists() else []

    return run


def torchrun_commands(calls: list[str]) -> list[str]:
    return [c for c in calls if c.startswith("python -m torch.distributed.run")]


def test_train_sbatch_starts_one_torchrun_per_node(slurm):
    done, calls = slurm("run_scripts/slurm/train.sbatch", "--options", "run.max_epoch=3")
    assert done.returncode == 0, done.stderr
    assert "scontrol show hostnames gpu-node[07-08]" in calls
    srun = [c for c in calls if c.startswith("srun")]
    assert len(srun) == 1 and "--ntasks-per-node=1" in srun[0] and "--nodes=2" in srun[0]
    common = (
        "--master_addr=gpu-node07 --master_port=33742 --nproc_per_node=4 -m lavis.train "
        "--cfg-path configs/experiments/charades_sta/sms.yaml --options run.max_epoch=3"
    )
    assert torchrun_commands(calls) == [
        f"python -m torch.distributed.run --nnodes=2 --node_rank={rank} {common}" for rank in (0, 1)
    ]


def test_user_settings_win_over_slurm_defaults(slurm):
    done, calls = slurm(
        "run_scripts/slurm/train.sbatch", NPROC="2", MASTER_PORT="12345", CFG="configs/experiments/qvh/sms.yaml"
    )
    assert done.returncode == 0, done.stderr
    for command in torchrun_commands(calls):
        assert "--master_port=12345 --nproc_per_node=2" in command
        assert "--cfg-path configs/experiments/qvh/sms.yaml" in command


def test_without_gpus_per_node_the_launcher_counts_them(slurm):
    done, calls = slurm("run_scripts/slurm/train.sbatch", SLURM_GPUS_ON_NODE="")
    assert done.returncode == 0, done.stderr
    commands = torchrun_commands(calls)  # launch.sh's own default: the GPUs nvidia-smi lists
    assert len(commands) == 2 and all("--nproc_per_node=2 " in c for c in commands)


def test_eval_sbatch_passes_the_checkpoint(slurm):
    done, calls = slurm(
        "run_scripts/slurm/eval.sbatch", CKPT="runs/sms/checkpoint_best.pt", SLURM_NNODES="1", FAKE_HOSTS="gpu-node07"
    )
    assert done.returncode == 0, done.stderr
    (command,) = torchrun_commands(calls)
    assert re.search(
        r"--standalone --nnodes=1 --nproc_per_node=4 -m lavis.evaluate .*"
        r"--options run.resume_ckpt_path=runs/sms/checkpoint_best.pt$",
        command,
    ), command


@pytest.mark.parametrize(
    "script, unset, message",
    [
        ("run_scripts/slurm/launch_nodes.sh", "SLURM_JOB_NODELIST", "SLURM_JOB_NODELIST is not set"),
        ("run_scripts/slurm/train.sbatch", "SLURM_SUBMIT_DIR", "not inside a SLURM job"),
        ("run_scripts/slurm/eval.sbatch", "CKPT", "set CKPT"),
    ],
)
def test_missing_settings_are_named(slurm, script, unset, message):
    args = ("lavis.train", "configs/experiments/charades_sta/sms.yaml") if script.endswith("launch_nodes.sh") else ()
    done, calls = slurm(script, *args, **{unset: ""})
    assert done.returncode != 0 and message in done.stderr
    assert torchrun_commands(calls) == []


def test_submitting_from_elsewhere_is_refused(slurm, tmp_path):
    done, calls = slurm("run_scripts/slurm/train.sbatch", SLURM_SUBMIT_DIR=str(tmp_path))
    assert done.returncode == 2 and "submit from the repository root" in done.stderr
    assert torchrun_commands(calls) == []


def test_scripts_are_executable():
    for path in Path(REPO_ROOT, "run_scripts", "slurm").iterdir():
        assert os.access(path, os.X_OK), path


def test_the_default_allocation_trains_at_the_published_global_batch():
    from lavis.common.config import load_experiment

    header = dict(
        re.findall(
            r"^#SBATCH --([\w-]+)=(\S+)", (REPO_ROOT / "run_scripts/slurm/train.sbatch").read_text(), re.MULTILINE
        )
    )
    run = load_experiment(REPO_ROOT / "configs/experiments/charades_sta/sms.yaml").run
    processes = int(header["nodes"]) * int(header["gpus-per-node"])
    assert int(header["ntasks-per-node"]) == 1  # one torchrun per node, which starts a process per GPU
    assert processes * run.batch_size_train * run.accum_grad_iters == 32  # SMS's Charades-STA batch (4 GPUs x 8)
