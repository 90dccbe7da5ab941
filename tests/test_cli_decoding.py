"""Decoding holes closed at the fairseq command line (issue #30): bad decoding options are refused at
start naming the option, interactive input without a word gets an empty hypothesis, a long interactive
line leaves its target the canvas it asks for, and an empty split file is named."""
import logging
import re
from pathlib import Path

import pytest
import torch

from fairseq_harness import (
    DIFFUSEQ_DECODE_FLAGS, DIFFUSEQ_TRAIN_FLAGS, FULL_BATCHES, create_dummy_data, generate_main, interactive_main,
    load_generator, parse_output, preprocess_data, train_model,
)

GENERATE = DIFFUSEQ_DECODE_FLAGS + FULL_BATCHES + ["--gen-subset", "valid", "--batch-size", "16"]


@pytest.fixture(scope="module")
def data_bin(tmp_path_factory) -> Path:
    """The harness's letter data, plus a pair holding the BPE markers "@@" and "▁" as words of the dictionary."""
    root = tmp_path_factory.mktemp("data")
    create_dummy_data(root / "raw", num_valid=6)
    for side, line in (("in", "a @@ b ▁ c"), ("out", "c ▁ b @@ a")):
        with open(root / "raw" / f"train.{side}", "a") as f:
            f.write(line + "\n")
    preprocess_data(root / "raw", root / "bin")
    return root / "bin"


@pytest.fixture(scope="module")
def checkpoint(data_bin, tmp_path_factory) -> Path:
    return train_model(data_bin, tmp_path_factory.mktemp("ckpt"), DIFFUSEQ_TRAIN_FLAGS + ["--max-epoch", "1"])


@pytest.mark.parametrize("flags, message", [
    (["--diffusion-steps", "0"], r"--diffusion-steps must be in \[1, 100\], got 0"),
    (["--diffusion-steps", "-1"], r"--diffusion-steps must be in \[1, 100\], got -1"),
    (["--ddim-eta", "1.5"], r"--ddim-eta must be in \[0, 1\], got 1.5"),
    (["--ddim-eta", "-0.1"], r"--ddim-eta must be in \[0, 1\], got -0.1"),
    (["--canvas-len-a", "-1"], r"the canvas rule -1.0·\|x\|\+5 leaves -121 target positions to a 126-token source; "
                                r"a canvas needs at least 2 \(a word and its specials\): check --canvas-len-a"),
    (["--canvas-len-a", "0", "--canvas-len-b", "1"], r"the canvas rule 0.0·\|x\|\+1 leaves 1 target positions to a "
                                                    r"2-token source"),
    (["--max-total-len", "3"], r"--max-total-len 3 leaves no room .* at least 4"),
])
def test_bad_decoding_options_are_refused_at_start(data_bin, checkpoint, flags, message):
    with pytest.raises(ValueError, match=message):
        generate_main(data_bin, checkpoint, GENERATE + flags)


def test_max_total_len_has_one_lower_bound_in_interactive_too(data_bin, checkpoint):
    with pytest.raises(ValueError, match=r"--max-total-len 2 leaves no room"):
        interactive_main(data_bin, checkpoint, ["a b c"], DIFFUSEQ_DECODE_FLAGS + ["--max-total-len", "2"])


def test_the_default_steps_of_the_trained_range_are_all_its_steps(data_bin, tmp_path):
    """--step-range trained without --diffusion-steps runs every step of [F·T, T) with ddpm (auto)."""
    clipped = train_model(data_bin, tmp_path / "ckpt", DIFFUSEQ_TRAIN_FLAGS + ["--max-epoch", "1",
                                                                              "--min-timestep-fraction", "0.5"])
    flags = ["--user-dir", DIFFUSEQ_DECODE_FLAGS[1], "--task", "diffuseq", "--step-range", "trained", "--cpu"]
    generator = load_generator(data_bin, clipped, flags)
    assert (generator.options.num_steps, generator.options.sampler, generator.options.lowest_step) == (50, "ddpm", 50)


def test_lines_without_a_word_get_an_empty_hypothesis(data_bin, checkpoint, caplog):
    """An empty line and lines of BPE markers only: fairseq's LevT echoes an empty hypothesis; so does
    DiffuSeq, for each of its --nbest, instead of a sentence made up from no source."""
    lines = ["", "@@ @@", "▁", "a b c"]
    with caplog.at_level(logging.WARNING):
        out = parse_output(interactive_main(data_bin, checkpoint, lines, DIFFUSEQ_DECODE_FLAGS))
    for sample_id in ("0", "1", "2"):
        assert out["H"][sample_id] == [["0.0", ""]] * 2
    assert len(out["H"]["3"]) == 2 and out["S"]["3"] == [["a b c"]]
    assert caplog.text.count("an input line holds no word (empty or only BPE markers): its hypothesis is empty") == 3


def test_a_long_line_is_cut_so_that_its_target_keeps_the_canvas_it_asks_for(data_bin, checkpoint, caplog):
    """Official truncation between the source and the canvas its rule asks for (1.5·|x|+5): pop from the
    longer side. A 401-token source under --max-total-len 64 keeps 32 tokens and its target 32 positions,
    where cutting the source alone to 62 tokens left the target 2 positions: one word."""
    long_line = " ".join("abcdefghij" * 40)
    with caplog.at_level(logging.WARNING):
        out = parse_output(interactive_main(data_bin, checkpoint, ["a b c", long_line],
                                            DIFFUSEQ_DECODE_FLAGS + ["--max-total-len", "64"]))
    assert out["S"]["0"] == [["a b c"]]
    assert len(out["S"]["1"][0][0].split()) == 31  # and </s>
    assert ("cut an input line of 401 tokens to 32 (--max-total-len 64, canvas rule 1.5·|x|+5): its target keeps "
            "32 positions") in caplog.text


