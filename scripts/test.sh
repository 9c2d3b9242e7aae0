#!/usr/bin/env bash
# The README's test command: set up the venv if needed, then run the test suite.
set -euo pipefail
source "$(dirname "$0")/_env.sh"
"${SATNB_VENV:-.venv}"/bin/python -m pytest "$@"
echo "[test] took $(( $(date +%s) - start )) s"
