#!/usr/bin/env bash
# Fine-tune SMS on UnAV-100 (datasets: unav100). Extra arguments are passed on, e.g. --options run.max_epoch=3
# CFG=... picks another experiment YAML; NPROC/NNODES/... as in run_scripts/launch.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash run_scripts/launch.sh lavis.train "${CFG:-configs/experiments/unav100/sms.yaml}" "$@"
