#!/usr/bin/env bash
# Inside a SLURM allocation (an sbatch script): start run_scripts/launch.sh once per node with
# srun, mapping SLURM's variables onto the launcher's torchrun settings.
#   bash run_scripts/slurm/launch_nodes.sh MODULE CFG_PATH [--options k=v ...]
#   SLURM_NNODES                                   -> NNODES
#   first host of `scontrol show hostnames $SLURM_JOB_NODELIST` -> MASTER_ADDR
#   29500 + SLURM_JOB_ID % 10000 (unless MASTER_PORT is set)   -> MASTER_PORT (jobs sharing a node do not collide)
#   SLURM_GPUS_ON_NODE (unless NPROC is set)       -> NPROC (else launch.sh counts the GPUs)
#   SLURM_NODEID of each srun task                 -> NODE_RANK (run_scripts/slurm/node.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$#" -lt 2 ]; then
  echo "usage: $0 MODULE CFG_PATH [--options k=v ...]" >&2
  exit 2
fi
for var in SLURM_NNODES SLURM_JOB_NODELIST SLURM_JOB_ID; do
  if [ -z "${!var:-}" ]; then
    echo "error: $var is not set: run this inside a SLURM allocation (sbatch run_scripts/slurm/train.sbatch)" >&2
    exit 2
  fi
done

# (Not `| head -n 1`: with pipefail, scontrol killed by SIGPIPE would fail the script.)
hosts="$(scontrol show hostnames "$SLURM_JOB_NODELIST")"
MASTER_ADDR="${hosts%%$'\n'*}"
if [ -z "$MASTER_ADDR" ]; then
  echo "error: scontrol show hostnames '$SLURM_JOB_NODELIST' gave no host" >&2
  exit 2
fi
export MASTER_ADDR
export MASTER_PORT="${MASTER_PORT:-$((29500 + SLURM_JOB_ID % 10000))}"
export NNODES="$SLURM_NNODES"
# SLURM_GPUS_ON_NODE is set when the job asks for GPUs per node (--gpus-per-node, --gres=gpu:N).
if [ -z "${NPROC:-}" ] && [ -n "${SLURM_GPUS_ON_NODE:-}" ]; then
  export NPROC="$SLURM_GPUS_ON_NODE"
fi

# One task per node; each starts torchrun, which starts NPROC processes. --kill-on-bad-exit: a
# node that fails stops the others instead of leaving them waiting in a collective.
exec srun --nodes="$SLURM_NNODES" --ntasks="$SLURM_NNODES" --ntasks-per-node=1 --kill-on-bad-exit=1 \
  bash run_scripts/slurm/node.sh "$@"
