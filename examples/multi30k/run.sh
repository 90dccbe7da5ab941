#!/usr/bin/env bash
# Multi30k de->en, real data, CPU: prepare (joint BPE 8000, fairseq-preprocess --joined-dictionary),
# train DiffuSeq and fairseq's Levenshtein Transformer for the same wall-clock budget at the same
# time, log validation loss and BLEU along the way, decode test_2016 (MBR for DiffuSeq), score
# both with the paper's metrics, and write the side-by-side table, compare.json and plots.
# Env: BUDGET_MINUTES (default 35), TEST_SENTENCES (default 200; 0 = all 1,000), OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh
bash scripts/prepare_multi30k.sh
.venv/bin/python scripts/compare_levt.py --data-bin data-bin/multi30k_de_en --source-lang de --target-lang en \
  --budget-minutes "${BUDGET_MINUTES:-35}" --test-sentences "${TEST_SENTENCES:-200}" \
  --mbr-sizes 1,3,10 --step-counts 5,10,20 --out "${OUT:-runs/compare_multi30k}"
