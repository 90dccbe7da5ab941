"""The reverse-diffusion generator on a tiny random network (no fairseq CLI): hypothesis protocol,
MBR ordering, candidate batching, seeding and history."""
import pytest
import torch

from diffuseq_fairseq.generator import DecodingOptions, DiffuSeqGenerator
from diffuseq_fairseq.network import DiffuSeqNetwork, NetworkConfig

PAD, BOS, EOS, VOCAB = 1, 0, 2, 20


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    cfg = NetworkConfig(encoder_layers=1, encoder_embed_dim=32, encoder_attention_heads=2,
                        encoder_ffn_embed_dim=64, latent_dim=8, num_timesteps=50)
    return DiffuSeqNetwork(cfg, VOCAB, PAD)


def sample():
    src = torch.tensor([[5, 6, 7, EOS], [8, 9, EOS, PAD]])
    return {"id": torch.tensor([3, 7]), "net_input": {"src_tokens": src, "src_lengths": torch.tensor([4, 3])}}


def make(sampler="dpm-solver++", steps=5, candidates=3, seed=1, history=False, eta=0.0, stop=0,
         canvas=lambda lengths: torch.full_like(lengths, 6), lowest=0, shown_floor=0, output_ids=None, ranking="mbr"):
    return DiffuSeqGenerator(DecodingOptions(
        special_ids=(PAD, BOS, EOS), sampler=sampler, num_steps=steps, total_steps=50, step_spacing="uniform",
        eta=eta, rounding="l2", num_candidates=candidates, canvas_length=canvas, retain_history=history,
        base_seed=seed, stop_when_stable=stop, lowest_step=lowest, shown_step_floor=shown_floor,
        output_ids=output_ids, ranking=ranking))


def record_predictions(network, monkeypatch) -> list:
    """A list that receives every x̂0 the network predicts from now on."""
    predictions = []
    denoise = network.denoise

    def recording(*args, **kwargs):
        predictions.append(denoise(*args, **kwargs))
        return predictions[-1]

    monkeypatch.setattr(network, "denoise", recording)
    return predictions


@pytest.mark.parametrize("sampler, steps, eta", [("ddpm", 50, 0.0), ("ddim", 10, 0.5), ("dpm-solver++", 5, 0.0)])
def test_hypothesis_protocol(network, sampler, steps, eta):
    hypos = make(sampler, steps, eta=eta).generate([network], sample())
    assert len(hypos) == 2 and all(len(h) == 3 for h in hypos)
    for hypo in (h for sentence in hypos for h in sentence):
        tokens = hypo["tokens"]
        assert tokens[-1] == EOS and not (tokens[:-1] == PAD).any() and not (tokens[:-1] == EOS).any()
        assert isinstance(hypo["score"], torch.Tensor) and hypo["positional_scores"].shape == tokens.shape
        assert hypo["alignment"] is None and hypo["steps"] == steps


def test_candidates_are_ranked_by_mbr(network):
    from diffuseq_fairseq.mbr import mbr_order

    hypos = make(candidates=4).generate([network], sample())
    for sentence in hypos:
        tokens = [h["tokens"][:-1] for h in sentence]
        width = max(len(t) for t in tokens) or 1
        padded = torch.full((1, 4, width), PAD)
        for i, t in enumerate(tokens):
            padded[0, i, : len(t)] = t
        _, utility = mbr_order(padded, padded.ne(PAD))
        assert (utility[0][:-1] >= utility[0][1:] - 1e-9).all()  # returned best first


def test_ranking_by_score_orders_the_same_candidates_by_their_mean_log_probability(network):
    by_mbr = make(candidates=4).generate([network], sample())
    by_score = make(candidates=4, ranking="score").generate([network], sample())
    for mbr_sentence, score_sentence in zip(by_mbr, by_score):
        scores = [float(h["score"]) for h in score_sentence]
        assert scores == sorted(scores, reverse=True)
        assert all(float(h["score"]) == pytest.approx(float(h["positional_scores"].mean())) for h in score_sentence)
        assert sorted(h["tokens"].tolist() for h in mbr_sentence) == sorted(h["tokens"].tolist() for h in score_sentence)


