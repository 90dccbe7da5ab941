"""diffuseq_fairseq.evaluation.readers: fairseq-generate and DiffuSeq jsonl outputs, candidate sets
from several files, and reference files (line k = id k)."""
import json

import pytest

from diffuseq_fairseq.evaluation import readers

GENERATE_OUTPUT = """\
2024-05-01 12:00:00 | INFO | fairseq_cli.generate | {'_name': None, 'common': {'seed': 1}}
2024-05-01 12:00:01 | INFO | fairseq.tasks | [src] dictionary: 30522 types
S-10\thow do i learn python ?
T-10\thow can i learn python quickly ?
H-10\t-0.41\thow can i learn python ?
D-10\t-0.41\thow can i learn python ?
P-10\t-0.1 -0.2 -0.3 -0.4 -0.5 -0.6
H-10\t-0.93\thow do i learn python [PAD]
D-10\t-0.93\thow do i learn python [PAD]
P-10\t-0.2 -0.2 -0.3 -0.4 -0.5 -0.6
I-10\t10
E-10_0\twhat what what
2024-05-01 12:00:02 | INFO | fairseq_cli.generate | some progress line
S-2\twhy is the sky blue ?
T-2\t
H-2\t-0.20\twhy is the sky blue ?
D-2\t-0.20\twhy is the sky blue ?
H-2\t-0.50\twhy sky blue
D-2\t-0.50\twhy sky blue
Generate test with beam=2: BLEU4 = 10.00, 40.0/20.0/10.0/5.0 (BP=1.000, ratio=1.000)
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_fairseq_generate_reader(tmp_path):
    gens = readers.read_file(_write(tmp_path, "gen.txt", GENERATE_OUTPUT))
    assert gens.ids == [2, 10]
    assert gens.references == ["", "how can i learn python quickly ?"]
    assert gens.sources == ["why is the sky blue ?", "how do i learn python ?"]
    assert gens.candidates == [
        ["why is the sky blue ?", "why sky blue"],
        ["how can i learn python ?", "how do i learn python"],
    ]
    assert gens.selected == ["why is the sky blue ?", "how can i learn python ?"]


def test_fairseq_reader_falls_back_to_h_lines(tmp_path):
    text = "T-0\tx y\nH-0\t-1.0\tx y\nH-0\t-2.0\tx z\n"
    assert readers.read_file(_write(tmp_path, "h.txt", text)).candidates == [["x y", "x z"]]


def test_fairseq_reader_missing_target(tmp_path):
    text = "S-0\ta\nT-0\ta\nD-0\t-1\ta\nS-1\tb\nH-1\t-1\tb\nD-1\t-1\tb\n"
    path = _write(tmp_path, "no_target.txt", text)
    with pytest.raises(ValueError, match=r"no_target\.txt:5: id 1 "):
        readers.read_file(path)


def test_jsonl_reader_merges_seeds(tmp_path):
    seed1 = [
        {
            "recover": "[CLS] how are you [SEP] [PAD] [PAD]",
            "reference": "[CLS] how are you ? [SEP]",
            "source": "[CLS] hi [SEP]",
        },
        {"recover": "[CLS] fine [SEP]", "reference": "[CLS] i am fine [SEP]", "source": "[CLS] and you [SEP]"},
    ]
    seed2 = [dict(r, recover=r["recover"].replace("you", "u").replace("fine", "good")) for r in seed1]
    paths = [
        _write(tmp_path, f"seed{i}.json", "".join(json.dumps(r) + "\n" for r in rows))
        for i, rows in enumerate([seed1, seed2])
    ]
    gens = readers.read_files(paths)
    assert gens.ids == [0, 1]
    assert gens.references == ["how are you ?", "i am fine"]
    assert gens.sources == ["hi", "and you"]
    assert gens.candidates == [["how are you", "how are u"], ["fine", "good"]]


def test_jsonl_reader_bad_json(tmp_path):
    path = _write(tmp_path, "broken.jsonl", '{"recover": "a", "reference": "a", "source": ""}\n{"recover": "a",\n')
    with pytest.raises(ValueError, match=r"broken\.jsonl:2: invalid JSON"):
        readers.read_file(path)


def test_read_files_rejects_mismatched_seeds(tmp_path):
    one = _write(tmp_path, "one.json", json.dumps({"recover": "a", "reference": "a"}) + "\n")
    two = _write(tmp_path, "two.json", json.dumps({"recover": "a", "reference": "b"}) + "\n")
    with pytest.raises(ValueError, match="reference of id 0"):
        readers.read_files([one, two])


def test_concatenated_output_is_an_error_naming_file_and_line(tmp_path):
    """`cat gen.txt gen.txt > g2.txt` used to read as 2 candidates per source (self-BLEU 1.0)."""
    path = _write(tmp_path, "g2.txt", GENERATE_OUTPUT + GENERATE_OUTPUT)
    second_s_10 = len(GENERATE_OUTPUT.splitlines()) + 3
    with pytest.raises(ValueError, match=rf"g2\.txt:{second_s_10}: second S- line for id 10 \(the first is line 3\)"):
        readers.read_file(path)
    only_targets = "".join(line + "\n" for line in GENERATE_OUTPUT.splitlines() if not line.startswith("S-"))
    with pytest.raises(ValueError, match=r"t2\.txt:\d+: second T- line for id 10"):
        readers.read_file(_write(tmp_path, "t2.txt", only_targets * 2))


def test_nbest_block_still_reads_as_candidates(tmp_path):
    text = "S-0\tx\nT-0\tx y\n" + "".join(f"H-0\t-{k}\tx{k}\nD-0\t-{k}\tx{k}\nP-0\t-1\n" for k in range(4))
    assert readers.read_file(_write(tmp_path, "nbest.txt", text)).candidates == [["x0", "x1", "x2", "x3"]]


def test_the_same_file_twice_is_an_error(tmp_path):
    path = _write(tmp_path, "gen.txt", GENERATE_OUTPUT)
    (tmp_path / "link.txt").symlink_to(path)
    for second in (path, str(tmp_path / "link.txt")):
        with pytest.raises(ValueError, match=f"{second}: the same file as {path}"):
            readers.read_files([path, second])


def test_bpe_lines_are_counted(tmp_path):
    text = "S-0\tdie kat@@ ze\nT-0\tthe cat\nH-0\t-1\tthe c@@ at\nD-0\t-1\tthe cat@@\nP-0\t-1 -1\n"
    assert readers.read_file(_write(tmp_path, "bpe.txt", text)).bpe_lines == 3
    assert readers.read_file(_write(tmp_path, "plain.txt", GENERATE_OUTPUT)).bpe_lines == 0
    record = {"recover": "the c@@ at", "reference": "the cat", "source": "x"}
    assert readers.read_file(_write(tmp_path, "bpe.jsonl", json.dumps(record) + "\n")).bpe_lines == 1
    assert not readers.has_bpe("email@@example.com") and readers.has_bpe("a@@ b")


# ---------------------------------------------------------------- reference files


def test_read_reference_files(tmp_path):
    first = _write(tmp_path, "test.ref1", "a cat\r\n[CLS] two  dogs [SEP]\n\n")
    second = _write(tmp_path, "test.ref2", "one cat\nsome dogs\nnothing\n")
    assert readers.read_reference_files([first, second], [0, 1, 2]) == [
        ["a cat", "one cat"], ["two dogs", "some dogs"], ["", "nothing"]]
    assert readers.read_reference_files([second], [0, 1, 2]) == [["one cat"], ["some dogs"], ["nothing"]]


def test_reference_file_with_another_line_count_is_an_error(tmp_path):
    short = _write(tmp_path, "test.ref3", "a\nb\n")
    with pytest.raises(ValueError, match=r"test\.ref3: 2 lines, but gen\.txt holds 3 sources \(ids 0\.\.2\)"):
        readers.read_reference_files([short], [0, 1, 2], scored="gen.txt")


def test_reference_files_need_ids_0_to_n_minus_1(tmp_path):
    refs = _write(tmp_path, "test.ref1", "a\nb\nc\n")
    with pytest.raises(ValueError, match=r"gen\.txt: reference files need the ids 0\.\.N-1 .* 1 are missing \(1\)"):
        readers.read_reference_files([refs], [0, 2], scored="gen.txt")
    with pytest.raises(ValueError, match=r"3 are missing \(0, 1, 2\).*--required-batch-size-multiple"):
        readers.read_reference_files([refs], [3], scored="gen.txt")
    with pytest.raises(ValueError, match="no reference files"):
        readers.read_reference_files([], [0])
