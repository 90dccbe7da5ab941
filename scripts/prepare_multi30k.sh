#!/usr/bin/env bash
# Prepare Multi30k German->English (already lowercased and Moses-tokenized) as a fairseq data-bin
# with 8000 joint BPE merges: train, valid (= val), test (= test_2016_flickr).
#
#   DATA=../shared/data/multi30k DEST=data-bin/multi30k_de_en WORKERS=4 FORCE=0 \
#       bash scripts/prepare_multi30k.sh
#
# Relative DATA/DEST paths are resolved from the repository root, whatever the current directory.
# Idempotent: does nothing if DEST already holds dict.de.txt, unless FORCE=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DATA="${DATA:-../shared/data/multi30k}"
DEST="${DEST:-data-bin/multi30k_de_en}"
WORKERS="${WORKERS:-4}"
BPE_MERGES="${BPE_MERGES:-8000}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

if [[ -f "$DEST/dict.de.txt" && "${FORCE:-0}" != 1 ]]; then
    echo "$DEST already prepared (set FORCE=1 to rebuild)"
    exit 0
fi
for f in train.de train.en val.de val.en test_2016_flickr.de test_2016_flickr.en; do
    [[ -f "$DATA/$f" ]] || { echo "missing $DATA/$f" >&2; exit 1; }
done

# The prepare CLI reads PREFIX.LANG, so the original file names work as prefixes directly.
"$PYTHON" -m diffuseq_fairseq.dataprep.prepare \
    --trainpref "$DATA/train" --validpref "$DATA/val" --testpref "$DATA/test_2016_flickr" \
    --source-lang de --target-lang en \
    --tokenize none --bpe-merges "$BPE_MERGES" --workers "$WORKERS" \
    --destdir "$DEST" --force