def test_same_seed_same_output_and_other_seed_differs(network):
    def tokens(seed):
        return [h["tokens"].tolist() for s in make(seed=seed, candidates=2).generate([network], sample()) for h in s]

    assert tokens(11) == tokens(11)
    assert tokens(11) != tokens(12)


def test_candidates_of_a_sentence_do_not_depend_on_the_batch(network):
    """Noise is drawn per (sentence id, candidate), so decoding a sentence alone gives the same output."""
    full = make(candidates=2).generate([network], sample())
    alone = sample()
    alone["id"] = alone["id"][:1]
    alone["net_input"] = {"src_tokens": alone["net_input"]["src_tokens"][:1], "src_lengths": torch.tensor([4])}
    single = make(candidates=2).generate([network], alone)
    assert [h["tokens"].tolist() for h in single[0]] == [h["tokens"].tolist() for h in full[0]]


def test_history_has_one_entry_per_step(network):
    hypos = make(steps=4, history=True).generate([network], sample())
    assert all(len(h["history"]) == 4 for s in hypos for h in s)
    assert all(entry["tokens"][-1] == EOS for s in hypos for h in s for entry in h["history"])


@pytest.fixture
def shown_steps(network, monkeypatch):
    """The distinct steps the network is shown, one list per model call."""
    seen = []
    denoise = network.denoise

    def recording(x, t, *args, **kwargs):
        seen.append(sorted(set(t.tolist())))
        return denoise(x, t, *args, **kwargs)

    monkeypatch.setattr(network, "denoise", recording)
    return seen


def test_lowest_step_keeps_every_model_call_in_range(network, shown_steps):
    hypos = make(steps=3, lowest=40).generate([network], sample())
    assert shown_steps == [[49], [44], [40]]  # the last call at the lowest step, whose x̂0 is the output
    assert all(h["tokens"][-1] == EOS for s in hypos for h in s)


def test_shown_step_floor_changes_what_the_model_sees_not_the_path(network, shown_steps):
    make(steps=3, lowest=40).generate([network], sample())
    path = shown_steps[:]
    shown_steps.clear()
    hypos = make(steps=3, lowest=40, shown_floor=45).generate([network], sample())
    assert path == [[49], [44], [40]] and shown_steps == [[49], [45], [45]]
    assert all(h["tokens"][-1] == EOS for s in hypos for h in s)


def test_encode_source_once_matches_shapes(network):
    cfg = NetworkConfig(**{**network.cfg.__dict__, "encode_source_once": True})
    cached = DiffuSeqNetwork(cfg, VOCAB, PAD)
    hypos = make().generate([cached], sample())
    assert len(hypos) == 2 and all(len(h) == 3 for h in hypos)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        make(sampler="euler")
    with pytest.raises(ValueError, match="mbr-candidates"):
        make(candidates=0)
    with pytest.raises(ValueError, match="stop-when-stable"):
        make(stop=-1)


class RecordingDenoiser(torch.nn.Module):
    """Wraps a network and records the batch size of every denoiser call. With ``words``, x̂0 is
    always those words' embeddings, so the words are stable from the first step."""

    def __init__(self, network, words=None):
        super().__init__()
        self.inner, self.calls = network, []
        self.words = None if words is None else torch.tensor(words)
        self.cfg, self.diffusion, self.mean_embed = network.cfg, network.diffusion, network.mean_embed
        self.embed_tokens, self.encode_source = network.embed_tokens, network.encode_source
        self.word_embeddings, self.output_bias = network.word_embeddings, network.output_bias

    def denoise(self, x, t, source, self_cond=None, target_mask=None):
        self.calls.append(x.size(0))
        if self.words is None:
            return self.inner.denoise(x, t, source, self_cond, target_mask=target_mask)
        return self.word_embeddings()[self.words].expand(x.size(0), -1, -1).clone()


def test_stop_when_stable_finishes_settled_rows_with_the_same_output(network):
    constant = RecordingDenoiser(network, [5, 6, 7, 8, EOS, PAD])
    full = make(steps=10, candidates=1).generate([constant], sample())
    constant.calls.clear()
    early = make(steps=10, candidates=1, stop=2).generate([constant], sample())
    assert constant.calls == [2, 2, 2]  # words unchanged at steps 2 and 3: both rows stop after 3 calls
    for full_s, early_s in zip(full, early):
        assert early_s[0]["tokens"].tolist() == full_s[0]["tokens"].tolist()
        assert early_s[0]["steps"] == 3 and full_s[0]["steps"] == 10


