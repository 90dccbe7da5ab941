#!/usr/bin/env bash
# Kept for the commands that cite it: the benchmark is benchmarks/shown_floor.py, with the same arguments
# (CHECKPOINT DATA_BIN OUT_DIR [fairseq-generate options...]) and the same FRACTIONS and DECODES variables.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
exec "${PYTHON:-$here/.venv/bin/python}" "$here/benchmarks/shown_floor.py" "$@"
