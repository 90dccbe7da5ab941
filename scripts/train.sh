#!/usr/bin/env bash
# Train DiffuSeq with a named recipe (diffuseq_fairseq/experiments/recipes.py), as the diffusion peers ship
# per-dataset training scripts:
#
#   bash scripts/train.sh RECIPE DATA_BIN SAVE_DIR [extra fairseq-train args]
#   bash scripts/train.sh cpu data-bin/multi30k_de_en runs/cpu_recipe --source-lang de --target-lang en
#
# The recipe gives the task, model, criterion, optimiser, validation and budget options (and --cpu for a
# CPU recipe); extra arguments come after them, so they override them (fairseq keeps the last value of an
# option), e.g. --max-update 500 or --seed 2. `.venv/bin/python -m diffuseq_fairseq.experiments.recipes --list`
# lists the recipes; `... recipes RECIPE --decode` prints the recipe's fairseq-generate options.
# Env: PYTHON (default .venv/bin/python, else python3), OMP_NUM_THREADS as usual.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: bash scripts/train.sh RECIPE DATA_BIN SAVE_DIR [extra fairseq-train args]" >&2
  exit 2
fi
recipe=$1 data_bin=$2 save_dir=$3
shift 3
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
compgen -G "$data_bin/dict.*.txt" >/dev/null \
  || { echo "train.sh: $data_bin holds no dict.LANG.txt: not a fairseq data-bin (see fairseq-preprocess)" >&2; exit 1; }
# One argument per line (an argument may hold spaces, e.g. --eval-bleu-args' JSON).
flags_text=$("$PYTHON" -m diffuseq_fairseq.experiments.recipes "$recipe" --train)
mapfile -t flags <<<"$flags_text"
mkdir -p "$save_dir"
exec "$PYTHON" -m fairseq_cli.train "$data_bin" --user-dir "$ROOT/diffuseq_fairseq" "${flags[@]}" \
  --save-dir "$save_dir" --no-epoch-checkpoints --no-progress-bar "$@"
