#!/usr/bin/env bash
# Runs the test suite. Sets itself up on a fresh machine: creates .venv and installs the project
# with its dev and app extras (CPU torch via constraints/cpu.txt) unless VENV points at a ready
# environment, and Chromium for the app's browser test when it is missing (as root, from Debian).
# Extra arguments go to pytest, e.g. `bash run_scripts/test.sh -k metrics` or `-m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
SMS_EXTRAS="${SMS_EXTRAS:-dev,app}"
source run_scripts/setup_env.sh
source run_scripts/setup_browser.sh

set +e
python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests -- treating that as a failure" >&2
  exit 1
fi
exit "$rc"
