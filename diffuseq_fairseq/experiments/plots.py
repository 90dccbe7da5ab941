"""The side by side's figures, drawn from its results (``compare.json``): the paper's Fig. 3-6
analyses and both models' validation curves. Each ``figure_*`` returns a matplotlib Figure (Agg),
or None when the results hold nothing to draw, so that no empty axes are written.
"""
import logging
import math
from pathlib import Path
from typing import List, Optional

# matplotlib logs at DEBUG while it is imported, and fairseq's logging set-up would print that.
logging.getLogger("matplotlib").setLevel(logging.WARNING)
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .decodes import options_of  # noqa: E402

SIZE = (5.2, 3.6)
LEVT_COLOR = "gray"


def _number(value) -> float:
    """A metric as a float; NaN for a value that is missing (null in compare.json)."""
    return math.nan if value is None else float(value)


def _percent(metrics: dict, key: str) -> float:
    return 100 * _number(metrics.get(key))


def _against_references(results: dict, *path: str) -> Optional[dict]:
    """A decode's scores against all references (``multi_reference``, from --refs/--valid-refs), or None."""
    found = results.get("multi_reference")
    for key in path:
        if not isinstance(found, dict) or key not in found:
            return None
        found = found[key]
    return found.get("all")


def _bleu(results: dict, metrics: dict, *path: str) -> float:
    """Sentence BLEU of a decode: against every reference where the results hold them (a paraphrase task,
    where the one reference of fairseq's target scores little), else against its target."""
    return _percent(_against_references(results, *path) or metrics, "bleu")


def _bleu_label(results: dict) -> str:
    count = (results.get("multi_reference") or {}).get("references_per_source")
    return f"sentence BLEU ({count} references)" if count else "sentence BLEU"


def _seconds_per_1000(speed: dict) -> float:
    per_second = _number(speed.get("sentences_per_s"))
    return 1000 / per_second if per_second > 0 else math.nan


def figure_bleu_vs_candidates(results: dict):
    """Fig. 3: BLEU of the MBR pick against the number of candidates |S| (whole numbers only)."""
    mbr = results["diffuseq"].get("mbr", {})
    if not mbr:
        return None
    sizes = sorted(mbr, key=int)
    fig, ax = plt.subplots(figsize=SIZE)
    ax.plot([int(s) for s in sizes], [_bleu(results, mbr[s]["metrics"], "diffuseq", s) for s in sizes], "o-",
            label="DiffuSeq, MBR pick")
    ax.axhline(_bleu(results, results["levt"]["decode"]["metrics"], "levt"), color=LEVT_COLOR, ls="--", label="LevT")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="MBR candidates |S|", ylabel=_bleu_label(results), title="BLEU vs |S| (Fig. 3)")
    ax.legend()
    return fig


def diversity_points(results: dict) -> List[dict]:
    """Fig. 4's points: each DiffuSeq decode with several candidates per source, and LevT."""
    diffuseq, points = results["diffuseq"], []
    for size, entry in sorted(diffuseq.get("mbr", {}).items(), key=lambda item: int(item[0])):
        if int(size) > 1:
            points.append({"label": f"DiffuSeq |S|={size} (MBR pick; {size} candidates)", "metrics": entry["metrics"],
                           "bleu": _bleu(results, entry["metrics"], "diffuseq", size)})
    for label, entry in diffuseq.get("diversity", {}).items():
        samples = entry["metrics"].get("candidates_per_source", 3)
        points.append({"label": f"DiffuSeq {label} ({samples} samples)", "metrics": entry["metrics"],
                       "bleu": _bleu(results, entry["metrics"], "diversity", label)})
    levt = results["levt"]["decode"]
    if points and "deterministic_diversity" in levt:
        metrics = dict(levt["metrics"], **levt["deterministic_diversity"])
        points.append({"label": "LevT (deterministic: its samples are one)", "metrics": metrics, "color": LEVT_COLOR,
                       "bleu": _bleu(results, levt["metrics"], "levt")})
    return points


def figure_quality_vs_diversity(results: dict):
    """Fig. 4: BLEU against self-BLEU (lower = more diverse) and against div-4 (higher = more diverse)."""
    points = diversity_points(results)
    if not points:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    markers = "osD^v<>p*h"
    for axis, key, label in ((axes[0], "self_bleu", "self-BLEU (lower = more diverse)"),
                             (axes[1], "div_4", "div-4 (higher = more diverse)")):
        for i, point in enumerate(points):
            axis.scatter(_percent(point["metrics"], key), point["bleu"], s=45,
                         marker=markers[i % len(markers)], color=point.get("color"), label=point["label"])
        axis.set_xlabel(label)
    axes[0].set_ylabel(_bleu_label(results))
    fig.suptitle("Quality vs diversity (Fig. 4)")
    axes[1].legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.02, 1))  # beside the axes: no point hidden
    return fig


