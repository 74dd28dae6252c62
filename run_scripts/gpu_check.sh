#!/usr/bin/env bash
# One command for a GPU node: the full-size checks and figures in one JSON summary, in at most
# --total-s seconds (default 480: 8 minutes on one H100/H200), without network access.
#
#   bash run_scripts/gpu_check.sh [--wheels DIR] [--python PY] [--total-s 480] [DRIVER OPTIONS]
#   OUT=results bash run_scripts/gpu_check.sh --wheels wheels/   # also writes results/gpu_check.json
#
# It runs from this source tree (PYTHONPATH) with the node's own torch, transformers, peft, ...
# and never installs torch. What the node lacks (PyAV, omegaconf, pytest, deepspeed,
# and their dependencies) comes from --wheels DIR, a folder prepared with run_scripts/gpu_wheels.sh on any
# machine with network access: installed with `pip --no-index` into a venv that sees the node's
# packages (--system-site-packages, and a .pth for an interpreter that is itself a venv), with the
# node's torch/transformers/peft/numpy pinned. A wheel that does not install is reported and the
# parts that need it are skipped. DRIVER OPTIONS go to `python -m benchmarks.gpu_check`:
# --parts a,b  --skip a,b  --list  --out DIR  --work-dir DIR (see benchmarks/gpu_check.py).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "gpu_check: error: $*" >&2; exit 2; }

PY=python3
WHEELS=""
TOTAL=480
VENV="${GPU_CHECK_VENV:-${TMPDIR:-/tmp}/sms_gpu_check_venv}"
driver=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --wheels) [ "$#" -ge 2 ] || die "--wheels needs a folder"; WHEELS="$2"; shift 2 ;;
    --python) [ "$#" -ge 2 ] || die "--python needs an interpreter"; PY="$2"; shift 2 ;;
    --total-s) [ "$#" -ge 2 ] || die "--total-s needs a number of seconds"; TOTAL="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) driver+=("$1"); shift ;;
  esac
done
[[ "$TOTAL" =~ ^[0-9]+$ ]] && [ "$TOTAL" -ge 60 ] || die "--total-s must be a whole number of seconds >= 60, got '$TOTAL'"
command -v "$PY" >/dev/null 2>&1 || die "--python $PY: no such interpreter"
"$PY" -c "import torch" 2>/dev/null ||
  die "$PY cannot import torch: the check uses the node's own CUDA torch (choose the interpreter with --python)"

notes=""
if [ -n "$WHEELS" ]; then
  [ -d "$WHEELS" ] || die "--wheels $WHEELS is not a folder"
  compgen -G "$WHEELS/*.whl" >/dev/null || die "--wheels $WHEELS holds no .whl file (prepare it with run_scripts/gpu_wheels.sh)"
  WHEELS="$(cd "$WHEELS" && pwd)"
  source run_scripts/gpu_check_venv.sh   # defines make_venv and install_wheels
  make_venv "$PY" "$VENV"
  notes="$VENV/gpu_check_setup.json"
  install_wheels "$VENV/bin/python" "$WHEELS" "$notes"
  PY="$VENV/bin/python"
fi

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# What is left of the budget after the set-up, less a margin for the probe and the summary.
left=$(( TOTAL - (SECONDS - started) - 15 ))
[ "$left" -ge 30 ] || die "the set-up took $((SECONDS - started)) s of the $TOTAL s budget; nothing left to check"
args=(--total-s "$left")
[ -n "$notes" ] && args+=(--setup-notes "$notes")
exec "$PY" -m benchmarks.gpu_check "${args[@]}" ${driver[@]+"${driver[@]}"}