def test_stop_when_stable_longer_than_the_schedule_changes_nothing(network):
    plain = make(steps=6, candidates=2, seed=3).generate([network], sample())
    patient = make(steps=6, candidates=2, seed=3, stop=6).generate([network], sample())
    assert [[h["tokens"].tolist() for h in s] for s in plain] == [[h["tokens"].tolist() for h in s] for s in patient]


def test_stopped_rows_do_not_depend_on_the_batch(network):
    """Early stopping drops rows from the batch; a sentence decoded alone still gets the same candidates."""
    full = make(steps=10, seed=5, stop=1).generate([network], sample())
    alone = sample()
    alone["id"] = alone["id"][1:]
    alone["net_input"] = {"src_tokens": alone["net_input"]["src_tokens"][1:, :3], "src_lengths": torch.tensor([3])}
    single = make(steps=10, seed=5, stop=1).generate([network], alone)
    assert sorted(h["tokens"].tolist() for h in single[0]) == sorted(h["tokens"].tolist() for h in full[1])


def test_rows_are_decoded_in_length_groups_and_returned_in_batch_order(network):
    """20 long and 20 short sources: two groups, each decoded with its own canvas, as if it had
    been a batch of its own."""
    torch.manual_seed(1)
    lengths = torch.tensor([10, 3] * 20)
    src = torch.full((40, 10), PAD)
    for row, n in enumerate(lengths.tolist()):
        src[row, : n - 1] = torch.randint(4, VOCAB, (n - 1,))
        src[row, n - 1] = EOS
    ids = torch.arange(100, 140)
    generator = make(steps=4, candidates=1, canvas=lambda n: n + 2)
    assert [g.tolist() for g in generator._length_groups(lengths)] == [list(range(0, 40, 2)), list(range(1, 40, 2))]
    whole = generator.generate([network], {"id": ids, "net_input": {"src_tokens": src, "src_lengths": lengths}})
    for rows, width in ((slice(0, 40, 2), 10), (slice(1, 40, 2), 3)):
        part = generator.generate([network], {"id": ids[rows], "net_input": {"src_tokens": src[rows, :width],
                                                                            "src_lengths": lengths[rows]}})
        assert [h[0]["tokens"].tolist() for h in part] == [h[0]["tokens"].tolist() for h in whole[rows]]


def test_output_is_lm_head_of_the_last_prediction_with_its_log_probs(network, monkeypatch):
    """Words and scores come from lm_head(x̂0) of the last model call, not from its rounding, an
    exact word embedding on which every log-prob was ≈ 0."""
    predictions = record_predictions(network, monkeypatch)
    (hypo,), _ = make(steps=1, candidates=1).generate([network], sample())
    log_probs = torch.log_softmax(predictions[-1][0] @ network.word_embeddings().t() + network.output_bias, -1)
    best, ids = log_probs.max(-1)
    words = [i for i in ids.tolist() if i not in (PAD, BOS)]
    n = words.index(EOS) if EOS in words else len(words)
    assert hypo["tokens"][:-1].tolist() == words[:n]
    kept = [p for p, i in enumerate(ids.tolist()) if i not in (PAD, BOS)][:n]
    assert torch.allclose(hypo["positional_scores"][:-1], best[kept])
    assert hypo["score"] < -0.1  # a random network is unsure of its words


@pytest.mark.parametrize("stop", [0, 1])
def test_output_ids_limit_every_word_and_all_ids_change_nothing(network, stop):
    allowed = torch.tensor([BOS, PAD, EOS, 4, 9, 13])
    for hypos in make(history=True, stop=stop, output_ids=allowed).generate([network], sample()):
        for hypo in hypos:
            for tokens in [hypo["tokens"]] + [h["tokens"] for h in hypo["history"]]:
                assert set(tokens.tolist()) <= set(allowed.tolist())

    def words(generator):
        return [[h["tokens"].tolist() for h in hypos] for hypos in generator.generate([network], sample())]

    assert words(make(stop=stop, output_ids=torch.arange(VOCAB))) == words(make(stop=stop))