def figure_reverse_process(results: dict):
    """Fig. 5: BLEU of the MBR pick and div-4 of the samples at every reverse step, with a legend for both."""
    curve = results["diffuseq"].get("history")
    if not curve:
        return None
    options = options_of(results["diffuseq"].get("history_decode", ""))
    sampler = options.get("--sampler", "sampler not recorded")
    samples = options.get("--mbr-candidates", "?")
    steps = [point["step"] for point in curve]
    fig, ax = plt.subplots(figsize=SIZE)
    bleu = ax.plot(steps, [100 * _number(point["bleu"]) for point in curve], "o-", color="tab:blue",
                   label=f"BLEU of the MBR pick ({sampler})")
    right = ax.twinx()
    div4 = right.plot(steps, [100 * _number(point["div_4"]) for point in curve], "s--", color="tab:orange",
                      label=f"div-4 of the {samples} samples ({sampler})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="reverse step", ylabel="sentence BLEU", title=f"Along the reverse process (Fig. 5): {sampler}")
    right.set_ylabel("div-4")
    lines = bleu + div4
    ax.legend(lines, [line.get_label() for line in lines], loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=9)
    return fig


def figure_bleu_vs_time(results: dict):
    """Fig. 6: BLEU against decoding time for each step count (labelled beside its marker), and LevT."""
    points = sorted(results["diffuseq"].get("steps", {}).items(), key=lambda item: int(item[0]))
    if not points:
        return None
    fig, ax = plt.subplots(figsize=SIZE)
    xs = [_seconds_per_1000(entry["speed"]) for _, entry in points]
    ys = [_percent(entry["metrics"], "bleu") for _, entry in points]
    ax.plot(xs, ys, "o-", label="DiffuSeq |S|=1")
    for (steps, _), x, y in zip(points, xs, ys):
        ax.annotate(f"{steps} steps", (x, y), xytext=(6, -12), textcoords="offset points", fontsize=8)
    levt = results["levt"]["decode"]
    ax.scatter([_seconds_per_1000(levt["speed"])], [_percent(levt["metrics"], "bleu")], color=LEVT_COLOR, label="LevT")
    ax.margins(x=0.15, y=0.15)
    ax.set(xlabel="decoding seconds per 1,000 sentences", ylabel="sentence BLEU", title="BLEU vs decoding time (Fig. 6)")
    ax.legend()
    return fig


def figure_validation_curves(results: dict):
    """Both models' validation BLEU against training minutes; None when neither validated with BLEU."""
    curves = {label: results[name]["train"].get("valid_curve", []) for label, name in (("DiffuSeq", "diffuseq"), ("LevT", "levt"))}
    if not any(not math.isnan(_number(point.get("bleu"))) for curve in curves.values() for point in curve):
        return None
    fig, ax = plt.subplots(figsize=SIZE)
    for label, curve in curves.items():
        ax.plot([point["minutes"] for point in curve], [_number(point["bleu"]) for point in curve], "o-", label=label)
    ax.set(xlabel="training minutes", ylabel="validation BLEU", title="Validation curves, same budget")
    ax.legend()
    return fig


FIGURES = (
    ("fig3_bleu_vs_candidates.png", figure_bleu_vs_candidates),
    ("fig4_quality_diversity.png", figure_quality_vs_diversity),
    ("fig5_reverse_process.png", figure_reverse_process),
    ("fig6_bleu_vs_time.png", figure_bleu_vs_time),
    ("fig7_valid_bleu_vs_minutes.png", figure_validation_curves),
)


def write_plots(results: dict, out: Path, prefix: str = "") -> List[str]:
    """Write every figure the results can draw as PNG into ``out``; returns the files written."""
    files = []
    for name, draw in FIGURES:
        fig: Optional[plt.Figure] = draw(results)
        if fig is None:
            continue
        fig.tight_layout()
        fig.savefig(out / f"{prefix}{name}", dpi=120, bbox_inches="tight")  # legends outside the axes included
        plt.close(fig)
        files.append(str(out / f"{prefix}{name}"))
    return files
