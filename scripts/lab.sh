#!/usr/bin/env bash
# Open the notebooks in JupyterLab: set up the venv if needed (it has JupyterLab and the kernel "Python (satnb)"),
# then start the venv's JupyterLab in notebooks/. Extra arguments go to `jupyter lab`, e.g. --port 8899 --no-browser.
# Either kernel works: the notebooks' own "python3" resolves to the venv's python here, as does "Python (satnb)".
set -euo pipefail
source "$(dirname "$0")/_env.sh"
export SATNB_PROFILE=${SATNB_PROFILE:-quick}
echo "[lab] profile=$SATNB_PROFILE data=${SATNB_DATA:-<resolved by satnb>}"
root=(); [ "$(id -u)" != 0 ] || root=(--allow-root)   # containers often run as root
exec "${SATNB_VENV:-.venv}"/bin/jupyter lab notebooks/ "${root[@]}" "$@"
