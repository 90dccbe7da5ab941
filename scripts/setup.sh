#!/usr/bin/env bash
# Set up a fresh machine: a virtual environment in .venv with the CPU build of torch, fairseq
# (fairseq-fixed on Python >= 3.11, built from source: about 6 minutes the first time, then pip's
# wheel cache makes it seconds) and this plugin in editable mode. Idempotent.
# Env: PYTHON (interpreter to build the venv from, default python3), VENV (default .venv),
#      TORCH_SPEC (default torch==2.13.0, the CPU wheel; set e.g. TORCH_SPEC=torch on a GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "[setup] installing $TORCH_SPEC"
  "${PIP[@]}" "$TORCH_SPEC"
fi
if ! "$VENV/bin/python" -c "import fairseq, diffuseq_fairseq, pytest" 2>/dev/null \
   || [ setup.py -nt "$VENV/.diffuseq-installed" ]; then
  echo "[setup] installing fairseq and diffuseq-fairseq (first build of fairseq takes minutes)"
  "${PIP[@]}" -e ".[test]"
  touch "$VENV/.diffuseq-installed"
fi
echo "[setup] ready: $("$VENV/bin/python" -c 'import torch, fairseq; print("torch", torch.__version__, "fairseq", fairseq.__version__)' 2>/dev/null)"
