#!/usr/bin/env bash
# Runs the test suite. Sets itself up on a fresh machine: creates .venv and installs the project
# (CPU torch via constraints/cpu.txt) unless VENV points at a ready environment.
# Extra arguments go to pytest, e.g. `bash run_scripts/test.sh -k metrics` or `-m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
source run_scripts/setup_env.sh

set +e
python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests -- treating that as a failure" >&2
  exit 1
fi
exit "$rc"
