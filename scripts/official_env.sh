#!/usr/bin/env bash
# Build the virtual environment that runs the official DiffuSeq code (v1 and v2) on this machine,
# next to the plugin's .venv, for the side-by-side checks (benchmarks/official/). Idempotent: a
# second run with the same package list only checks the helper files.
#
# The official code pins torch 1.9 + transformers 4.22.2, whose tokenizers do not build on
# Python 3.11; these newer releases run it unchanged, given the helper files written below:
#   $VENV/diffuseq-official/sitecustomize/sitecustomize.py  numpy.int = int (step_sample.py uses np.int)
#   $VENV/diffuseq-official/bert-config/config.json         a local BERT config for --config_name
#                                                            (4 layers, d=256: CPU-sized)
#   $VENV/diffuseq-official/env.sh                          source it before running the official code
#                                                            by hand (PYTHONPATH, offline HF, wandb off)
# Env: PYTHON (interpreter, default python3), VENV (default .official-venv, ignored by git),
#      TORCH_SPEC (default torch==2.13.0: the CPU wheel; an unpinned torch pulls a CUDA build of GBs).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.official-venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
# transformers 4.46.3: newest 4.x whose BertEncoder matches 4.22's layer layout and still runs
# AutoConfig/AutoTokenizer on a local folder offline; datasets < 3 and huggingface-hub < 1.0 go
# with it. nltk is pinned to the plugin's version (setup.py) so that metric comparisons measure
# definitions, not nltk releases. torchmetrics and bert_score: imported by scripts/eval_seq2seq.py.
PACKAGES=("$TORCH_SPEC" "transformers==4.46.3" "huggingface-hub<1.0" "datasets<3" "nltk==3.9.1"
          wandb blobfile torchmetrics bert_score psutil PyYAML tqdm packaging)
HELPERS="$VENV/diffuseq-official"
STAMP="$HELPERS/installed-packages.txt"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[official-env] creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
mkdir -p "$HELPERS/sitecustomize" "$HELPERS/bert-config"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "${PACKAGES[*]}" ]; then
  echo "[official-env] installing ${PACKAGES[*]}"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q "${PACKAGES[@]}"
  echo "${PACKAGES[*]}" > "$STAMP"
fi

cat > "$HELPERS/sitecustomize/sitecustomize.py" <<'EOF'
"""Loaded at start-up from PYTHONPATH: the official DiffuSeq v1 uses numpy.int, removed in numpy 1.24."""
import numpy

numpy.int = int
EOF

cat > "$HELPERS/bert-config/config.json" <<'EOF'
{
  "model_type": "bert",
  "architectures": ["BertModel"],
  "hidden_size": 256,
  "num_hidden_layers": 4,
  "num_attention_heads": 4,
  "intermediate_size": 1024,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "attention_probs_dropout_prob": 0.1,
  "max_position_embeddings": 512,
  "type_vocab_size": 2,
  "initializer_range": 0.02,
  "layer_norm_eps": 1e-12,
  "vocab_size": 30522,
  "pad_token_id": 0
}
EOF

cat > "$HELPERS/env.sh" <<EOF
# Source before running the official DiffuSeq code with $VENV/bin/python.
export PYTHONPATH="$(pwd)/$HELPERS/sitecustomize\${PYTHONPATH:+:\$PYTHONPATH}"
export WANDB_MODE=disabled HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
EOF

PYTHONPATH="$HELPERS/sitecustomize" "$VENV/bin/python" - <<'EOF'
import numpy, torch, transformers, datasets, nltk
from transformers.models.bert.modeling_bert import BertEncoder  # noqa: F401  (what the official model builds on)
assert numpy.int is int, "sitecustomize was not loaded"
print(f"[official-env] ready: torch {torch.__version__}, transformers {transformers.__version__}, "
      f"datasets {datasets.__version__}, nltk {nltk.__version__}, numpy {numpy.__version__}")
EOF