def test_nbest_above_the_candidates_warns_once(data_bin, checkpoint, caplog):
    with caplog.at_level(logging.WARNING):
        out = parse_output(generate_main(data_bin, checkpoint, GENERATE + ["--nbest", "3", "--mbr-candidates", "2",
                                                                           "--diffusion-steps", "2"]))
    assert all(len(hypos) == 2 for hypos in out["H"].values())
    warnings = [r.getMessage() for r in caplog.records if "--nbest" in r.getMessage()]
    assert warnings == ["--nbest 3 is more than --mbr-candidates 2: each sentence has 2 hypotheses to print"]


def test_an_empty_split_file_is_named(data_bin, checkpoint, tmp_path):
    raw = tmp_path / "raw"
    create_dummy_data(raw, num_train=20, num_valid=0)
    preprocess_data(raw, tmp_path / "bin")
    empty = tmp_path / "bin" / "valid.in-out.in.bin"
    assert empty.stat().st_size == 0
    with pytest.raises(ValueError, match=re.escape(f"{empty} is empty: split valid holds no sentence")):
        generate_main(tmp_path / "bin", checkpoint, GENERATE)


def test_the_bleu_line_names_the_decode(data_bin, checkpoint):
    out = generate_main(data_bin, checkpoint, GENERATE + ["--mbr-candidates", "2", "--diffusion-steps", "3"])
    last = out.strip().splitlines()[-1]
    assert last.startswith("Generate valid with beam=2: BLEU4 = "), last


def test_the_bleu_line_scores_the_printed_hypotheses(data_bin, checkpoint, monkeypatch):
    """Hypotheses equal to the references score BLEU4 = 100: the line measures what is printed."""
    from diffuseq_fairseq.generator import DiffuSeqGenerator

    def references(self, models, sample, **unused):
        rows = [row[row.ne(self.pad)] for row in sample["target"]]
        return [[{"tokens": row, "score": torch.tensor(0.0), "positional_scores": torch.zeros(len(row)),
                  "alignment": None, "steps": 1}] for row in rows]

    monkeypatch.setattr(DiffuSeqGenerator, "generate", references)
    last = generate_main(data_bin, checkpoint, GENERATE).strip().splitlines()[-1]
    assert "BLEU4 = 100.00" in last, last


def test_a_diffuseq_layout_checkpoint_trains_and_decodes_in_its_layout(data_bin, tmp_path):
    """--token-layout diffuseq: source <s> x </s> </s>, target <s> y </s> (the official sequence), in
    training and, without the option on the command line, in every decode of the checkpoint."""
    from fairseq import checkpoint_utils, options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    checkpoint = train_model(data_bin, tmp_path / "ckpt",
                             DIFFUSEQ_TRAIN_FLAGS + ["--max-epoch", "1", "--token-layout", "diffuseq"])
    assert str(torch.load(checkpoint)["cfg"]["model"]["token_layout"]) == "diffuseq"
    args = options.parse_args_and_arch(options.get_generation_parser(),
                                       [str(data_bin), "--path", str(checkpoint)] + GENERATE)
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    models, saved = checkpoint_utils.load_model_ensemble([str(checkpoint)], task=task)
    task.load_dataset("valid", task_cfg=saved.task)  # as fairseq-generate calls it
    item = task.dataset("valid")[0]
    bos, eos = task.tgt_dict.bos(), task.tgt_dict.eos()
    assert item["source"][0] == bos and item["source"][-2:].tolist() == [eos, eos]
    assert item["target"][0] == bos and item["target"][-1] == eos and (item["target"][1:-1] > eos).all()
    task.build_generator(models, cfg.generation)
    line = task.build_dataset_for_inference([task.src_dict.encode_line("a b c")], [4])[0]["source"]
    assert line.tolist() == [bos] + task.src_dict.encode_line("a b c").tolist() + [eos]
    out = parse_output(generate_main(data_bin, checkpoint, GENERATE))
    assert len(out["H"]) == 6 and not any("<s>" in text for rows in out["H"].values() for _, text in rows)
    out = parse_output(interactive_main(data_bin, checkpoint, ["a b c", ""], DIFFUSEQ_DECODE_FLAGS))
    assert len(out["H"]["0"]) == 2 and out["H"]["1"] == [["0.0", ""]] * 2


def test_round_output_decodes(data_bin, checkpoint):
    out = parse_output(generate_main(data_bin, checkpoint, GENERATE + ["--round-output", "--diffusion-steps", "3"]))
    assert len(out["H"]) == 6 and all(len(rows) == 2 for rows in out["H"].values())


def test_end_penalty_reaches_the_generator_from_the_command_line(data_bin, checkpoint):
    """--end-penalty of fairseq-generate: a large negative one ends every output at once, a large positive
    one leaves no output empty."""
    def hypotheses(penalty):
        out = parse_output(generate_main(data_bin, checkpoint, GENERATE + ["--diffusion-steps", "3",
                                                                          "--end-penalty", str(penalty)]))
        return [words for rows in out["H"].values() for _, words in rows]

    assert hypotheses(-1000) == [""] * 12
    assert all(words for words in hypotheses(1000))
