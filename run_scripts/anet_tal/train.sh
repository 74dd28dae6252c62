#!/usr/bin/env bash
# Fine-tune SMS on ActivityNet v1.3 action localization (datasets: anet_tal). Extra arguments are passed on, e.g. --options run.max_epoch=3
# CFG=... picks another experiment YAML; NPROC/NNODES/... as in run_scripts/launch.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash run_scripts/launch.sh lavis.train "${CFG:-configs/experiments/anet_tal/sms.yaml}" "$@"
