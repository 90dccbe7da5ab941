"""How a pair becomes the model's two blocks: token layouts, the official truncation and the canvas rule."""
import numpy as np
import pytest
import torch
from fairseq.data import ListDataset

from diffuseq_fairseq.sequences import TOKEN_LAYOUTS, CanvasRule, TruncatedItems, truncate_pair_lengths

BOS, PAD, EOS = 0, 1, 2


def official_merge_and_mask(x, y, seq_len):
    """The official DiffuSeq pairing (diffuseq/text_datasets.py: merge_and_mask), written again for
    the test: [CLS] x and [CLS] y popped from the longer (both on ties) until they fit seq_len - 3,
    then [CLS] x [SEP] [SEP] [CLS] y [SEP]; the anchored span is the first len(src) + 1 tokens."""
    cls, sep = "[CLS]", "[SEP]"
    src, trg = [cls] + list(x), [cls] + list(y)
    while len(src) + len(trg) > seq_len - 3:
        if len(src) > len(trg):
            src.pop()
        elif len(src) < len(trg):
            trg.pop()
        else:
            src.pop()
            trg.pop()
    sequence = src + [sep] + [sep] + trg + [sep]
    return sequence[: len(src) + 2], sequence[len(src) + 2:]


@pytest.mark.parametrize("len_x, len_y, seq_len", [(5, 3, 128), (60, 90, 64), (40, 40, 50), (3, 30, 20), (9, 2, 12)])
def test_diffuseq_layout_is_the_official_sequence_with_the_official_truncation(len_x, len_y, seq_len):
    words = {f"x{i}": 10 + i for i in range(100)} | {f"y{i}": 200 + i for i in range(100)}
    x, y = [f"x{i}" for i in range(len_x)], [f"y{i}" for i in range(len_y)]
    source, target = official_merge_and_mask(x, y, seq_len)
    ids = {**words, "[CLS]": BOS, "[SEP]": EOS}
    layout = TOKEN_LAYOUTS["diffuseq"]
    stored_src = torch.tensor([words[w] for w in x] + [EOS])  # what fairseq-preprocess stores
    stored_tgt = torch.tensor([words[w] for w in y] + [EOS])
    src_len, tgt_len = truncate_pair_lengths(np.array([len(stored_src)]), np.array([len(stored_tgt)]),
                                             seq_len - layout.source_added - layout.target_added)
    src, tgt = (TruncatedItems(ListDataset([t]), n) for t, n in ((stored_src, src_len), (stored_tgt, tgt_len)))
    src, tgt = layout.wrap(src, tgt, BOS, EOS)
    assert src[0].tolist() == [ids[w] for w in source]
    assert tgt[0].tolist() == [ids[w] for w in target]
    assert len(src[0]) == src_len[0] + layout.source_added and len(tgt[0]) == tgt_len[0] + layout.target_added
    assert layout.wrap_source(TruncatedItems(ListDataset([stored_src]), src_len)[0], BOS, EOS).tolist() == src[0].tolist()


def test_fairseq_layout_adds_nothing():
    layout = TOKEN_LAYOUTS["fairseq"]
    tokens = torch.tensor([7, 8, EOS])
    assert layout.wrap_source(tokens, BOS, EOS).tolist() == [7, 8, EOS]
    src, tgt = layout.wrap(ListDataset([tokens]), ListDataset([tokens]), BOS, EOS)
    assert src[0].tolist() == tgt[0].tolist() == [7, 8, EOS]
    assert (layout.min_source, layout.min_target, layout.min_total) == (2, 2, 4)
    assert (TOKEN_LAYOUTS["diffuseq"].min_source, TOKEN_LAYOUTS["diffuseq"].min_target) == (4, 3)


def test_canvas_rule_lengths_per_row():
    rule = CanvasRule(1.5, 5, 64)
    assert rule.lengths(torch.tensor([2, 10, 40, 62])).tolist() == [8, 20, 24, 2]
    assert rule.lengths(torch.tensor([10, 10]), torch.tensor([5, 30])).tolist() == [20, 30]  # training: the target
    assert str(rule) == "1.5·|x|+5"


@pytest.mark.parametrize("a, b, message", [
    (-1, 5, "leaves -57 target positions to a 62-token source"),
    (0, 1, "leaves 1 target positions to a 2-token source"),
])
def test_a_rule_without_room_for_a_word_is_refused_naming_the_options(a, b, message):
    with pytest.raises(ValueError, match=message + r"; a canvas needs at least 2 .*--canvas-len-a and --canvas-len-b"):
        CanvasRule(a, b, 64).check(TOKEN_LAYOUTS["fairseq"])
    CanvasRule(1.5, 5, 64).check(TOKEN_LAYOUTS["fairseq"])
    CanvasRule(0, 128, 128).check(TOKEN_LAYOUTS["diffuseq"])  # the paper's full canvas
    with pytest.raises(ValueError, match="at least 3"):
        CanvasRule(0, 2, 128).check(TOKEN_LAYOUTS["diffuseq"])


@pytest.mark.parametrize("layout, n, limit, kept", [
    ("fairseq", 401, 64, 32),  # the rule asks 607: pop the target to 401, then both to 32 + 32
    ("fairseq", 20, 64, 20),  # fits: 20 + 35 <= 64
    ("fairseq", 30, 64, 30),  # 1.5·30+5 = 50 > 34 left, but the source is the shorter side until 32
    ("fairseq", 100, 128, 64),
    ("diffuseq", 403, 64, 32),  # stored sides 401 and 610 - 1 against 64 - 3: 30 and 30, then the specials
])
def test_fit_source_keeps_the_canvas_the_rule_asks_for(layout, n, limit, kept):
    assert CanvasRule(1.5, 5, limit).fit_source(n, TOKEN_LAYOUTS[layout]) == kept
