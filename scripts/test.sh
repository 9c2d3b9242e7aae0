#!/usr/bin/env bash
# The README's test command: set up the venv if needed, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
start=$(date +%s)
export SATNB_DATA=${SATNB_DATA:-$(cd .. && pwd)/shared/data}
[ -d "$SATNB_DATA" ] || unset SATNB_DATA
.venv/bin/python -m pytest "$@"
echo "[test] took $(( $(date +%s) - start )) s"
