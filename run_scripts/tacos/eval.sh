#!/usr/bin/env bash
# Evaluate a trained SMS model on TACoS (datasets: tacos): CKPT=path/to/checkpoint_best.pt bash run_scripts/tacos/eval.sh
# Extra arguments are passed on (--options ...); CFG=... picks another experiment YAML.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash run_scripts/launch.sh lavis.evaluate "${CFG:-configs/experiments/tacos/sms.yaml}" \
  --options run.resume_ckpt_path="${CKPT:?set CKPT to a checkpoint file or run directory}" "$@"
