#!/usr/bin/env bash
# Prepare the folder of wheels that run_scripts/gpu_check.sh --wheels DIR installs on a GPU node
# without network access: what the node lacks of ours (PyAV, omegaconf, pytest, DeepSpeed and
# their dependencies), for the node's Python and platform, never torch.
#
#   bash run_scripts/gpu_wheels.sh DIR [--python-version 3.12] [--platform manylinux2014_x86_64]
#
# Run it on any Linux machine with network access (pip download); copy DIR beside the source tree
# on the node. Binary wheels come from PyPI for the target; a package published only as source
# (DeepSpeed is) is built here into a pure-Python wheel (DeepSpeed with DS_BUILD_OPS=0: its ops
# compile on first use), which needs torch importable by $PYTHON (default: python3). DIR gets a
# requirements.txt naming the packages gpu_check.sh installs.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "gpu_wheels: error: $*" >&2; exit 2; }

[ "$#" -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; -*) die "the first argument is the output folder, got $1" ;; esac
DIR="$1"; shift
PYVER=3.12
PLATFORMS=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --python-version) [ "$#" -ge 2 ] || die "--python-version needs a value, e.g. 3.12"; PYVER="$2"; shift 2 ;;
    --platform) [ "$#" -ge 2 ] || die "--platform needs a value, e.g. manylinux2014_x86_64"; PLATFORMS+=("$2"); shift 2 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[[ "$PYVER" =~ ^3\.[0-9]+$ ]] || die "--python-version must look like 3.12, got '$PYVER'"
# Newer wheels are tagged with the glibc they need; list the tags a current node accepts.
[ "${#PLATFORMS[@]}" -gt 0 ] || PLATFORMS=(manylinux2014_x86_64 manylinux_2_17_x86_64 manylinux_2_28_x86_64)
PYTHON="${PYTHON:-python3}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT

target=(--only-binary=:all: --python-version "$PYVER" --implementation cp)
for p in "${PLATFORMS[@]}"; do target+=(--platform "$p"); done
download() { "$PYTHON" -m pip download --disable-pip-version-check "${target[@]}" --find-links "$DIR" -d "$DIR" "$@"; }

# 1. DeepSpeed: source only on PyPI. Build a wheel without its CUDA ops, then fetch what it
#    requires except torch (the node's own).
packages=(av omegaconf pytest)
if "$PYTHON" -c "import torch" 2>/dev/null; then
  "$PYTHON" -m pip download --disable-pip-version-check --no-deps --no-binary :all: -d "$build" deepspeed
  DS_BUILD_OPS=0 "$PYTHON" -m pip wheel --disable-pip-version-check --no-deps --no-build-isolation \
    -w "$DIR" "$build"/deepspeed-*.tar.gz
  mapfile -t ds_requires < <("$PYTHON" - "$DIR" <<'EOF'
import re, sys, zipfile
from pathlib import Path
wheel = sorted(Path(sys.argv[1]).glob("deepspeed-*.whl"))[-1]
with zipfile.ZipFile(wheel) as zf:
    meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
    for line in zf.read(meta).decode().splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            req = line.split(":", 1)[1].strip()
            if re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0].lower() != "torch":
                print(req.split(";")[0].strip())
EOF
  )
  download ${ds_requires[@]+"${ds_requires[@]}"}
  packages+=(deepspeed)
else
  echo "gpu_wheels: $PYTHON cannot import torch, so DeepSpeed (built from source) is left out" >&2
fi

# 2. The rest, with their dependencies, as binary wheels for the target.
download av omegaconf pytest
printf '%s\n' "# installed by run_scripts/gpu_check.sh --wheels $DIR (Python $PYVER)" "${packages[@]}" > "$DIR/requirements.txt"
if compgen -G "$DIR/torch-*.whl" >/dev/null; then
  die "a torch wheel ended up in $DIR: remove it (the node's own torch must stay)"
fi
echo "gpu_wheels: $(find "$DIR" -name '*.whl' | wc -l) wheels in $DIR for Python $PYVER: ${packages[*]}" >&2
