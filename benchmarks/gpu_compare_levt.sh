#!/usr/bin/env bash
# DiffuSeq vs LevT on one GPU under the same wall-clock budget (both trainings sharing the GPU):
# TASK=multi30k (de->en, the default) or TASK=captions (the caption paraphrases of issue #28, its CPU
# recipes and learning rates, scored against the four references); optionally MBR cost at other
# fairseq-generate batch sizes on that GPU.
# The GPU machine has no network: fairseq is built from the sdist carried in .whl/ (as in
# gpu_fairseq_check.sh) and the data-bin is carried. Every figure comes from scripts/compare_levt.py
# and benchmarks/mbr_batching.py, which print their ratios; results land in $OUT.
#   OUT=... BUDGET=3.5 [TASK=captions] bash benchmarks/gpu_compare_levt.sh   (INSTALL=0 DEVICE=cpu to try it on a CPU)
# Measured on an H200 (2026-11-30): the fairseq build took 150 s, the smoke run 96 s, the two 3.5-minute
# trainings 220 s and the compare's decodes about 3 minutes (17-20 s a process, mostly start-up), so
# with SMOKE=1, MBR_BATCHES or REPEATS=2 the whole does not fit one 10-minute device call.
set -euo pipefail
OUT=${OUT:-/tmp/gpu_compare}
BUDGET=${BUDGET:-3.5}        # training minutes per model
TEST=${TEST:-0}              # test sentences (0 = all 1,000)
DEVICE=${DEVICE:-cuda}
RUN=${RUN:-/tmp/gpu_compare_run}
mkdir -p "$OUT"
if [ "${INSTALL:-1}" = 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/*.whl .whl/antlr4-python3-runtime-4.9.3.tar.gz
  # CUDA_HOME hidden: the sdist lacks libnat_cuda's sources; LevT uses the CPU libnat for its targets.
  env -u CUDA_HOME MAX_JOBS=16 python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/fairseq_fixed-0.12.3.1.tar.gz
  echo "fairseq built in $SECONDS s"
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
case ${TASK:-multi30k} in
  multi30k) COMMON="--data-bin data-bin/multi30k_de_en --source-lang de --target-lang en" ;;
  # The learning rates chosen on validation at the CPU budget (benchmarks/results/lr_sweep_captions_cpu.txt).
  captions) COMMON="--data-bin data-bin/captions --source-lang src --target-lang tgt --diffuseq-recipe captions_cpu
            --levt-lr 5e-4 --refs $(echo data-bin/captions/refs/test.ref{1,2,3,4})" ;;
  *) echo "TASK must be multi30k or captions" >&2; exit 2 ;;
esac
COMMON="$COMMON --device $DEVICE --threads 4"
# A GPU batch (about 500 pairs) for both models; validation (and saving) every 200 updates as on the
# CPU, not also at every epoch's end, which on a GPU comes every few seconds.
TRAIN="--max-tokens 8192 --validate-interval 1000 --save-interval 1000"

if [ "${SMOKE:-0}" = 1 ]; then
  echo "== smoke: 5 updates each, every decode on 10 sentences"
  rm -rf /tmp/gpu_smoke
  python3 scripts/compare_levt.py $COMMON --max-update 5 --no-valid-bleu --test-sentences 10 --mbr-sizes 1 \
    --step-counts 20 --diversity-samplers dpm-solver++ --timing-repeats 1 --train-args "$TRAIN" --out /tmp/gpu_smoke \
    > "$OUT/smoke.log" 2>&1 || { tail -n 30 "$OUT/smoke.log" /tmp/gpu_smoke/logs/*.log; exit 1; }
  echo "smoke passed at $SECONDS s"
fi

echo "== compare: $BUDGET minutes each"
[ -n "${RESUME:-}" ] || rm -rf "$RUN"
python3 scripts/compare_levt.py $COMMON --budget-minutes "$BUDGET" --test-sentences "$TEST" --mbr-sizes 1,10 \
  --step-counts 20 --diversity-samplers dpm-solver++ --timing-repeats "${REPEATS:-1}" --train-args "$TRAIN" --out "$RUN" \
  ${RESUME:+--skip-training --reuse-decodes} 2>&1 | tee "$OUT/compare.log"
tar -czf "$OUT/compare_run.tar.gz" --exclude='ckpt_*' -C "$(dirname "$RUN")" "$(basename "$RUN")"
echo "compare done at $SECONDS s"

[ -z "${MBR_BATCHES:-}" ] && exit 0
echo "== MBR 10 vs 1 by batch size"
python3 benchmarks/mbr_batching.py --data-bin data-bin/multi30k_de_en --source-lang de --target-lang en \
  --device "$DEVICE" --threads 4 --diffuseq "$RUN/ckpt_diffuseq/checkpoint_last.pt" --levt "$RUN/ckpt_levt/checkpoint_last.pt" \
  --test-sentences 200 --batch-sizes "$MBR_BATCHES" --repeats 1 --out "$RUN/mbr" 2>&1 | tee "$OUT/mbr_batching.log"
echo "all done at $SECONDS s"
