#!/usr/bin/env bash
# Decode one DiffuSeq checkpoint with several --shown-timestep-fraction values (DINOISER's
# condition-enhanced inference) and print paper BLEU / sacreBLEU / self-BLEU, speed and foreign words per decode.
#   bash benchmarks/shown_floor.sh CHECKPOINT DATA_BIN OUT_DIR [fairseq-generate options...]
# e.g. bash benchmarks/shown_floor.sh runs/compare_multi30k_v25_default/ckpt_diffuseq/checkpoint_best.pt \
#        data-bin/multi30k_de_en runs/shown_floor_v25 --source-lang de --target-lang en
# Options after OUT_DIR go to every decode, after (so over) the script's own, e.g. --gen-subset valid.
# Two decodes run at a time, one thread each (the 2-core CPU machine); FRACTIONS and DECODES override the grid.
set -euo pipefail
checkpoint=$1 data_bin=$2 out=$3
shift 3
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
fractions=${FRACTIONS:-"none 0.95 0.99"}
decodes=${DECODES:-"s1:--mbr-candidates 1;s1stop:--mbr-candidates 1 --stop-when-stable 1;mbr10:--mbr-candidates 10;mbr10stop:--mbr-candidates 10 --stop-when-stable 1 --nbest 10"}
mkdir -p "$out"
export OMP_NUM_THREADS=1

decode() {  # tag, then extra generate options
    local tag=$1
    shift
    "$python" -m fairseq_cli.generate "$data_bin" --user-dir "$here/diffuseq_fairseq" --task diffuseq \
        --path "$checkpoint" --gen-subset test --cpu --batch-size 100 --remove-bpe --seed 1 \
        --sampler dpm-solver++ --diffusion-steps 20 "$@" >"$out/gen_$tag.txt" 2>"$out/log_$tag.txt"
}

IFS=';' read -r -a decode_list <<<"$decodes"
for fraction in $fractions; do
    floor=()
    [ "$fraction" != none ] && floor=(--shown-timestep-fraction "$fraction")
    running=0
    for entry in "${decode_list[@]}"; do
        # shellcheck disable=SC2086  # the decode's options are words
        decode "${entry%%:*}_$fraction" ${entry#*:} "${floor[@]}" "$@" &
        running=$((running + 1))
        if [ $running -eq 2 ]; then wait -n; running=1; fi
    done
    wait
done

tags=()
for entry in "${decode_list[@]}"; do
    for fraction in $fractions; do tags+=("${entry%%:*}_$fraction"); done
done
# foreign%: the share of outputs holding a word that no training target holds (a source-language word,
# which the joined dictionary allows), against DATA_BIN/text/train.<--target-lang> where the prepare scripts
# wrote it ("-" without it).
target_lang=""
options=("$@")
for i in "${!options[@]}"; do
    if [ "${options[$i]}" = --target-lang ]; then target_lang=${options[$((i + 1))]:-}; fi
done
"$python" - "$out" "$data_bin/text/train.$target_lang" "${tags[@]}" <<'PY'
import os, re, sys
from diffuseq_fairseq.evaluation.metrics import evaluate
from diffuseq_fairseq.evaluation.readers import read_file
out, train_targets, tags = sys.argv[1], sys.argv[2], sys.argv[3:]
known = None
if os.path.isfile(train_targets):
    with open(train_targets, encoding="utf-8") as f:
        known = set(f.read().replace("@@ ", "").split())
print(f"{'decode':22s} {'BLEU':>7s} {'sacre':>7s} {'self-BLEU':>10s} {'sent/s':>8s} {'foreign%':>9s}")
for tag in tags:
    g = read_file(f"{out}/gen_{tag}.txt")
    m = evaluate(g.selected, g.references, g.candidates)
    speed = re.search(r"\(([\d.]+) sentences/s", open(f"{out}/log_{tag}.txt").read())  # fairseq logs it to stderr
    self_bleu = f"{100 * m['self_bleu']:.2f}" if m.get("self_bleu") is not None else "-"
    foreign = "-" if known is None else f"{100 * sum(not set(h.split()) <= known for h in g.selected) / len(g.selected):.1f}"
    print(f"{tag:22s} {100 * m['bleu']:7.2f} {100 * m['sacrebleu']:7.2f} {self_bleu:>10s} "
          f"{speed.group(1) if speed else '-':>8s} {foreign:>9s}")
PY
