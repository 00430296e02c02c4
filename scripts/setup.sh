#!/usr/bin/env bash
# Set up a development environment: a virtualenv in .venv with Watchkeeper installed
# (editable) and its development tools. Idempotent; needs only python3 (3.11+) and PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
# The browser tests (tests/browser) drive Debian's chromium through Playwright: never
# Playwright's own browser download. Installed with apt when missing (as root, or with
# sudo); where neither can, the browser tests fail under scripts/test.sh and say why.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else SUDO="none"; fi
  if [ "$SUDO" != "none" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing chromium (Debian's package) for the browser tests"
    $SUDO apt-get update -qq >/dev/null && \
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null || \
      echo "setup: could not install chromium; the browser tests will fail" >&2
  else
    echo "setup: no chromium and no way to install it (apt-get as root); the browser tests will fail" >&2
  fi
fi
# promtool checks docs/prometheus (tests/unit/test_observability_docs.py): taken from
# Debian's prometheus package into .cache/prometheus, unpacked, never installed (no server
# is set up or started).
if ! command -v promtool >/dev/null 2>&1 && [ ! -x .cache/prometheus/usr/bin/promtool ]; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: fetching promtool (Debian's prometheus package, unpacked into .cache)"
    mkdir -p .cache/prometheus
    (cd .cache && { apt-get download prometheus >/dev/null 2>&1 || \
       { [ "$(id -u)" -eq 0 ] && apt-get update -qq >/dev/null && \
         apt-get download prometheus >/dev/null 2>&1; }; } && \
       dpkg-deb -x prometheus_*.deb prometheus && rm -f prometheus_*.deb) || \
      echo "setup: could not fetch promtool; its checks will fail under scripts/test.sh" >&2
  fi
fi
echo "setup: .venv ready ($(.venv/bin/python --version), watchkeeper $(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("watchkeeper"))'))"