@pytest.mark.parametrize("sampler, eta, stop", [("dpm-solver++", 0.0, 0), ("ddim", 0.0, 1)])
def test_a_sentence_decodes_the_same_alone_and_in_a_batch_with_longer_sentences(network, sampler, eta, stop):
    """Each row sees exactly its own canvas (noise drawn for it, the positions beyond it no attention
    keys, nothing read from them), so the longer sentences of a batch change nothing (issue #31)."""
    src = torch.tensor([[5, 6, EOS, PAD, PAD, PAD, PAD], [8, 9, 10, 11, 12, 13, EOS], [7, 4, 9, 11, 5, EOS, PAD]])
    lengths = torch.tensor([3, 7, 6])
    generator = make(sampler, steps=6, eta=eta, stop=stop, canvas=lambda n: n + 2)
    batch = generator.generate([network], {"id": torch.tensor([4, 5, 6]),
                                           "net_input": {"src_tokens": src, "src_lengths": lengths}})
    alone = generator.generate([network], {"id": torch.tensor([4]),
                                           "net_input": {"src_tokens": src[:1, :3], "src_lengths": lengths[:1]}})
    assert [h["tokens"].tolist() for h in alone[0]] == [h["tokens"].tolist() for h in batch[0]]
    assert [h["steps"] for h in alone[0]] == [h["steps"] for h in batch[0]]
    assert all(len(h["tokens"]) <= 5 + 1 for h in batch[0])  # canvas 5, and </s> when the model wrote none


def test_the_model_is_given_each_rows_canvas_as_its_target_mask(network, monkeypatch):
    masks = []
    denoise = network.denoise

    def recording(*args, target_mask=None, **kwargs):
        masks.append(target_mask.clone())
        return denoise(*args, target_mask=target_mask, **kwargs)

    monkeypatch.setattr(network, "denoise", recording)
    make(steps=2, candidates=2, canvas=lambda n: n + 2).generate([network], sample())  # lengths 4, 3
    assert [row.sum().item() for row in masks[0]] == [6, 6, 5, 5] and masks[0].shape == (4, 6)


def test_sources_without_a_word_get_empty_hypotheses(network):
    src = torch.tensor([[5, 6, 7, EOS], [EOS, PAD, PAD, PAD], [BOS, EOS, EOS, PAD]])
    sample = {"id": torch.tensor([3, 8, 9]), "net_input": {"src_tokens": src, "src_lengths": torch.tensor([4, 1, 3])}}
    hypos = make(candidates=2, history=True).generate([network], sample)
    for empty in hypos[1:]:
        assert len(empty) == 2
        assert all(h["tokens"].tolist() == [EOS] and h["score"] == 0 and h["history"] == [] for h in empty)
    alone = make(candidates=2, history=True).generate([network], {"id": torch.tensor([3]), "net_input": {
        "src_tokens": src[:1], "src_lengths": torch.tensor([4])}})
    assert [h["tokens"].tolist() for h in hypos[0]] == [h["tokens"].tolist() for h in alone[0]]


def test_round_output_outputs_lm_head_of_the_nearest_embedding_of_the_last_prediction(network, monkeypatch):
    """--round-output: the official p_sample_loop's last step returns the rounded x̂0."""
    predictions = record_predictions(network, monkeypatch)
    generator = DiffuSeqGenerator(DecodingOptions(special_ids=(PAD, BOS, EOS), num_steps=1, total_steps=50,
                                                  canvas_length=lambda n: torch.full_like(n, 6), round_output=True))
    (hypo,), _ = generator.generate([network], sample())
    table = network.word_embeddings()
    rounded = table[torch.cdist(predictions[-1][0], table).argmin(-1)]
    ids = (rounded @ table.t() + network.output_bias).argmax(-1).tolist()
    words = [i for i in ids if i not in (PAD, BOS)]
    assert hypo["tokens"][:-1].tolist() == words[: words.index(EOS) if EOS in words else len(words)]


