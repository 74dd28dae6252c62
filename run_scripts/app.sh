#!/usr/bin/env bash
# The app: a page in the browser that asks a trained run about a video (python -m lavis.app).
#   RUN_DIR  the run to serve, default checkpoints/runs/demo (what run_scripts/demo.sh trains)
# Extra arguments go to python -m lavis.app, e.g. --port 8080, --host 0.0.0.0, --max-seconds 300.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR="${RUN_DIR:-checkpoints/runs/demo}"
if [ ! -f "$RUN_DIR/config.yaml" ]; then
  echo "app.sh: no trained run in $RUN_DIR; make it with: bash run_scripts/demo.sh" >&2
  exit 2
fi
SMS_EXTRAS=app source run_scripts/setup_env.sh
exec python -m lavis.app --run-dir "$RUN_DIR" "$@"
