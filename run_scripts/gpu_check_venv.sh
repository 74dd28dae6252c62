# Sourced by run_scripts/gpu_check.sh: a venv on top of the node's Python and the prepared wheels.
# Nothing here reaches the network (pip --no-index) or replaces the node's torch.

# Packages installed when the wheels folder has no requirements.txt (gpu_wheels.sh writes one).
GPU_CHECK_PACKAGES=(av omegaconf pytest deepspeed)

# make_venv PY DIR: a venv whose interpreter also sees every site-packages folder of PY, so the
# node's torch & co. are used as they are. --system-site-packages covers a system interpreter; the
# .pth file covers one that is itself a venv or conda env (its packages are not "system" ones).
# --without-pip: the node's own pip (found through those folders) installs, or ensurepip's.
make_venv() {
  local py="$1" dir="$2" site
  "$py" -m venv --clear --system-site-packages --without-pip "$dir" ||
    die "$py -m venv failed (is the venv module installed?)"
  site="$("$dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  "$py" -c 'import sys; print("\n".join(p for p in sys.path if p.endswith(("site-packages", "dist-packages"))))' \
    > "$site/_gpu_check_node_site.pth"
  if ! "$dir/bin/python" -m pip --version >/dev/null 2>&1; then
    "$dir/bin/python" -m ensurepip --default-pip >/dev/null 2>&1 || die "no pip for $dir (neither the node's nor ensurepip)"
  fi
}

# install_wheels VENV_PY WHEELS NOTES_JSON: install each package on its own (one that fails does
# not stop the others), with the node's torch, transformers, peft and numpy pinned by constraint.
install_wheels() {
  local py="$1" wheels="$2" notes="$3" pkg out dir packages=()
  dir="$(dirname "$notes")"
  "$py" - > "$dir/node_constraints.txt" <<'EOF'
import importlib.metadata as md
for name in ("torch", "transformers", "peft", "numpy", "safetensors"):
    try:
        print(f"{name}=={md.version(name)}")
    except md.PackageNotFoundError:
        pass
EOF
  if [ -f "$wheels/requirements.txt" ]; then
    mapfile -t packages < <(grep -v '^[[:space:]]*\(#\|$\)' "$wheels/requirements.txt")
  else
    packages=("${GPU_CHECK_PACKAGES[@]}")
  fi
  : > "$dir/installed.txt"; : > "$dir/failed.tsv"; : > "$dir/pip.log"
  for pkg in "${packages[@]}"; do
    if out="$("$py" -m pip install --disable-pip-version-check --no-index --find-links "$wheels" \
        -c "$dir/node_constraints.txt" "$pkg" 2>&1)"; then
      echo "$pkg" >> "$dir/installed.txt"
    else
      printf '%s\t%s\n' "$pkg" "$(grep -m1 '^ERROR' <<<"$out" || tail -n1 <<<"$out")" >> "$dir/failed.tsv"
      echo "gpu_check: $pkg did not install from $wheels; the parts that need it are skipped" >&2
    fi
    printf '%s\n' "$out" >> "$dir/pip.log"
  done
  "$py" - "$wheels" "$dir" > "$notes" <<'EOF'
import json, sys
from pathlib import Path
wheels, folder = sys.argv[1], Path(sys.argv[2])
failed = dict(line.split("\t", 1) for line in (folder / "failed.tsv").read_text().splitlines() if line)
print(json.dumps({"wheels": wheels, "installed": (folder / "installed.txt").read_text().split(),
                  "failed": failed, "pinned": (folder / "node_constraints.txt").read_text().split()}))
EOF
}
