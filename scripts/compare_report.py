"""The report of scripts/compare_levt.py: its table and plots, drawn from ``compare.json``."""
from pathlib import Path


def plot(results, out: Path) -> list:
    """The paper's Fig. 3-6 analyses and both validation curves (fig7) as PNG files."""
    import logging

    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib.pyplot as plt

    diffuseq, levt = results["diffuseq"], results["levt"]
    files = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        files.append(str(out / name))

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    sizes = sorted(diffuseq["mbr"], key=int)
    ax.plot([int(s) for s in sizes], [100 * diffuseq["mbr"][s]["metrics"]["bleu"] for s in sizes], "o-", label="DiffuSeq")
    ax.axhline(100 * levt["decode"]["metrics"]["bleu"], color="gray", ls="--", label="LevT")
    ax.set(xlabel="MBR candidates |S|", ylabel="sentence BLEU", title="BLEU vs |S| (Fig. 3)")
    ax.legend()
    save(fig, "fig3_bleu_vs_candidates.png")

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for label, entry in diffuseq["diversity"].items():
        m = entry["metrics"]
        ax.scatter(100 * m["self_bleu"], 100 * m["bleu"], label=f"DiffuSeq {label}")
    ax.set(xlabel="self-BLEU (lower = more diverse)", ylabel="sentence BLEU", title="Quality vs diversity (Fig. 4)")
    ax.legend(fontsize=7)
    save(fig, "fig4_quality_diversity.png")

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    curve = diffuseq["history"]
    ax.plot([c["step"] for c in curve], [100 * c["bleu"] for c in curve], "o-", label="BLEU")
    ax2 = ax.twinx()
    ax2.plot([c["step"] for c in curve], [100 * (c["div_4"] or 0) for c in curve], "s--", color="tab:orange", label="div-4")
    ax.set(xlabel="reverse step", ylabel="BLEU", title="Along the reverse process (Fig. 5)")
    ax2.set_ylabel("div-4")
    save(fig, "fig5_reverse_process.png")

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    points = sorted(diffuseq["steps"].items(), key=lambda kv: int(kv[0]))
    ax.plot([1000 / p["speed"]["sentences_per_s"] for _, p in points], [100 * p["metrics"]["bleu"] for _, p in points], "o-", label="DiffuSeq")
    for steps, p in points:
        ax.annotate(steps, (1000 / p["speed"]["sentences_per_s"], 100 * p["metrics"]["bleu"]), fontsize=7)
    ax.scatter([1000 / levt["decode"]["speed"]["sentences_per_s"]], [100 * levt["decode"]["metrics"]["bleu"]], color="gray", label="LevT")
    ax.set(xlabel="decoding seconds per 1,000 sentences", ylabel="sentence BLEU", title="BLEU vs decoding time (Fig. 6)")
    ax.legend()
    save(fig, "fig6_bleu_vs_time.png")

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for label, model in (("DiffuSeq", diffuseq), ("LevT", levt)):
        curve = model["train"]["valid_curve"]
        ax.plot([p["minutes"] for p in curve], [p["bleu"] for p in curve], "o-", label=label)
    ax.set(xlabel="training minutes", ylabel="validation BLEU", title="Validation curves, same budget")
    ax.legend()
    save(fig, "fig7_valid_bleu_vs_minutes.png")
    return files


def fmt(value, scale=100.0, digits=2):
    return "n/a" if value is None or value != value else f"{value * scale:.{digits}f}"


