# Sourced by the run scripts: activates a virtual environment with the project installed.
# VENV=path reuses an existing environment; the default is .venv in the repo root, created and
# installed on first use (and re-installed when setup.py or requirements.txt change).
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV" >&2
  python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
stamp="$VENV/.sms-installed"
want="$(cat setup.py requirements.txt constraints/cpu.txt | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  constraint=()
  # Without a GPU driver, pin the CPU build of torch so no CUDA build is downloaded.
  if ! command -v nvidia-smi >/dev/null 2>&1; then constraint=(-c constraints/cpu.txt); fi
  echo "setup: installing the project into $VENV" >&2
  python -m pip install --quiet --disable-pip-version-check "${constraint[@]}" -e ".[dev]" >&2
  echo "$want" > "$stamp"
fi
