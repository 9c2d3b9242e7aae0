# Sourced by scripts/test.sh and scripts/book.sh: go to the repo root, set up the venv, find the offline data.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export SATNB_DATA=${SATNB_DATA:-$(cd .. && pwd)/shared/data}
[ -e "$SATNB_DATA" ] || unset SATNB_DATA
start=$(date +%s)
