#!/usr/bin/env bash
# The plugin's reverse process against the official samplers, step for step, in one command (about
# 2 minutes on one CPU core once the official venv exists):
#   bash benchmarks/official/reverse_parity.sh [OUT]        (default OUT: runs/official_reverse)
# 1. trains a small official DiffuSeq v1 model on the toy task (toy_data.py; 2 layers, d=64, T=100,
#    seq_len 64, EMA 0.99 so that the few updates show in the decoded weights) and converts it;
# 2. runs the official samplers with noise drawn by reverse_dump.py: v1's p_sample_loop (DDPM, all T
#    steps) and ddim_sample_loop (--step S), v2's DPM-Solver script (S steps) on the same checkpoint;
# 3. compare_reverse.py decodes the same sources with the plugin's generator fed the same noise, and
#    with the official rules run on the plugin's network, and prints the agreement of each.
# Env: STEPS (official training updates, default 300), T (default 100), S (DDIM and DPM-Solver steps,
#      default 10), EXAMPLES (test sentences, default 12).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/official_reverse}
STEPS=${STEPS:-300}
T=${T:-100}
S=${S:-10}
EXAMPLES=${EXAMPLES:-12}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OFFICIAL=.official-venv/bin/python
PLUGIN=.venv/bin/python
HERE=benchmarks/official
bash scripts/official_env.sh > /dev/null
"$PLUGIN" "$HERE/toy_data.py" "$OUT/data" > /dev/null
"$OFFICIAL" "$HERE/train_tiny.py" --version v1 --data-dir "$OUT/data" --vocab "$OUT/data/vocab.txt" --out "$OUT/run" \
  --steps "$STEPS" --seq-len 64 --diffusion-steps "$T" --ema-rate 0.99 > "$OUT/train.log" 2>&1
checkpoint=$(ls "$OUT"/run/ema_*.pt | tail -1)
"$PLUGIN" -m diffuseq_fairseq.convert_official "$checkpoint" "$OUT/converted" > "$OUT/convert.log" 2>&1
status=0
for version in v1 v2; do
  "$OFFICIAL" "$HERE/reverse_dump.py" --version "$version" --checkpoint "$checkpoint" --examples "$EXAMPLES" \
    --ddim-steps "$S" --solver-steps "$S" --out "$OUT/reverse_$version.pt" > "$OUT/reverse_$version.log" 2>&1
  "$PLUGIN" "$HERE/compare_reverse.py" --dump "$OUT/reverse_$version.pt" --checkpoint "$OUT/converted/checkpoint.pt" \
    2> "$OUT/compare_$version.log" || status=1
done
exit $status
