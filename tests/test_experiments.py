"""The experiment library (diffuseq_fairseq/experiments/): the fairseq log parser, the declarative
decode list, strict JSON, the report, multi-reference scoring and the plots, read from the figure
objects (matplotlib Agg), not from pixels."""
import json
import math
import os
import subprocess
import sys

import pytest

from diffuseq_fairseq.evaluation.metrics import evaluate
from diffuseq_fairseq.experiments import decodes, fairseq_log, plots, report, runner, scoring
from diffuseq_fairseq.experiments.recipes import CPU

# Lines as fairseq-train writes them with --log-format json (and one in the ``name: {...}`` form).
TRAIN_LOG = """\
2026-12-01 10:00:00 | INFO | fairseq_cli.train | {'_name': None, 'eval_bleu': True}
2026-12-01 10:01:00 | INFO | train_inner | {"epoch": 1, "loss": "3.5", "wps": "800.0", "num_updates": "50"}
2026-12-01 10:02:00 | INFO | valid | {"epoch": 1, "valid_loss": "2.5", "valid_bleu": "1.25", "valid_num_updates": "60"}
2026-12-01 10:02:00 | INFO | train | {"epoch": 1, "train_loss": "3.0", "train_wps": "1000.0", "train_num_updates": "60"}
2026-12-01 10:04:00 | INFO | valid | {"epoch": 2, "valid_loss": "2.0", "valid_num_updates": "100"}
train_inner: {"epoch": 2, "loss": "2.9", "wps": "900.0", "num_updates": "100"}
"""


def test_one_parser_reads_every_kind_of_record():
    assert [r["num_updates"] for r in fairseq_log.records(TRAIN_LOG, "train_inner")] == ["50", "100"]
    assert [r["train_num_updates"] for r in fairseq_log.records(TRAIN_LOG, "train")] == ["60"]
    assert [r["valid_loss"] for r in fairseq_log.records(TRAIN_LOG, "valid")] == ["2.5", "2.0"]
    assert len(fairseq_log.log_times(TRAIN_LOG)) == 5 and len(fairseq_log.log_times(TRAIN_LOG, "valid")) == 2


def test_training_summary_reads_updates_speed_and_the_validation_curve():
    summary = fairseq_log.training_summary(TRAIN_LOG, "ckpt.pt", 240.0, 512.0)
    assert summary["updates"] == 100 and summary["train_tokens_per_s"] == pytest.approx(900.0)
    # Minutes from the log's first line; no BLEU logged under --eval-bleu means BLEU 0 (no words at all).
    assert summary["valid_curve"] == [{"updates": 60, "loss": 2.5, "bleu": 1.25, "minutes": 2.0},
                                      {"updates": 100, "loss": 2.0, "bleu": 0.0, "minutes": 4.0}]
    without_bleu = fairseq_log.training_summary(TRAIN_LOG.replace("'eval_bleu': True", "'eval_bleu': False"), "c", 1, 1)
    assert math.isnan(without_bleu["valid_curve"][1]["bleu"])


def test_generate_timing_and_peak_memory(tmp_path):
    footer = "2026-12-01 | INFO | fairseq_cli.generate | Translated 1,000 sentences (9,000 tokens) in 12.5s (80.00 sentences/s, 720 tokens/s)"
    assert fairseq_log.generate_timing(footer) == (12.5, 80.0)
    assert all(math.isnan(x) for x in fairseq_log.generate_timing("no footer"))
    (tmp_path / "a.rss").write_text("2048")
    assert fairseq_log.peak_rss_mib(tmp_path / "a.rss") == 2.0 and math.isnan(fairseq_log.peak_rss_mib(tmp_path / "b.rss"))


def test_a_run_of_a_sweep_or_of_a_side_by_side_is_reused_under_the_models_name(tmp_path):
    sweep, out = tmp_path / "sweep", tmp_path / "out"
    (sweep / "ckpt_levt_lr7e-4").mkdir(parents=True)
    (sweep / "ckpt_levt_lr7e-4" / "checkpoint_last.pt").write_bytes(b"weights")
    (sweep / "logs").mkdir()
    (sweep / "logs" / "train_levt_lr7e-4.out").write_text(TRAIN_LOG)
    (sweep / "sweep.json").write_text(json.dumps({"levt_lr7e-4": {"minutes": 2.0}}))
    out.mkdir()
    summary = runner.reuse_run("levt", f"{sweep}:levt_lr7e-4", out)
    assert (out / "ckpt_levt" / "checkpoint_last.pt").read_bytes() == b"weights"
    assert (out / "logs" / "train_levt.out").read_text() == TRAIN_LOG
    assert (summary["updates"], summary["train_seconds"]) == (100, 120.0)
    # The run of a side by side's --out keeps the model's name, and its seconds come from train.json.
    (out / "train.json").write_text(json.dumps({"levt": {"train_seconds": 99.0}}))
    again = runner.reuse_run("levt", str(out), tmp_path / "again")
    assert again["train_seconds"] == 99.0 and again["checkpoint"] == str(tmp_path / "again" / "ckpt_levt" / "checkpoint_last.pt")
    with pytest.raises(SystemExit, match="no .*ckpt_levt_lr1e-3"):
        runner.reuse_run("levt", f"{sweep}:levt_lr1e-3", out)


