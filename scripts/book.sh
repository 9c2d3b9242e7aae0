#!/usr/bin/env bash
# The README's book command: set up the venv if needed, then build the book (fails if any notebook raises).
set -euo pipefail
source "$(dirname "$0")/_env.sh"
export SATNB_PROFILE=${SATNB_PROFILE:-quick}
export SATNB_PROGRESS=${SATNB_PROGRESS:-0}  # no progress bars frozen into the built pages (check_book.py fails on them)
echo "[book] profile=$SATNB_PROFILE data=${SATNB_DATA:-<resolved by satnb>}"
"${SATNB_VENV:-.venv}"/bin/jupyter-book build book/ --all "$@" || {
  echo "[book] FAILED: see the log above and _build/html/reports/ for the failing notebook"; exit 1; }
echo "[book] built _build/html/index.html in $(( $(date +%s) - start )) s"
