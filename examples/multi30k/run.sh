#!/usr/bin/env bash
# Multi30k de->en, real data, CPU: prepare (joint BPE 8000, fairseq-preprocess --joined-dictionary),
# train DiffuSeq and fairseq's Levenshtein Transformer for the same wall-clock budget at the same
# time, log validation loss and BLEU along the way, decode test_2016 (MBR for DiffuSeq), score
# both with the paper's metrics, and write the side-by-side table, compare.json and plots.
# Env: BUDGET_MINUTES (default 35), TEST_SENTENCES (default 200; 0 = all 1,000), OUT,
# DISTILL=1 to train both on an autoregressive teacher's translations (scripts/distill.sh,
# TEACHER_MINUTES, default 35) instead of the references; they are scored on the references.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh
bash scripts/prepare_multi30k.sh
DATA_BIN=data-bin/multi30k_de_en
if [[ "${DISTILL:-0}" == 1 ]]; then
    DATA_BIN=$DATA_BIN SRC=de TGT=en DEST=data-bin/multi30k_de_en_kd bash scripts/distill.sh
    DATA_BIN=data-bin/multi30k_de_en_kd
fi
.venv/bin/python scripts/compare_levt.py --data-bin "$DATA_BIN" --source-lang de --target-lang en \
  --budget-minutes "${BUDGET_MINUTES:-35}" --test-sentences "${TEST_SENTENCES:-200}" \
  --mbr-sizes 1,3,10 --step-counts 5,10,20 --out "${OUT:-runs/compare_multi30k}"