def test_generate_args_put_the_callers_options_last():
    args = runner.generate_args("bin", "ck.pt", "--gen-subset valid --batch-size 7", subset="test")
    assert args.index("--gen-subset") < len(args) - 4 and args[-4:] == ["--gen-subset", "valid", "--batch-size", "7"]
    assert "--cpu" in args and "--cpu" not in runner.generate_args("bin", "ck.pt", "", device="cuda")


def test_first_lines_copies_the_subsets_references(tmp_path):
    ref = tmp_path / "test.ref1"
    ref.write_text("a\nb\nc\n")
    assert runner.first_lines([str(ref)], 2, tmp_path / "sub") == [str(tmp_path / "sub" / "test.ref1")]
    assert (tmp_path / "sub" / "test.ref1").read_text() == "a\nb\n"


# --- the declarative decode list -------------------------------------------------------------------------

def test_options_of_keeps_the_last_value_and_reads_switches():
    assert decodes.options_of("--a 1 --flag --a 2 --b x") == {"--a": "2", "--flag": "", "--b": "x"}
    with pytest.raises(ValueError, match="neither an option"):
        decodes.options_of("stray --a 1")


def side_by_side():
    return decodes.side_by_side([1, 3, 10], [5, 10, 20], ["dpm-solver++", "ddim-eta1"], CPU.early_stop)


def test_every_decode_uses_the_base_options_but_its_figures_variable():
    """The fix of issue #31: step-count and diversity decodes ran without the headline decode's
    shown-step floor and rounding. Each decode now keeps every base option its section does not vary."""
    base = decodes.options_of(CPU.decode)
    for item in side_by_side():
        options = decodes.options_of(item.flags(CPU.decode))
        kept = {key: value for key, value in base.items() if key not in decodes.SECTION_OPTIONS[item.section]}
        assert {key: options[key] for key in kept} == kept, item
        assert set(decodes.options_of(item.options)) <= set(decodes.SECTION_OPTIONS[item.section]), item
    steps = {item.key: decodes.options_of(item.flags(CPU.decode)) for item in side_by_side() if item.section == "steps"}
    for key in ("--shown-timestep-fraction", "--rounding"):
        assert all(options[key] == base[key] for options in steps.values())


def test_points_of_one_figure_differ_only_in_the_figures_variable():
    for section, variables in decodes.SECTION_OPTIONS.items():
        items = [decodes.options_of(i.flags(CPU.decode)) for i in side_by_side() if i.section == section]
        fixed = [{k: v for k, v in options.items() if k not in variables} for options in items]
        assert fixed and all(f == fixed[0] for f in fixed), section


def test_the_tables_step_count_is_the_same_decode_as_the_s1_row():
    by_key = {(item.section, item.key): item for item in side_by_side()}
    assert by_key["steps", "20"].identity(CPU.decode) == by_key["mbr", "1"].identity(CPU.decode)
    assert by_key["steps", "10"].identity(CPU.decode) != by_key["mbr", "1"].identity(CPU.decode)
    timed = {(item.section, item.key) for item in side_by_side() if item.timed}
    assert timed == {("mbr", "1"), ("early_stop", "stop1")}
    assert [item.key for item in side_by_side() if item.history] == ["dpm-solver++"]


def test_a_decode_may_not_set_options_outside_its_section():
    with pytest.raises(ValueError, match="may not set"):
        decodes.Decode("steps", "20", "steps20", "--diffusion-steps 20 --rounding l2")
    with pytest.raises(ValueError, match="unknown 'ddpm'"):
        decodes.side_by_side([1], [20], ["ddpm"], CPU.early_stop)


# --- strict JSON and the report -----------------------------------------------------------------------------

def refuse(constant):
    raise ValueError(f"{constant} is not JSON")


def test_compare_json_holds_null_where_a_value_is_not_a_number(tmp_path):
    path = tmp_path / "compare.json"
    report.write_json(path, {"speed": {"process_seconds": math.nan, "list": [math.inf, 1.5]}, "n": 3})
    assert json.loads(path.read_text(), parse_constant=refuse) == {
        "speed": {"process_seconds": None, "list": [None, 1.5]}, "n": 3}


def metrics(bleu, **extra):
    return {"bleu": bleu, "sacrebleu": bleu, "rouge_l": 0.5, "dist_1": 0.9, "self_bleu": extra.get("self_bleu"),
            "div_4": extra.get("div_4"), "avg_len": 9.0, "candidates_per_source": extra.get("candidates", 1)}


