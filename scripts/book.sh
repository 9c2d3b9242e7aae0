#!/usr/bin/env bash
# The README's book command: set up the venv if needed, then build the book (fails if any notebook raises).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
start=$(date +%s)
export SATNB_DATA=${SATNB_DATA:-$(cd .. && pwd)/shared/data}
[ -d "$SATNB_DATA" ] || unset SATNB_DATA
export SATNB_PROFILE=${SATNB_PROFILE:-quick}
echo "[book] profile=$SATNB_PROFILE data=${SATNB_DATA:-<resolved by satnb>}"
.venv/bin/jupyter-book build book/ --all "$@" || {
  echo "[book] FAILED: see the log above and _build/html/reports/ for the failing notebook"; exit 1; }
echo "[book] built _build/html/index.html in $(( $(date +%s) - start )) s"
