# Sourced by test.sh: Chromium for the app's browser test (tests/test_app_browser.py), from
# Debian (~17 s, 440 MB) when it is missing and this is root on a Debian/Ubuntu machine (CI);
# otherwise one line says how to get it, and that test skips with the reason.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing chromium (Debian) for the browser test" >&2
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } >/dev/null 2>&1; then
      echo "setup: chromium could not be installed; the browser test will skip" >&2
    fi
  else
    echo "setup: no chromium; the browser test will skip (apt-get install --no-install-recommends chromium)" >&2
  fi
fi
