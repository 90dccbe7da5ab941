#!/usr/bin/env bash
# QQP paraphrase in DiffuSeq's own jsonl format (only the 2,048-pair validation split is available
# offline: enough to exercise the jsonl path, diversity metrics and MBR, too small for paper quality).
# The split is cut into train/valid/test files first, then prepared, trained and compared with LevT.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh
SRC=${QQP:-../shared/data/qqp/valid.jsonl}
OUT=${OUT:-runs/qqp}
mkdir -p "$OUT/jsonl"
head -n 1648 "$SRC" > "$OUT/jsonl/train.jsonl"
sed -n '1649,1848p' "$SRC" > "$OUT/jsonl/valid.jsonl"
sed -n '1849,2048p' "$SRC" > "$OUT/jsonl/test.jsonl"
.venv/bin/python scripts/compare_levt.py --jsonl-dir "$OUT/jsonl" --tokenize moses --bpe-merges 2000 \
  --max-update "${UPDATES:-1000}" --mbr-sizes 1,3 --step-counts 5,20 --out "$OUT"