def table(results, early_stop: str) -> str:
    """The side-by-side table, early stopping's rows (``early_stop``: its flags) and both validation curves."""
    d, l = results["diffuseq"], results["levt"]
    best_s = max(d["mbr"], key=int)
    rows = [
        ("sentence BLEU (paper)", fmt(d["mbr"]["1"]["metrics"]["bleu"]), fmt(d["mbr"][best_s]["metrics"]["bleu"]), fmt(l["decode"]["metrics"]["bleu"])),
        ("corpus BLEU (sacrebleu)", fmt(d["mbr"]["1"]["metrics"]["sacrebleu"]), fmt(d["mbr"][best_s]["metrics"]["sacrebleu"]), fmt(l["decode"]["metrics"]["sacrebleu"])),
        ("ROUGE-L", fmt(d["mbr"]["1"]["metrics"]["rouge_l"]), fmt(d["mbr"][best_s]["metrics"]["rouge_l"]), fmt(l["decode"]["metrics"]["rouge_l"])),
        ("dist-1", fmt(d["mbr"]["1"]["metrics"]["dist_1"]), fmt(d["mbr"][best_s]["metrics"]["dist_1"]), fmt(l["decode"]["metrics"]["dist_1"])),
        ("self-BLEU / div-4 (3 samples)", f"{fmt(d['diversity']['dpm-solver++']['metrics']['self_bleu'])} / {fmt(d['diversity']['dpm-solver++']['metrics']['div_4'])}", "", "deterministic"),
        ("avg length", fmt(d["mbr"]["1"]["metrics"]["avg_len"], 1, 1), fmt(d["mbr"][best_s]["metrics"]["avg_len"], 1, 1), fmt(l["decode"]["metrics"]["avg_len"], 1, 1)),
        ("decode sentences/s", fmt(d["mbr"]["1"]["speed"]["sentences_per_s"], 1, 1), fmt(d["mbr"][best_s]["speed"]["sentences_per_s"], 1, 1), fmt(l["decode"]["speed"]["sentences_per_s"], 1, 1)),
        ("train tokens/s", fmt(d["train"]["train_tokens_per_s"], 1, 0), "", fmt(l["train"]["train_tokens_per_s"], 1, 0)),
        ("train updates in budget", str(d["train"]["updates"]), "", str(l["train"]["updates"])),
        ("peak RSS train / decode MiB", f"{d['train']['train_peak_rss_mib']:.0f} / {d['mbr']['1']['speed']['peak_rss_mib']:.0f}",
         f"- / {d['mbr'][best_s]['speed']['peak_rss_mib']:.0f}", f"{l['train']['train_peak_rss_mib']:.0f} / {l['decode']['speed']['peak_rss_mib']:.0f}"),
    ]
    header = ("metric", "DiffuSeq |S|=1", f"DiffuSeq MBR |S|={best_s}", "LevT")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(4)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    levt_bleu = l["decode"]["metrics"]["bleu"]
    ratio_bleu = f"{d['mbr'][best_s]['metrics']['bleu'] / levt_bleu:.3f}" if levt_bleu > 0 else "n/a (LevT BLEU 0)"
    ratio_speed = d["mbr"]["1"]["speed"]["sentences_per_s"] / l["decode"]["speed"]["sentences_per_s"]
    lines.append(f"ratios: BLEU DiffuSeq(MBR {best_s})/LevT = {ratio_bleu}; decode speed DiffuSeq(|S|=1)/LevT = {ratio_speed:.2f}")
    if "early_stop" in d:
        lines += early_stop_lines(d, l, early_stop)
    lines.append("validation BLEU (corpus, 256 shortest valid sentences; minute of training: BLEU @ updates):")
    for label, model in (("DiffuSeq", d), ("LevT", l)):
        points = [f"{p['minutes']:.1f}: {fmt(p['bleu'], 1)} @ {p['updates']}" for p in model["train"]["valid_curve"]]
        lines.append(f"  {label:9s} " + ("; ".join(points) or "no validation in the budget"))
    return "\n".join(lines)


def early_stop_lines(d, l, early_stop: str):
    """--stop-when-stable against the plain decode of the same run, at |S|=1 and |S|=10."""
    speed = lambda entry: entry["speed"]["sentences_per_s"]  # noqa: E731
    plain1, stop1, stop10, levt = d["mbr"]["1"], d["early_stop"]["stop1"], d["early_stop"]["stop10"], l["decode"]
    rows = [("|S|=1, every step", plain1, f"{speed(plain1) / speed(levt):.2f}x LevT's speed"),
            (f"|S|=1, {early_stop}", stop1, f"{speed(stop1) / speed(levt):.2f}x LevT's speed")]
    if "10" in d["mbr"]:
        rows.append(("|S|=10, every step", d["mbr"]["10"], f"{speed(plain1) / speed(d['mbr']['10']):.2f}x the time of |S|=1"))
    rows += [(f"|S|=10, {early_stop}", stop10, f"{speed(stop1) / speed(stop10):.2f}x the time of |S|=1 with it, "
              f"{speed(plain1) / speed(stop10):.2f}x that of |S|=1 every step"),
             ("LevT", levt, "")]
    lines = ["early stopping (same 20-step schedule):", f"  {'decode':44s} {'BLEU':>6s} {'sent/s':>7s}  ratio"]
    for label, entry, ratio in rows:
        lines.append(f"  {label:44s} {100 * entry['metrics']['bleu']:6.2f} {speed(entry):7.1f}  {ratio}")
    return lines
