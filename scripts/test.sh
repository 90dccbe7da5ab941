#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the default test suite (slow real-data runs excluded).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow` for the slow suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "${@:--q}"
