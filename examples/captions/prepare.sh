#!/usr/bin/env bash
# Prepare the caption-paraphrase task (Multi30k task 2: five English captions per image) as a
# fairseq data-bin with 8000 joint BPE merges: train = the five cyclic pairs of every image
# (145,000 pairs), valid/test = caption 3 -> caption 1, with the four references of every valid/test
# sentence (captions 1, 2, 4, 5) and its caption-3 source as plain text in DEST/refs/.
#
#   DATA=../shared/data/multi30k_captions DEST=data-bin/captions WORKERS=4 FORCE=0 \
#       bash examples/captions/prepare.sh
#
# Relative DATA/DEST paths are resolved from the repository root, whatever the current directory.
# Idempotent: does nothing if DEST already holds dict.src.txt, unless FORCE=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
DATA="${DATA:-../shared/data/multi30k_captions}"
DEST="${DEST:-data-bin/captions}"
WORKERS="${WORKERS:-4}"
BPE_MERGES="${BPE_MERGES:-8000}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

if [[ -f "$DEST/dict.src.txt" && "${FORCE:-0}" != 1 ]]; then
    echo "$DEST already prepared (set FORCE=1 to rebuild)"
    exit 0
fi

# The captions are already lowercased and Moses-tokenized; diffuseq-prepare checks every file.
"$PYTHON" -m diffuseq_fairseq.dataprep.prepare --captions-dir "$DATA" \
    --tokenize none --bpe-merges "$BPE_MERGES" --workers "$WORKERS" --destdir "$DEST" --force