def speed(per_second):
    return {"sentences_per_s": per_second, "peak_rss_mib": None, "process_seconds": None}


def results():
    """Results as compare.json holds them after strict(): a decode read back has null timings."""
    curve = [{"updates": 200, "loss": 2.0, "bleu": 5.0, "minutes": 3.0}]
    train = {"train_tokens_per_s": 1000.0, "updates": 200, "train_peak_rss_mib": None, "valid_curve": curve}
    entry = lambda bleu, per_second, **extra: {"metrics": metrics(bleu, **extra), "speed": speed(per_second)}  # noqa: E731
    return {
        "diffuseq": {
            "train": train,
            "mbr": {"1": entry(0.10, 20.0), "3": entry(0.11, 8.0, self_bleu=0.5, div_4=0.6, candidates=3),
                    "10": entry(0.12, 2.0, self_bleu=0.4, div_4=0.7, candidates=10)},
            "early_stop": {"stop1": entry(0.10, 60.0), "stop10": entry(0.12, None)},
            "diversity": {"dpm-solver++": entry(0.11, 8.0, self_bleu=0.3, div_4=0.8, candidates=3),
                          "ddim eta=1": entry(0.09, 8.0, self_bleu=0.2, div_4=0.9, candidates=3)},
            "steps": {"5": entry(0.06, 60.0), "10": entry(0.09, 35.0), "20": entry(0.10, 20.0)},
            "history": [{"step": s, "bleu": s / 40, "div_4": 1 - s / 40} for s in range(1, 21)],
            "history_decode": f"{CPU.decode} --sampler dpm-solver++ --mbr-candidates 3 --nbest 3 --retain-iter-history",
        },
        "levt": {"train": dict(train, valid_curve=[]), "decode": {
            "metrics": metrics(0.2), "speed": speed(50.0), "deterministic_diversity": {"self_bleu": 1.0, "div_4": 0.33}}},
    }


def test_the_table_prints_n_a_for_null_values():
    text = report.table(results(), CPU.early_stop)
    assert "DiffuSeq MBR |S|=10" in text and "ratios: BLEU DiffuSeq(MBR 10)/LevT = 0.600" in text
    assert "n/a / n/a" in text  # peak memory of a decode read back
    assert "n/a the time of |S|=1 with it" in text  # the early-stopping ratio without a speed
    assert "LevT      no validation in the budget" in text


def test_the_multi_reference_block_lists_models_baselines_and_the_human_ceiling():
    data = results()
    row = {"all": metrics(0.3), "leave_one_out": metrics(0.25)}
    data["multi_reference"] = {"split": "test", "files": ["r1", "r2", "r3", "r4"], "references_per_source": 4,
                               "diffuseq": {"1": row, "10": row}, "levt": row,
                               "baselines": {"copy_source": row, "human": {"leave_one_out": metrics(0.4)}}}
    lines = report.multi_reference_lines(data)
    assert lines[0].startswith("multi-reference (test split, 4 references: r1, r2, r3, r4 in .;")
    text = "\n".join(lines)
    for label in ("DiffuSeq |S|=1", "DiffuSeq |S|=10", "LevT", "copy the source", "human (1 reference vs the other 3)"):
        assert label in text
    human = next(line for line in lines if "human" in line).split()
    assert human[-6:] == ["-", "40.00", "-", "40.00", "-", "50.00"]  # no 4-reference score for one of the four


# --- multi-reference scoring ---------------------------------------------------------------------------------

REFERENCE_SETS = [["a small dog is seen by the cat", "the cat is watching a small dog", "it is the cat that sees a small dog",
                   "there is a cat that sees a small dog"],
                  ["a goat is carried by the boy", "the boy is carrying a goat", "it is the boy that carries a goat",
                   "there is a boy that carries a goat"]]


def test_leave_one_out_averages_the_four_ways_and_the_human_ceiling_scores_each_reference():
    selected = [refs[1] for refs in REFERENCE_SETS]  # a system that outputs the second reference
    scores = scoring.multi_reference(selected, [[s] for s in selected], REFERENCE_SETS)
    assert scores["all"]["bleu"] == pytest.approx(1.0)  # it is one of the four
    ways = [evaluate(selected, [r[0] for r in REFERENCE_SETS], [[s] for s in selected],
                             reference_sets=[refs[:k] + refs[k + 1:] for refs in REFERENCE_SETS])["bleu"] for k in range(4)]
    assert ways[1] < 1.0 and scores["leave_one_out"]["bleu"] == pytest.approx(sum(ways) / 4)
    human = scoring.human_ceiling(REFERENCE_SETS)
    each = [evaluate([r[k] for r in REFERENCE_SETS], [r[0] for r in REFERENCE_SETS],
                             [[r[k]] for r in REFERENCE_SETS],
                             reference_sets=[r[:k] + r[k + 1:] for r in REFERENCE_SETS])["rouge_l"] for k in range(4)]
    assert human["rouge_l"] == pytest.approx(sum(each) / 4)
    with pytest.raises(ValueError, match="two or more references"):
        scoring.human_ceiling([[r[0]] for r in REFERENCE_SETS])


