#!/usr/bin/env bash
# Create or reuse .venv, install satnb with the book and dev extras and register its Jupyter kernel;
# prints how long it took.
# torch and torchvision are installed together from the package index in a fresh venv: a CPU-only
# torch with an index torchvision fails at import ("operator torchvision::nms does not exist").
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SATNB_VENV:-.venv}
PY=${PYTHON:-python3}
start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.satnb-installed"
want=$(cat pyproject.toml | sha1sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing torch + torchvision together, then satnb[book,dev,cluster] (the first time downloads ~5 GB)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q torch torchvision
  "$VENV/bin/python" -m pip install -q -e ".[book,dev,cluster]"
  "$VENV/bin/python" -c "import torch, torchvision, faiss; print('[setup] torch', torch.__version__, 'torchvision', torchvision.__version__)"
  echo "$want" > "$stamp"
else
  echo "[setup] $VENV is up to date"
fi
# The project's kernel, inside the venv (JupyterLab lists it as "Python (satnb)"); the notebooks keep the
# kernelspec python3, which the venv's Jupyter also resolves to the venv's python. A file test keeps it fast.
kernel="$VENV/share/jupyter/kernels/satnb/kernel.json"
venv_python="$(cd "$VENV" && pwd -P)/bin/python"   # physical path: a symlinked .venv still gets a lasting kernel
if [ ! -f "$kernel" ] || ! grep -qF "\"$venv_python\"" "$kernel"; then
  "$venv_python" -m ipykernel install --sys-prefix --name satnb --display-name "Python (satnb)" >/dev/null
  echo "[setup] registered the kernel 'satnb' (Python (satnb)) in $VENV"
fi
# Notebooks are committed without outputs: git's clean filter strips what JupyterLab's autosave writes into them
# (.gitattributes names the filter; CI's test_notebook_committed_without_outputs checks the result).
if git rev-parse --is-inside-work-tree >/dev/null 2>&1 && \
   [ "$(git config --get filter.satnb-strip-outputs.clean)" != "python3 scripts/strip_outputs.py" ]; then
  git config filter.satnb-strip-outputs.clean "python3 scripts/strip_outputs.py"
  git config filter.satnb-strip-outputs.smudge cat
  echo "[setup] installed the git filter that strips notebook outputs on commit"
fi
echo "[setup] took $(( $(date +%s) - start )) s"
