#!/usr/bin/env bash
# Shared launcher: bash run_scripts/launch.sh MODULE CFG_PATH [--options k=v ...]
# Runs `python -m MODULE --cfg-path CFG_PATH ...` under torchrun.
#   NPROC        processes per node (default: number of visible GPUs, or 1 without GPUs)
#   NNODES       number of nodes (default 1); with more than one node also set
#   NODE_RANK, MASTER_ADDR, MASTER_PORT (torchrun's static rendezvous; same command on every node)
# Uses the active Python environment when it has the project installed, else sets up .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
module="$1"; cfg="$2"; shift 2

if ! python -c "import lavis" >/dev/null 2>&1; then
  source run_scripts/setup_env.sh
fi

if [ -z "${NPROC:-}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    NPROC=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  fi
  [ "${NPROC:-0}" -ge 1 ] || NPROC=1
fi
NNODES="${NNODES:-1}"

if [ "$NNODES" -gt 1 ]; then
  rdzv=(--nnodes="$NNODES" --node_rank="${NODE_RANK:?set NODE_RANK}" \
        --master_addr="${MASTER_ADDR:?set MASTER_ADDR}" --master_port="${MASTER_PORT:-29500}")
else
  rdzv=(--standalone --nnodes=1)
fi

set -x
exec python -m torch.distributed.run "${rdzv[@]}" --nproc_per_node="$NPROC" \
  -m "$module" --cfg-path "$cfg" "$@"
