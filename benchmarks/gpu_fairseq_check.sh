#!/usr/bin/env bash
# GPU check of the fairseq path: build fairseq from the sdist carried in .whl/ (the GPU machine has
# torch but no fairseq and no network), then train diffuseq_base through fairseq-train on the
# embedded toy task (importance sampler on, T=2000) and decode the --fp16 checkpoint with MBR.
# --bf16 is tried too, to record that in fairseq 0.12 it means TPU (it fails without XLA).
# CUDA_HOME is hidden while building: the sdist lacks the libnat_cuda sources (LevT is not run here).
# Prints fairseq's own train/valid lines; every number comes from fairseq's logs.
set -euo pipefail
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/*.whl .whl/antlr4-python3-runtime-4.9.3.tar.gz
env -u CUDA_HOME MAX_JOBS=16 python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/fairseq_fixed-0.12.3.1.tar.gz
export PYTHONPATH=/tmp/site:$PWD
python3 -m diffuseq_fairseq.dataprep.toy_task "$OUT/raw" --n-train 20000 --n-valid 500 --n-test 500
python3 -m fairseq_cli.preprocess --source-lang src --target-lang tgt --trainpref "$OUT/raw/train" \
  --validpref "$OUT/raw/valid" --testpref "$OUT/raw/test" --joined-dictionary --destdir "$OUT/bin" --workers 8 > /dev/null
for precision in bf16 fp16; do
  echo "== diffuseq_base --$precision"
  python3 -m fairseq_cli.train "$OUT/bin" --user-dir diffuseq_fairseq --task diffuseq --arch diffuseq_base \
    --criterion diffuseq_loss --anchor-loss-weight 1 --self-condition --optimizer adam --lr 1e-4 \
    --max-tokens 16384 --max-update "${UPDATES:-300}" --save-dir "$OUT/ckpt_$precision" --no-epoch-checkpoints \
    --"$precision" --log-interval 100 --log-format simple --num-workers 2 2>&1 | grep -E "train_inner|valid on|done training|Error|nan" || true
done
echo "== generate (fp16 checkpoint, dpm-solver++ 20 steps, MBR 10)"
python3 -m fairseq_cli.generate "$OUT/bin" --user-dir diffuseq_fairseq --task diffuseq --path "$OUT/ckpt_fp16/checkpoint_last.pt" \
  --gen-subset test --batch-size 250 --sampler dpm-solver++ --diffusion-steps 20 --mbr-candidates 10 --nbest 1 > "$OUT/gen.txt" 2> "$OUT/gen.log"
awk '/^(S|H)-/ && ++shown <= 4' "$OUT/gen.txt"; tail -n 2 "$OUT/gen.log"
python3 -m diffuseq_fairseq.dataprep.toy_score "$OUT/gen.txt"
