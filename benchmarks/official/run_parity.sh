#!/usr/bin/env bash
# The plugin against the official DiffuSeq code, on this CPU, in one command (about 6 minutes once
# the official venv exists; building it takes 4 more):
#   bash benchmarks/official/run_parity.sh [OUT]        (default OUT: runs/official_parity)
# 1. builds the official venv (scripts/official_env.sh) and a toy jsonl task (toy_data.py);
# 2. for DiffuSeq v1 (whitespace vocabulary), v2 (--learned_mean_embed, --denoise_rate 0.5) and v1 with a WordPiece
#    vocabulary (--vocab bert), and v1 without projections (hidden_dim = hidden size) and with
#    hidden_t_dim != hidden_dim: trains a small model with the official code (seq_len 128, T 2000,
#    6 steps), converts it with diffuseq-convert-official, dumps the official x̂0 and loss terms
#    for given noise and prints the plugin's largest differences (compare_dump.py, tolerance 1e-5),
#    then one training step's gradients on a padded batch (dump_gradients.py, compare_gradients.py,
#    relative tolerance 1e-4; not for v2, whose loss has a term the plugin does not); for v1 also that step in train
#    mode under 16 dropout draws a side at rate 0.3 (--dropout, --masks): the gap of the mean gradients against
#    dropout noise (r, about 1 where dropout acts alike; limit 1.5);
# 3. decodes the WordPiece run with the official sampler for 3 seeds and compares diffuseq-eval with
#    the official scripts/eval_seq2seq.py on those files and on the edge cases of compare_metrics.py.
# Env: STEPS (official training steps, default 6), DECODE_STEPS (official sampler steps, default 100).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/official_parity}
STEPS=${STEPS:-6}
DECODE_STEPS=${DECODE_STEPS:-100}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OFFICIAL=.official-venv/bin/python
PLUGIN=.venv/bin/python
HERE=benchmarks/official
bash scripts/official_env.sh
"$PLUGIN" "$HERE/toy_data.py" "$OUT/data"
status=0
for run in v1 v2 bert sizes; do
  version=v1; flags=(--vocab "$OUT/data/vocab.txt")
  [ "$run" = v2 ] && version=v2 && flags+=(--learned-mean-embed --denoise-rate 0.5)
  [ "$run" = bert ] && flags=(--vocab bert --bert-vocab "$OUT/data/wordpiece/vocab.txt")
  [ "$run" = sizes ] && flags+=(--latent 64 --hidden 64 --time-dim 16)
  echo "== $run: official training, conversion, dump, comparison"
  "$OFFICIAL" "$HERE/train_tiny.py" --version "$version" --data-dir "$OUT/data" "${flags[@]}" --out "$OUT/$run" \
    --steps "$STEPS" --seq-len 128 --diffusion-steps 2000 > "$OUT/$run.train.log" 2>&1
  checkpoint=$(ls "$OUT/$run"/ema_*.pt | tail -1)
  "$PLUGIN" -m diffuseq_fairseq.convert_official "$checkpoint" "$OUT/$run.converted"
  "$OFFICIAL" "$HERE/dump_tensors.py" --version "$version" --checkpoint "$checkpoint" --out "$OUT/$run.dump.pt" \
    > "$OUT/$run.dump.log" 2>&1
  "$PLUGIN" "$HERE/compare_dump.py" --dump "$OUT/$run.dump.pt" --checkpoint "$OUT/$run.converted/checkpoint.pt" \
    2> "$OUT/$run.compare.log" || status=1
  # One batched training step's gradients (v2's loss adds a regulariser of its absorbing state the plugin has not).
  if [ "$run" != v2 ]; then
    "$OFFICIAL" "$HERE/dump_gradients.py" --version "$version" --checkpoint "$checkpoint" --out "$OUT/$run.gradients" \
      > "$OUT/$run.gradients.log" 2>&1
    "$PLUGIN" "$HERE/compare_gradients.py" --gradients "$OUT/$run.gradients" \
      --checkpoint "$OUT/$run.converted/checkpoint.pt" 2>> "$OUT/$run.gradients.log" || status=1
  fi
  if [ "$run" = v1 ]; then
    "$OFFICIAL" "$HERE/dump_gradients.py" --version "$version" --checkpoint "$checkpoint" --out "$OUT/$run.dropout" \
      --dropout 0.3 --masks 16 > "$OUT/$run.dropout.log" 2>&1
    "$PLUGIN" "$HERE/compare_gradients.py" --gradients "$OUT/$run.dropout" \
      --checkpoint "$OUT/$run.converted/checkpoint.pt" 2>> "$OUT/$run.dropout.log" | tail -1 || status=1
  fi
done
echo "== metrics: official sampler outputs (3 seeds) and edge cases"
"$OFFICIAL" "$HERE/decode.py" --checkpoint "$(ls "$OUT"/bert/ema_*.pt | tail -1)" --seeds 101 102 103 \
  --step "$DECODE_STEPS" --out "$OUT/bert.decoded" > "$OUT/bert.decode.log" 2>&1
"$PLUGIN" "$HERE/compare_metrics.py" --folder "$OUT/bert.decoded" 2> "$OUT/metrics.log" || status=1
"$PLUGIN" "$HERE/compare_metrics.py" --make-cases "$OUT/metric_cases" 2>> "$OUT/metrics.log" || status=1
exit $status
