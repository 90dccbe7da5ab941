#!/usr/bin/env bash
# Sequence-level knowledge distillation (Kim & Rush, 2016), the usual training data of
# non-autoregressive models: train an autoregressive Transformer teacher on DATA_BIN for a
# wall-clock budget, translate the training set with beam search, and write a data-bin whose
# training targets are the teacher's translations. Valid and test sets and the dictionaries are
# DATA_BIN's, so models trained on the result are scored against the real references.
#
#   DATA_BIN=data-bin/multi30k_de_en SRC=de TGT=en DEST=data-bin/multi30k_de_en_kd \
#       TEACHER_MINUTES=35 THREADS=2 BEAM=4 bash scripts/distill.sh
#
# The teacher's checkpoint, logs and test BLEU go to WORK (default: DEST/teacher). TEACHER_ARGS and
# GEN_ARGS add fairseq-train and fairseq-generate options (e.g. GEN_ARGS="--max-len-b 50").
# Every training pair gets exactly one translation; a missing one is an error, not a dropped pair.
# Idempotent: does nothing if DEST already holds a distilled training set, unless FORCE=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
: "${DATA_BIN:?set DATA_BIN}" "${SRC:?set SRC}" "${TGT:?set TGT}" "${DEST:?set DEST}"
TEACHER_MINUTES="${TEACHER_MINUTES:-35}"
BEAM="${BEAM:-4}"
WORK="${WORK:-$DEST/teacher}"
export OMP_NUM_THREADS="${THREADS:-2}"
BIN="$ROOT/.venv/bin"
[[ -x "$BIN/fairseq-train" ]] || BIN="$(dirname "$(command -v fairseq-train)")"
PYTHON="$BIN/python"
[[ -x "$PYTHON" ]] || PYTHON=python3
# --user-dir only for its checkpoint-loading allowlist (torch >= 2.6 loads weights_only).
USER_DIR="$ROOT/diffuseq_fairseq"
for f in dict.$SRC.txt dict.$TGT.txt train.$SRC-$TGT.$SRC.idx valid.$SRC-$TGT.$SRC.idx test.$SRC-$TGT.$SRC.idx; do
    [[ -f "$DATA_BIN/$f" ]] || { echo "distill: missing $DATA_BIN/$f" >&2; exit 1; }
done
if [[ -f "$DEST/train.$SRC-$TGT.$TGT.bin" && "${FORCE:-0}" != 1 ]]; then
    echo "$DEST already distilled (set FORCE=1 to redo)"
    exit 0
fi
mkdir -p "$WORK"

echo "[distill] 1/4 training the teacher for $TEACHER_MINUTES minutes (log: $WORK/train.log)"
# The recipe teacher_cpu (diffuseq_fairseq/experiments/recipes.py); checkpoint_last is the teacher.
recipe() {  # fairseq arguments of the teacher's recipe, one a line: --train or --decode
    "$PYTHON" -m diffuseq_fairseq.experiments.recipes teacher_cpu "$1"
}
TEACHER_TEXT=$(recipe --train)
mapfile -t TEACHER_FLAGS <<<"$TEACHER_TEXT"
DECODE_TEXT=$(recipe --decode)
mapfile -t DECODE_FLAGS <<<"$DECODE_TEXT"
"$BIN/fairseq-train" "$DATA_BIN" --source-lang "$SRC" --target-lang "$TGT" "${TEACHER_FLAGS[@]}" \
    --stop-time-hours "$(python3 -c "print($TEACHER_MINUTES / 60)")" \
    --save-dir "$WORK/ckpt" --no-epoch-checkpoints --num-workers 0 \
    --no-progress-bar --log-interval 100 ${TEACHER_ARGS:-} > "$WORK/train.log" 2>&1
TEACHER="$WORK/ckpt/checkpoint_last.pt"

generate() {  # subset, output file
    "$BIN/fairseq-generate" "$DATA_BIN" --user-dir "$USER_DIR" --source-lang "$SRC" --target-lang "$TGT" \
        --path "$TEACHER" --gen-subset "$1" "${DECODE_FLAGS[@]}" --beam "$BEAM" --num-workers 0 ${GEN_ARGS:-} \
        "${@:3}" > "$2" 2> "$2.log"
}
echo "[distill] 2/4 teacher on the test set (beam $BEAM)"
generate test "$WORK/gen_test.txt" --remove-bpe
tail -n 1 "$WORK/gen_test.txt" | tee "$WORK/test_bleu.txt"

echo "[distill] 3/4 translating the training set (beam $BEAM; output $WORK/gen_train.txt)"
generate train "$WORK/gen_train.txt"

echo "[distill] 4/4 binarizing the distilled training set into $DEST"
"$BIN/python" -m diffuseq_fairseq.dataprep.distill "$WORK/gen_train.txt" --data-bin "$DATA_BIN" \
    --source-lang "$SRC" --target-lang "$TGT" --destdir "$DEST"
"$BIN/fairseq-preprocess" --source-lang "$SRC" --target-lang "$TGT" --trainpref "$DEST/text/train" \
    --srcdict "$DATA_BIN/dict.$SRC.txt" --tgtdict "$DATA_BIN/dict.$TGT.txt" --destdir "$DEST" \
    --workers 2 > "$WORK/preprocess.log" 2>&1
echo "[distill] done: $DEST (training targets from the teacher; valid, test and dictionaries from $DATA_BIN)"
