#!/usr/bin/env bash
# Evaluate a trained SMS model on ActivityNet Captions (datasets: anet): CKPT=path/to/checkpoint_best.pt bash run_scripts/anet/eval.sh
# Extra arguments are passed on (--options ...); CFG=... picks another experiment YAML.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash run_scripts/launch.sh lavis.evaluate "${CFG:-configs/experiments/anet/sms.yaml}" \
  --options run.resume_ckpt_path="${CKPT:?set CKPT to a checkpoint file or run directory}" "$@"
