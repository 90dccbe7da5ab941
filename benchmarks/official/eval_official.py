"""Run the official ``scripts/eval_seq2seq.py`` on a folder of jsonl outputs; run in the official venv.

    .official-venv/bin/python benchmarks/official/eval_official.py --folder DIR [--mbr] [--json OUT]

The script runs unchanged (as ``__main__``, from the read-only peers folder) with two things it
cannot do offline replaced: BERTScore (it downloads microsoft/deberta-xlarge-mnli; reported as 0
here) and the sentence splitter of torchmetrics' ROUGE-Lsum (it downloads nltk's punkt_tab; the
script only reads rougeL_fmeasure, which does not split sentences). Its printed figures are
parsed into JSON: per file BLEU, ROUGE-L, dist-1 and length in the script's order (sorted glob),
then self-BLEU and div-4 (several files, no --mbr) or the MBR figures (--mbr).
"""
import argparse
import contextlib
import io
import json
import re
import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_setup import use_official  # noqa: E402

# The script's printed labels (including its own spellings) -> our keys.
LABELS = {"avg BLEU score": "bleu", "avg ROUGE-L score": "rouge_l", "avg ROUGE-l score": "rouge_l",
          "avg dist1 score": "dist_1", "avg len": "avg_len", "avg selfBleu score": "self_bleu",
          "avg div4 score": "div_4"}
FIGURE = re.compile(r"^(%s) (\S+)$" % "|".join(map(re.escape, LABELS)))


def offline_stand_ins():
    """Replace what would download: BERTScore's model and punkt for ROUGE-Lsum."""
    import bert_score
    import torch
    import torchmetrics.functional.text.rouge as rouge

    def no_bertscore(cands, refs, **kwargs):
        zeros = torch.zeros(len(cands))
        return zeros, zeros, zeros

    bert_score.score = no_bertscore
    rouge._split_sentence = lambda text: [text]


def parse(printed: str, mbr: bool) -> dict:
    """{"files": [{path, bleu, rouge_l, dist_1, avg_len}, ...], then self_bleu/div_4 or "mbr": {...}}."""
    result, current, tail = {"files": []}, None, None
    for line in printed.splitlines():
        if line.endswith("json") and Path(line).suffix:
            current = {"path": line}
            result["files"].append(current)
        elif line in ("MBR...", "Compute diversity..."):
            tail = result.setdefault("mbr", {}) if mbr else result
        match = FIGURE.match(line)
        if match:
            (tail if tail is not None else current)[LABELS[match.group(1)]] = float(match.group(2))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", required=True, type=Path, help="one jsonl file per seed (*json)")
    parser.add_argument("--mbr", action="store_true")
    parser.add_argument("--version", choices=("v1", "v2"), default="v1")
    parser.add_argument("--json", type=Path, help="write the parsed figures here (default: print them)")
    args = parser.parse_args(argv)
    folder = args.folder.resolve()
    code = use_official(args.version)
    offline_stand_ins()
    sys.argv = [str(code / "scripts" / "eval_seq2seq.py"), "--folder", str(folder)] + (["--mbr"] if args.mbr else [])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        runpy.run_path(sys.argv[0], run_name="__main__")
    result = parse(printed.getvalue(), args.mbr)
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