# --- plots -------------------------------------------------------------------------------------------------------

def test_fig3_has_whole_candidate_counts_on_its_axis():
    fig = plots.figure_bleu_vs_candidates(results())
    ax = fig.axes[0]
    fig.canvas.draw()
    ticks = [tick for tick in ax.get_xticks() if ax.get_xlim()[0] <= tick <= ax.get_xlim()[1]]
    assert ticks and all(float(tick).is_integer() for tick in ticks)
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["DiffuSeq, MBR pick", "LevT"]


def test_fig4_plots_bleu_against_self_bleu_and_div4_with_a_readable_legend():
    fig = plots.figure_quality_vs_diversity(results())
    left, right = fig.axes
    assert "self-BLEU" in left.get_xlabel() and "div-4" in right.get_xlabel()
    legend = right.get_legend()
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels == ["DiffuSeq |S|=3 (MBR pick; 3 candidates)", "DiffuSeq |S|=10 (MBR pick; 10 candidates)",
                      "DiffuSeq dpm-solver++ (3 samples)", "DiffuSeq ddim eta=1 (3 samples)",
                      "LevT (deterministic: its samples are one)"]
    assert min(text.get_fontsize() for text in legend.get_texts()) >= 9
    levt = left.collections[-1].get_offsets()[0]
    assert list(levt) == pytest.approx([100.0, 20.0])  # self-BLEU 100: LevT's samples are one sentence


def test_figs_3_and_4_score_against_every_reference_when_the_results_hold_them():
    data = results()
    row = lambda bleu: {"all": metrics(bleu), "leave_one_out": metrics(bleu - 0.05)}  # noqa: E731
    data["multi_reference"] = {"references_per_source": 4, "diffuseq": {"3": row(0.31), "10": row(0.33)},
                               "diversity": {"dpm-solver++": row(0.32)}, "levt": row(0.21)}
    fig3 = plots.figure_bleu_vs_candidates(data).axes[0]
    assert list(fig3.lines[0].get_ydata()) == pytest.approx([10.0, 31.0, 33.0])  # |S|=1 not scored against them
    assert fig3.lines[1].get_ydata()[0] == pytest.approx(21.0) and fig3.get_ylabel() == "sentence BLEU (4 references)"
    left = plots.figure_quality_vs_diversity(data).axes[0]
    bleu = [collection.get_offsets()[0][1] for collection in left.collections]
    assert bleu == pytest.approx([31.0, 33.0, 32.0, 100 * data["diffuseq"]["diversity"]["ddim eta=1"]["metrics"]["bleu"], 21.0])


def test_fig5_names_the_sampler_and_tells_bleu_from_div4_in_a_legend():
    fig = plots.figure_reverse_process(results())
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert labels == ["BLEU of the MBR pick (dpm-solver++)", "div-4 of the 3 samples (dpm-solver++)"]
    assert "dpm-solver++" in fig.axes[0].get_title()


def test_fig6_labels_sit_beside_their_markers():
    fig = plots.figure_bleu_vs_time(results())
    annotations = [child for child in fig.axes[0].texts]
    assert [a.get_text() for a in annotations] == ["5 steps", "10 steps", "20 steps"]
    assert all(a.get_anncoords() == "offset points" and a.xyann != (0, 0) for a in annotations)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["DiffuSeq |S|=1", "LevT"]


def test_fig7_is_left_out_when_no_model_validated_with_bleu(tmp_path):
    data = results()
    assert plots.figure_validation_curves(data) is not None
    data["diffuseq"]["train"]["valid_curve"] = [{"updates": 200, "loss": 2.0, "bleu": None, "minutes": 3.0}]
    assert plots.figure_validation_curves(data) is None
    written = plots.write_plots(data, tmp_path)
    assert [os.path.basename(name) for name in written] == [
        "fig3_bleu_vs_candidates.png", "fig4_quality_diversity.png", "fig5_reverse_process.png", "fig6_bleu_vs_time.png"]
    assert all(os.path.getsize(name) > 1000 for name in written)


def test_importing_the_plots_prints_no_matplotlib_debug_lines():
    """fairseq sets the root logger to DEBUG; matplotlib logs at DEBUG while it is imported."""
    code = "import diffuseq_fairseq, logging; logging.basicConfig(level=logging.DEBUG); import diffuseq_fairseq.experiments.plots"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "matplotlib" not in proc.stdout + proc.stderr
