#!/usr/bin/env bash
# The main job on the embedded default: set up, generate the toy paraphrase task (no download),
# binarize it, train a CPU-sized DiffuSeq, decode the test set with MBR and score it.
# The task's targets are the passive voice of the source (--paraphrases 1): learnable in minutes.
# PARAPHRASES=4 draws each target from four templates, so samples differ, but needs far longer training.
# Model, training and decoding: the recipe toy_3x128_length (diffuseq_fairseq/experiments/recipes.py), diffuseq_tiny
# resized to 3 layers, d=128, latent 64, with the options that won the toy-task ablation and a length predictor
# (trained on canvases of exactly the target's length: cheaper steps); RECIPE=toy_3x128 writes the length as padding.
# Env: OUT (default runs/quickstart), UPDATES (default 800), THREADS (default 2), PARAPHRASES (default 1),
# RECIPE (default toy_3x128_length).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${OUT:-runs/quickstart}
UPDATES=${UPDATES:-800}
export OMP_NUM_THREADS=${THREADS:-2}
BIN=.venv/bin
USER_DIR=diffuseq_fairseq
rm -rf "$OUT/checkpoints"  # a fresh run each time (fairseq would resume from checkpoint_last.pt)
mkdir -p "$OUT"
echo "[quickstart] 1/5 writing the toy paraphrase task to $OUT/raw"
$BIN/python -m diffuseq_fairseq.dataprep.toy_task "$OUT/raw" --n-train 10000 --n-valid 100 --n-test 200 \
  --paraphrases "${PARAPHRASES:-1}"
echo "[quickstart] 2/5 fairseq-preprocess --joined-dictionary"
rm -rf "$OUT/data-bin"
$BIN/fairseq-preprocess --source-lang src --target-lang tgt --trainpref "$OUT/raw/train" \
  --validpref "$OUT/raw/valid" --testpref "$OUT/raw/test" --joined-dictionary \
  --destdir "$OUT/data-bin" --workers 2 > "$OUT/preprocess.log" 2>&1
echo "[quickstart] 3/5 fairseq-train --task diffuseq ($UPDATES updates; log: $OUT/train.log)"
RECIPE=${RECIPE:-toy_3x128_length}
bash scripts/train.sh "$RECIPE" "$OUT/data-bin" "$OUT/checkpoints" --max-update "$UPDATES" --disable-validation \
  --save-interval-updates 400 --keep-interval-updates 1 --num-workers 0 --log-interval 100 > "$OUT/train.log" 2>&1
grep -E "train_inner" "$OUT/train.log" | tail -n 1 || true
DECODE_TEXT=$($BIN/python -m diffuseq_fairseq.experiments.recipes "$RECIPE" --decode)  # one argument a line
mapfile -t DECODE <<<"$DECODE_TEXT"
echo "[quickstart] 4/5 fairseq-generate ${DECODE[*]}: 20 DPM-Solver++ steps, a candidate stops once its words settle, MBR"
$BIN/fairseq-generate "$OUT/data-bin" --user-dir "$USER_DIR" --path "$OUT/checkpoints/checkpoint_last.pt" \
  --gen-subset test --batch-size 100 "${DECODE[@]}" --nbest 5 > "$OUT/generate.txt" 2> "$OUT/generate.log"
awk '/^(S|H)-/ && ++shown <= 6' "$OUT/generate.txt"  # awk reads to the end: no SIGPIPE under pipefail
tail -n 1 "$OUT/generate.log"
echo "[quickstart] 5/5 scores (exact match counts any valid paraphrase; copying the source is the baseline)"
$BIN/python -m diffuseq_fairseq.dataprep.toy_score "$OUT/generate.txt"
$BIN/diffuseq-eval "$OUT/generate.txt"
