#!/usr/bin/env bash
# One srun task per node (started by run_scripts/slurm/launch_nodes.sh): its node's rank is
# SLURM_NODEID; everything else comes from the environment launch_nodes.sh exported.
set -euo pipefail
cd "$(dirname "$0")/../.."
export NODE_RANK="${SLURM_NODEID:?SLURM_NODEID is not set: run through srun (run_scripts/slurm/launch_nodes.sh)}"
exec bash run_scripts/launch.sh "$@"
