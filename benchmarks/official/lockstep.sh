#!/usr/bin/env bash
# The plugin's training against the official code's, update for update, in one command (about 20
# minutes on one CPU core once the official venv and data-bin/multi30k_de_en exist):
#   bash benchmarks/official/lockstep.sh [OUT]        (default OUT: runs/official_lockstep)
# 1. lockstep_official.py trains the official v1 code in official_parity.py's configuration (Multi30k,
#    4 layers, d=256, seq_len 128, T 2,000, 64 pairs an update, lr 1e-3 decayed linearly, seed 102), without
#    dropout, each update's t and noises drawn from a seed and handed in; it keeps the weights at some updates;
# 2. lockstep_plugin.py replays the same batches and draws through fairseq's Trainer from the converted initial
#    weights: with --optimizer adamw (the converted config's) and with fairseq's adam;
# 3. lockstep_table.py prints both against the official run.
# Env: UPDATES (default 60), SEED (default 102).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/official_lockstep}
UPDATES=${UPDATES:-60}
SEED=${SEED:-102}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
OFFICIAL=.official-venv/bin/python
PLUGIN=.venv/bin/python
HERE=benchmarks/official
bash scripts/official_env.sh > /dev/null
mkdir -p "$OUT/logs"
# The official jsonl and --vocab file of the side by side (official_parity.py builds the data-bin if missing).
"$PLUGIN" - "$OUT" <<'PY'
import sys
sys.path.insert(0, "benchmarks")
import official_parity
official_parity.prepare_data(official_parity.parse_args(["--out", sys.argv[1], "--test-sentences", "10"]))
PY
snapshots=$(python3 -c "print(','.join(str(k) for k in sorted({0, 1, 2, 5, *range(10, $UPDATES + 1, 10), $UPDATES})))")
"$OFFICIAL" "$HERE/lockstep_official.py" --data-dir "$OUT/official_data" --vocab "$OUT/official_data/vocab.txt" \
  --out "$OUT/official" --steps "$UPDATES" --snapshots "$snapshots" --dropout 0 --seq-len 128 --batch-size 64 \
  --layers 4 --hidden 256 --heads 4 --ffn 1024 --latent 128 --lr 1e-3 --seed "$SEED" --ema-rate 0.99 \
  > "$OUT/official.log" 2>&1
for optimizer in adamw adam; do
  "$PLUGIN" "$HERE/lockstep_plugin.py" --official "$OUT/official" --out "$OUT/plugin_$optimizer" \
    --optimizer "$optimizer" > "$OUT/plugin_$optimizer.log" 2>&1
done
"$PLUGIN" "$HERE/lockstep_table.py" "$OUT/plugin_adamw/lockstep.json" "$OUT/plugin_adam/lockstep.json"
