#!/usr/bin/env bash
# The demo, on any laptop CPU: set up, generate the synthetic audio-visual benchmark, train the
# tiny SMS for DEMO_MINUTES, evaluate the test split, print the metrics (overall and per event
# kind, against the duration-only guess) and write metrics_test.json + demo.png to OUTPUT_DIR.
#   OUTPUT_DIR    default checkpoints/runs/demo
#   DEMO_MINUTES  training time budget, default 6 (the whole demo stays under 10 minutes on 2 cores)
#   DEMO_DATA     dataset folder, default data/synthetic_av (generated once, then reused)
#   DEMO_VIDEOS   videos to generate, default 300
#   DEMO_THREADS  torch CPU threads, default the machine's cores up to 4 (1 when sharing the CPU)
# Extra arguments are passed to the trainer, e.g. the video-only ablation:
#   OUTPUT_DIR=checkpoints/runs/demo_video_only bash run_scripts/demo.sh --options model.fusion.name=none
set -euo pipefail
cd "$(dirname "$0")/.."
source run_scripts/setup_env.sh

OUTPUT_DIR="${OUTPUT_DIR:-checkpoints/runs/demo}"
DEMO_MINUTES="${DEMO_MINUTES:-6}"
DEMO_DATA="${DEMO_DATA:-data/synthetic_av}"
DEMO_VIDEOS="${DEMO_VIDEOS:-300}"
CORES="$(python -c 'import os; print(len(os.sched_getaffinity(0)))')"
DEMO_THREADS="${DEMO_THREADS:-$(( CORES < 4 ? CORES : 4 ))}"

python -m mr_data.synthetic --out "$DEMO_DATA" --num-videos "$DEMO_VIDEOS" --seed 0
rm -rf "$OUTPUT_DIR"
python -m lavis.train --cfg-path configs/experiments/synthetic/sms_tiny.yaml \
  --options "datasets.synthetic_av.root=$DEMO_DATA" "run.output_dir=$OUTPUT_DIR" "run.max_minutes=$DEMO_MINUTES" \
  "run.torch_threads=$DEMO_THREADS" "$@"
python -m lavis.demo_summary --run-dir "$OUTPUT_DIR"
