#!/usr/bin/env bash
# QQP paraphrase in DiffuSeq's own jsonl format. Only the 2,048-pair validation split is available
# offline: enough to exercise the jsonl path, diversity metrics and MBR, too small for paper quality.
# diffuseq-prepare --split-valid cuts that one file in file order (train: the first 1,648 pairs,
# valid: the next 200, test: the last 200) into a data-bin, once; then DiffuSeq and LevT are
# trained and compared on it. Extra arguments go to scripts/compare_levt.py.
#
#   DATA=../shared/data/qqp DEST=data-bin/qqp OUT=runs/qqp UPDATES=1000 bash examples/qqp/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh
DATA=${DATA:-../shared/data/qqp}
DEST=${DEST:-data-bin/qqp}
OUT=${OUT:-runs/qqp}
if [[ -f "$DEST/dict.src.txt" ]]; then
  echo "$DEST already prepared"
else
  .venv/bin/diffuseq-prepare --jsonl-dir "$DATA" --split-valid 200,200 --tokenize moses \
    --bpe-merges 2000 --destdir "$DEST"
fi
.venv/bin/python scripts/compare_levt.py --data-bin "$DEST" \
  --max-update "${UPDATES:-1000}" --mbr-sizes 1,3 --step-counts 5,20 --out "$OUT" "$@"