def test_collapse_repeats_outputs_a_token_repeated_in_a_row_once():
    """--collapse-repeats: repeats in a row go, also across a padding position the output drops; the
    first occurrence keeps its log-prob; a word after another word may come back."""
    tokens = torch.tensor([[5, 5, PAD, 5, 6, 6, 5, EOS, 7]])
    scores = torch.arange(9, dtype=torch.float).neg().unsqueeze(0)
    inside = torch.ones_like(tokens, dtype=torch.bool)

    def compact(collapse):
        generator = DiffuSeqGenerator(DecodingOptions(special_ids=(PAD, BOS, EOS), num_steps=1, total_steps=50,
                                                      canvas_length=len, collapse_repeats=collapse))
        out, valid, kept_scores, end = generator._compact(tokens, scores, inside)
        n = int(valid.sum())
        return out[0, :n].tolist(), kept_scores[0, :n].tolist(), end.item()

    assert compact(False) == ([5, 5, 5, 6, 6, 5], [0, -1, -3, -4, -5, -6], -7)
    assert compact(True) == ([5, 6, 5], [0, -4, -6], -7)


def test_collapse_repeats_changes_only_the_repeats_of_the_same_candidates(network):
    from itertools import groupby

    plain = make(candidates=4).generate([network], sample())
    collapsed = DiffuSeqGenerator(DecodingOptions(**{**make(candidates=4).options.__dict__, "collapse_repeats": True}))
    repeats = 0
    for plain_sentence, collapsed_sentence in zip(plain, collapsed.generate([network], sample())):
        expected = sorted([key for key, _ in groupby(h["tokens"].tolist())] for h in plain_sentence)
        assert sorted(h["tokens"].tolist() for h in collapsed_sentence) == expected
        repeats += sum(len(h["tokens"]) for h in plain_sentence) - sum(map(len, expected))
    assert repeats > 0  # the random network does repeat itself, so the comparison is not vacuous


@pytest.mark.parametrize("penalty, output_ids", [(1.5, None), (-0.7, None), (2.0, torch.tensor([BOS, PAD, EOS, 4, 9, 13]))])
def test_end_penalty_reads_the_words_with_end_and_padding_logits_lowered(network, monkeypatch, penalty, output_ids):
    """--end-penalty P: the output words are argmax of lm_head(x̂0) with P taken off </s> and padding,
    within the output vocabulary; the reverse process (every model call) is the same as without it."""
    predictions = record_predictions(network, monkeypatch)
    options = make(steps=3, candidates=1, output_ids=output_ids).options
    (hypo,), _ = DiffuSeqGenerator(DecodingOptions(**{**options.__dict__, "end_penalty": penalty})).generate(
        [network], sample())
    with_penalty = [p.clone() for p in predictions]
    predictions.clear()
    make(steps=3, candidates=1, output_ids=output_ids).generate([network], sample())
    assert all(torch.equal(a, b) for a, b in zip(with_penalty, predictions))

    ids = torch.arange(VOCAB) if output_ids is None else output_ids
    bias = network.output_bias[ids].clone()
    bias[(ids == EOS) | (ids == PAD)] -= penalty
    read = ids[(with_penalty[-1][0] @ network.word_embeddings()[ids].t() + bias).argmax(-1)].tolist()
    words = [i for i in read if i not in (PAD, BOS)]
    assert hypo["tokens"][:-1].tolist() == words[: words.index(EOS) if EOS in words else len(words)]


def test_end_penalty_moves_the_output_length_both_ways(network):
    def lengths(penalty):
        options = {**make(candidates=2).options.__dict__, "end_penalty": penalty}
        return [len(h["tokens"]) - 1 for s in DiffuSeqGenerator(DecodingOptions(**options)).generate([network], sample())
                for h in s]

    assert lengths(-100.0) == [0, 0, 0, 0]  # every position prefers </s> or padding
    assert lengths(100.0) == [6, 6, 6, 6]  # no position does: every canvas position is a word
    with pytest.raises(ValueError, match="--end-penalty .* --length-beam"):
        DecodingOptions(**{**make().options.__dict__, "end_penalty": 1.0, "length_beam": 2, "total_length_limit": 128})
