# Sourced by the run scripts: activates a virtual environment with the project installed.
# VENV=path reuses an existing environment; the default is .venv in the repo root, created and
# installed on first use (and re-installed when setup.py or requirements.txt change).
# SMS_EXTRAS: the setup.py extras the caller needs (default "dev"; test.sh adds "app", app.sh
# asks for "app"); extras installed before stay, so switching scripts does not reinstall.
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV" >&2
  python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
stamp="$VENV/.sms-installed"
want="$(cat setup.py requirements.txt constraints/cpu.txt | sha256sum | cut -c1-16)"
have_hash="" have_extras=""
if [ -f "$stamp" ]; then read -r have_hash have_extras < "$stamp" || true; fi
[ "$have_hash" = "$want" ] || have_extras=""
extras="$have_extras"
IFS=',' read -r -a wanted <<< "${SMS_EXTRAS:-dev}"
for extra in "${wanted[@]}"; do
  case ",$extras," in *",$extra,"*) ;; *) extras="${extras:+$extras,}$extra" ;; esac
done
if [ "$have_hash" != "$want" ] || [ "$extras" != "$have_extras" ]; then
  constraint=()
  # Without a GPU driver, pin the CPU build of torch so no CUDA build is downloaded.
  if ! command -v nvidia-smi >/dev/null 2>&1; then constraint=(-c constraints/cpu.txt); fi
  echo "setup: installing the project into $VENV (extras: $extras)" >&2
  python -m pip install --quiet --disable-pip-version-check "${constraint[@]}" -e ".[$extras]" >&2
  echo "$want $extras" > "$stamp"
fi
