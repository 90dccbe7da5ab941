"""The side by side's printed report (table, early stopping, multi-reference scores, validation
curves) and its ``compare.json``, written as strict JSON: a value that is not a number (a decode
read back without its timing, a run without validation BLEU) is ``null``, not ``NaN``."""
import json
import math
from pathlib import Path
from typing import List


def strict(value):
    """``value`` with every NaN or infinite float replaced by None, for JSON that any parser reads."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(item) for item in value]
    return value


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(strict(value), indent=2, allow_nan=False))


def fmt(value, scale: float = 100.0, digits: int = 2) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value * scale:.{digits}f}"


def ratio(numerator, denominator, suffix: str = "") -> str:
    if None in (numerator, denominator) or not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator == 0:
        return "n/a"
    return f"{numerator / denominator:.2f}{suffix}"


def _columns(rows, header) -> List[str]:
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
    return ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) for row in [header] + rows]


def table(results: dict, early_stop: str) -> str:
    """The side-by-side table, the early-stopping rows (``early_stop``: their flags), the
    multi-reference block when there is one, and both validation curves."""
    d, l = results["diffuseq"], results["levt"]
    best_s = max(d["mbr"], key=int)
    one, best, levt = d["mbr"]["1"], d["mbr"][best_s], l["decode"]

    def row(label, key, scale=100.0, digits=2):
        return (label, *(fmt(entry["metrics"][key], scale, digits) for entry in (one, best, levt)))

    diversity = d.get("diversity", {}).get("dpm-solver++", {}).get("metrics", {})
    rows = [
        row("sentence BLEU (paper)", "bleu"), row("corpus BLEU (sacrebleu)", "sacrebleu"), row("ROUGE-L", "rouge_l"),
        row("dist-1", "dist_1"),
        ("self-BLEU / div-4 (3 samples)", f"{fmt(diversity.get('self_bleu'))} / {fmt(diversity.get('div_4'))}", "",
         "deterministic"),
        row("avg length", "avg_len", 1, 1),
        ("decode sentences/s", *(fmt(entry["speed"]["sentences_per_s"], 1, 1) for entry in (one, best, levt))),
        ("train tokens/s", fmt(d["train"]["train_tokens_per_s"], 1, 0), "", fmt(l["train"]["train_tokens_per_s"], 1, 0)),
        ("train updates in budget", str(d["train"]["updates"]), "", str(l["train"]["updates"])),
        ("peak RSS train / decode MiB", f"{fmt(d['train']['train_peak_rss_mib'], 1, 0)} / {fmt(one['speed']['peak_rss_mib'], 1, 0)}",
         f"- / {fmt(best['speed']['peak_rss_mib'], 1, 0)}",
         f"{fmt(l['train']['train_peak_rss_mib'], 1, 0)} / {fmt(levt['speed']['peak_rss_mib'], 1, 0)}"),
    ]
    lines = _columns(rows, ("metric", "DiffuSeq |S|=1", f"DiffuSeq MBR |S|={best_s}", "LevT"))
    levt_bleu = levt["metrics"]["bleu"]
    ratio_bleu = f"{best['metrics']['bleu'] / levt_bleu:.3f}" if levt_bleu > 0 else "n/a (LevT BLEU 0)"
    lines.append(f"ratios: BLEU DiffuSeq(MBR {best_s})/LevT = {ratio_bleu}; decode speed DiffuSeq(|S|=1)/LevT = "
                 f"{ratio(one['speed']['sentences_per_s'], levt['speed']['sentences_per_s'])}")
    if "early_stop" in d:
        lines += early_stop_lines(d, l, early_stop)
    if "multi_reference" in results:
        lines += multi_reference_lines(results)
    lines.append("validation BLEU (corpus, 256 shortest valid sentences; minute of training: BLEU @ updates):")
    for label, model in (("DiffuSeq", d), ("LevT", l)):
        points = [f"{p['minutes']:.1f}: {fmt(p['bleu'], 1)} @ {p['updates']}" for p in model["train"]["valid_curve"]]
        lines.append(f"  {label:9s} " + ("; ".join(points) or "no validation in the budget"))
    return "\n".join(lines)


def early_stop_lines(d: dict, l: dict, early_stop: str) -> List[str]:
    """--stop-when-stable against the plain decode of the same run, at |S|=1 and |S|=10."""
    def speed(entry):
        return entry["speed"]["sentences_per_s"]

    plain1, stop1, stop10, levt = d["mbr"]["1"], d["early_stop"]["stop1"], d["early_stop"]["stop10"], l["decode"]
    rows = [("|S|=1, every step", plain1, f"{ratio(speed(plain1), speed(levt), 'x')} LevT's speed"),
            (f"|S|=1, {early_stop}", stop1, f"{ratio(speed(stop1), speed(levt), 'x')} LevT's speed")]
    if "10" in d["mbr"]:
        rows.append(("|S|=10, every step", d["mbr"]["10"], f"{ratio(speed(plain1), speed(d['mbr']['10']), 'x')} the time of |S|=1"))
    rows += [(f"|S|=10, {early_stop}", stop10, f"{ratio(speed(stop1), speed(stop10), 'x')} the time of |S|=1 with it, "
              f"{ratio(speed(plain1), speed(stop10), 'x')} that of |S|=1 every step"),
             ("LevT", levt, "")]
    lines = ["early stopping (same 20-step schedule):", f"  {'decode':44s} {'BLEU':>6s} {'sent/s':>7s}  ratio"]
    for label, entry, note in rows:
        lines.append(f"  {label:44s} {fmt(entry['metrics']['bleu']):>6s} {fmt(speed(entry), 1, 1):>7s}  {note}")
    return lines


def multi_reference_lines(results: dict) -> List[str]:
    """Every system against all K references and, like for like with the human ceiling, against K-1."""
    multi = results["multi_reference"]
    count = multi["references_per_source"]
    systems = [(f"DiffuSeq |S|={size}", entry) for size, entry in sorted(multi["diffuseq"].items(), key=lambda i: int(i[0]))]
    systems += [("LevT", multi["levt"])]
    baselines = multi["baselines"]
    if "copy_source" in baselines:
        systems.append(("copy the source", baselines["copy_source"]))
    systems.append((f"human (1 reference vs the other {count - 1})", baselines["human"]))
    header = ("system", f"BLEU {count} refs", f"BLEU {count - 1} refs", f"sacreBLEU {count}", f"sacreBLEU {count - 1}",
              f"ROUGE-L {count}", f"ROUGE-L {count - 1}")

    def cells(entry: dict, key: str):
        return fmt(entry.get("all", {}).get(key)) if "all" in entry else "-", fmt(entry["leave_one_out"][key])

    rows = [(label, *(cell for key in ("bleu", "sacrebleu", "rouge_l") for cell in cells(entry, key)))
            for label, entry in systems]
    files = ", ".join(Path(name).name for name in multi["files"])
    lines = [f"multi-reference ({multi['split']} split, {count} references: {files} in {Path(multi['files'][0]).parent}; "
             f"'{count - 1} refs': each reference left out in turn, averaged):"]
    return lines + ["  " + line for line in _columns(rows, header)]

