"""The length predictor and the length beam without the fairseq CLIs: the head (shapes, the offset
classes, the loss term, lengths clamped to [1, limit - |x|]), the network and criterion around it,
and decoding on canvases of exactly the predicted lengths."""
import pytest
import torch
from fairseq.data import Dictionary

from diffuseq_fairseq.criterions.diffuseq_loss import DiffuSeqLoss
from diffuseq_fairseq.generator import DecodingOptions, DiffuSeqGenerator, StepsAndLength
from diffuseq_fairseq.length import LengthPredictor, likeliest_lengths
from diffuseq_fairseq.models.diffuseq import DiffuSeqModel
from diffuseq_fairseq.network import DiffuSeqNetwork, NetworkConfig
from diffuseq_fairseq.network_records import TrainingNoise
from diffuseq_fairseq.tasks.diffuseq import DiffuSeqConfig, DiffuSeqTask

PAD, BOS, EOS, VOCAB = 1, 0, 2, 20
SMALL = dict(encoder_layers=1, encoder_embed_dim=32, encoder_attention_heads=2, encoder_ffn_embed_dim=64,
             latent_dim=8, num_timesteps=50)
LIMIT = 16


def network(**options):
    torch.manual_seed(0)
    return DiffuSeqNetwork(NetworkConfig(**SMALL, **{"length_predictor": True, "max_length_offset": 3, **options}),
                           VOCAB, PAD)


def sample(ids=(3, 7)):
    src = torch.tensor([[5, 6, 7, EOS], [8, 9, EOS, PAD]])[: len(ids)]
    return {"id": torch.tensor(ids), "net_input": {"src_tokens": src, "src_lengths": torch.tensor([4, 3])[: len(ids)]}}


def make(beam=2, candidates=2, steps=4, sampler="dpm-solver++", stop=0, ranking="mbr", history=False, limit=LIMIT,
         output_ids=None):
    return DiffuSeqGenerator(DecodingOptions(
        special_ids=(PAD, BOS, EOS), num_steps=steps, total_steps=50, canvas_length=lambda n: n + 2, sampler=sampler,
        num_candidates=candidates, length_beam=beam, total_length_limit=limit, stop_when_stable=stop, ranking=ranking,
        retain_history=history, base_seed=5, output_ids=output_ids))


def one_hot_logits(predictor, classes):
    """Logits putting almost all the probability on ``classes`` (one per row)."""
    logits = torch.full((len(classes), predictor.num_classes), -30.0)
    logits[torch.arange(len(classes)), torch.tensor(classes)] = 0.0
    return logits


# The head.

def test_head_gives_one_logit_per_offset_and_ignores_source_padding():
    predictor = LengthPredictor(hidden=6, max_offset=4)
    states, mask = torch.randn(2, 5, 6), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    logits = predictor(states, mask)
    assert predictor.num_classes == 9 and logits.shape == (2, 9)
    changed = states.clone()
    changed[0, 3:] = 100.0  # padding of row 0
    assert torch.equal(predictor(changed, mask)[0], logits[0])


def test_offset_classes_map_to_lengths_and_far_offsets_go_to_the_edge_classes():
    predictor = LengthPredictor(hidden=4, max_offset=3)
    src, tgt = torch.tensor([5, 5, 5, 10, 2]), torch.tensor([5, 7, 2, 20, 1])
    classes = predictor.classes_of(src, tgt)
    assert classes.tolist() == [3, 5, 0, 6, 2]
    assert predictor.lengths_of(classes[:3], src[:3]).diagonal().tolist() == [5, 7, 2]
    assert predictor.lengths_of(torch.arange(7), torch.tensor([5]))[0].tolist() == [2, 3, 4, 5, 6, 7, 8]


def test_loss_is_the_cross_entropy_of_the_true_lengths_class():
    predictor = LengthPredictor(hidden=4, max_offset=3)
    logits = torch.randn(3, 7)
    src, tgt = torch.tensor([4, 6, 3]), torch.tensor([5, 2, 3])
    expected = [-logits[i].log_softmax(-1)[c] for i, c in enumerate([4, 0, 3])]
    assert torch.allclose(predictor.nll(logits, src, tgt), torch.stack(expected))


def test_length_probabilities_are_clamped_to_one_and_the_limit_less_the_source():
    predictor = LengthPredictor(hidden=4, max_offset=3)
    logits = torch.randn(2, 7)
    src = torch.tensor([2, 7])  # row 0: lengths -1, 0, 1 clamp to 1; row 1: lengths 9, 10 to 16 - 7 = 9
    log_probs = predictor.length_log_probs(logits, src, LIMIT)
    assert torch.allclose(log_probs.exp().sum(1), torch.ones(2))
    probs = logits.softmax(-1)
    assert log_probs[0, 1].exp() == pytest.approx(float(probs[0, :3].sum()), rel=1e-5)
    assert log_probs[1, 9].exp() == pytest.approx(float(probs[1, 5:].sum()), rel=1e-5)
    assert torch.isinf(log_probs[0, 0]) and torch.isinf(log_probs[1, 10:]).all()


def test_the_likeliest_lengths_come_first_and_stay_in_range():
    predictor = LengthPredictor(hidden=4, max_offset=3)
    logits = torch.tensor([[0.0, 1.0, 5.0, 3.0, 2.0, 0.5, 0.2]])
    lengths, log_probs = likeliest_lengths(predictor, logits, torch.tensor([6]), 3, LIMIT)
    assert lengths.tolist() == [[5, 6, 7]]  # offsets -1, 0, +1
    assert torch.allclose(log_probs, logits.log_softmax(-1)[:, [2, 3, 4]])


def test_far_lengths_stay_out_of_the_beam():
    """Only lengths within beam - 1 of the likeliest: a second mode 3 positions away is left out."""
    predictor = LengthPredictor(hidden=4, max_offset=3)
    logits = torch.full((1, 7), -30.0)
    logits[0, [3, 6, 5, 2]] = torch.tensor([0.0, -1.0, -3.0, -5.0])  # offsets 0, +3, +2, -1
    lengths, _ = likeliest_lengths(predictor, logits, torch.tensor([6]), 3, LIMIT)
    assert lengths.tolist() == [[6, 8, 5]]
    lengths, _ = likeliest_lengths(predictor, logits, torch.tensor([6]), 4, LIMIT)
    assert lengths.tolist() == [[6, 9, 8, 5]]


def test_a_source_near_the_limit_fills_its_beam_with_allowed_lengths():
    predictor = LengthPredictor(hidden=4, max_offset=3)
    logits = one_hot_logits(predictor, [6])  # offset +3: length 16, clamped to 16 - 12 = 4
    lengths, log_probs = likeliest_lengths(predictor, logits, torch.tensor([12]), 4, LIMIT)
    # Classes reach 9..15 clamped to 4 only: then the allowed lengths nearest 4 at log-prob -inf.
    assert lengths.tolist() == [[4, 3, 2, 1]] and log_probs[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert torch.isinf(log_probs[0, 1:]).all()
    lengths, _ = likeliest_lengths(predictor, logits, torch.tensor([14]), 3, LIMIT)  # only 1 and 2 allowed
    assert lengths.tolist() == [[2, 1, 2]]


# The network and the criterion.

def test_a_model_without_the_predictor_is_unchanged():
    torch.manual_seed(0)
    plain = DiffuSeqNetwork(NetworkConfig(**SMALL), VOCAB, PAD)
    with_head = network(max_length_offset=4)
    assert plain.length_head is None and not any("length" in name for name in plain.state_dict())
    shared = {k: v for k, v in with_head.state_dict().items() if not k.startswith("length_head.")}
    assert shared.keys() == plain.state_dict().keys()
    assert all(torch.equal(shared[k], v) for k, v in plain.state_dict().items())  # the head is drawn last
    assert "length_nll" not in plain.training_terms(sample()["net_input"]["src_tokens"], torch.tensor([4, 3]),
                                                    torch.tensor([[5, EOS], [6, EOS]]), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="no length predictor"):
        plain.length_logits(plain.encode_source(torch.tensor([[5, EOS]]), torch.tensor([2])))


@pytest.mark.parametrize("once", [False, True])
def test_training_terms_add_the_length_nll_of_each_target_length(once):
    net = network(encode_source_once=once).eval()
    src, src_lengths = sample()["net_input"]["src_tokens"], torch.tensor([4, 3])
    target = torch.tensor([[5, 6, EOS, PAD, PAD], [5, 6, 7, 8, EOS]])
    # No noise on the source's z0: the head then sees the clean source, as in decoding.
    noise = TrainingNoise(torch.zeros(2, 4, 8), torch.randn(2, 5, 8), torch.randn(2, 5, 8))
    terms = net.training_terms(src, src_lengths, target, torch.tensor([3, 10]), noise=noise,
                               target_mask=target.ne(PAD))
    logits = net.length_logits(net.encode_source(src, src_lengths))
    assert torch.allclose(terms["length_nll"], net.length_head.nll(logits, src_lengths, torch.tensor([3, 5])))
    terms["length_nll"].sum().backward()
    assert net.length_head.project.weight.grad.abs().sum() > 0


def test_length_logits_read_the_source_only():
    """One pass over the source alone without --encode-source-once; the cached states with it."""
    for once in (False, True):
        net = network(encode_source_once=once).eval()
        calls = []
        encoder_forward = net.encoder.forward
        net.encoder.forward = lambda x, mask: calls.append(x.size(1)) or encoder_forward(x, mask)
        source = net.encode_source(*sample()["net_input"].values())
        before = len(calls)
        net.length_logits(source)
        assert len(calls) - before == (0 if once else 1) and calls[-1] == 4  # the source's width, no canvas


def test_criterion_trains_a_predictor_model_on_canvases_of_its_targets_length(monkeypatch):
    dictionary = Dictionary()
    for word in "abcdefghijklmnop":
        dictionary.add_symbol(word)
    task = DiffuSeqTask(DiffuSeqConfig(data="unused", max_total_len=24), dictionary, dictionary)
    torch.manual_seed(0)
    model = DiffuSeqModel(NetworkConfig(**SMALL, length_predictor=True), dictionary)
    criterion = DiffuSeqLoss(task, "lossaware", 0.001, 0, "target", 0.0, 0.0, 1.0, 0.5, 0.5)
    pad, eos = dictionary.pad(), dictionary.eos()
    src = torch.tensor([[5, 6, 7, eos], [8, 9, eos, pad]])
    target = torch.tensor([[5, 6, 7, 8, 9, eos], [5, eos, pad, pad, pad, pad]])
    batch = {"id": torch.tensor([0, 1]), "ntokens": 8, "target": target,
             "net_input": {"src_tokens": src, "src_lengths": torch.tensor([4, 3])}}
    seen, statistics = {}, []
    training_terms = model.network.training_terms

    def recording(*args, **kwargs):
        seen.update(kwargs, terms=training_terms(*args, **kwargs))
        return seen["terms"]

    monkeypatch.setattr(model.network, "training_terms", recording)
    sampler = model.network.importance_sampler(0.001)
    monkeypatch.setattr(model.network, "importance_sampler", lambda *args: sampler)
    step_statistics, sample_steps = sampler.step_statistics, sampler.sample
    monkeypatch.setattr(sampler, "step_statistics", lambda t, loss: statistics.append(loss) or step_statistics(t, loss))
    monkeypatch.setattr(sampler, "sample", lambda *args: seen.setdefault("draw", sample_steps(*args)))
    loss, size, log = criterion(model.train(), batch)
    assert seen["target_mask"].sum(1).tolist() == [6, 2]  # no padding to write (the rule would give 11 and 10)
    got, weights = seen["terms"], seen["draw"][1]
    diffusion = got["mse"] + got["rounding_nll"] + got["tT"]
    expected = (diffusion * weights).sum() + 0.5 * got["length_nll"].sum()  # the length term is not importance-weighted
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    assert torch.allclose(statistics[0], diffusion)  # the importance sampler never sees the length term
    assert float(log["length_nll"]) == pytest.approx(float(got["length_nll"].detach().sum()))


# Decoding with a length beam.

@torch.no_grad()
def source_logits(net):
    return net.length_logits(net.encode_source(*sample()["net_input"].values()))


def test_each_candidate_decodes_on_a_canvas_of_exactly_its_predicted_length(monkeypatch):
    net = network()
    masks = []
    denoise = net.denoise
    monkeypatch.setattr(net, "denoise", lambda *a, target_mask=None, **k: masks.append(target_mask.clone())
                        or denoise(*a, target_mask=target_mask, **k))
    hypos = make(beam=3, candidates=2).generate([net], sample())
    lengths, _ = likeliest_lengths(net.length_head, source_logits(net), torch.tensor([4, 3]), 3, LIMIT)
    # Every step is one model call over all 2 sentences × 3 lengths × 2 draws.
    assert len(masks) == 4 and all(m.size(0) == 12 for m in masks)
    assert masks[0].sum(1).tolist() == lengths.repeat_interleave(2, dim=1).flatten().tolist()
    for sentence, sentence_lengths in zip(hypos, lengths.tolist()):
        assert len(sentence) == 6
        assert sorted(h["steps"].length for h in sentence) == sorted(sentence_lengths * 2)
        for h in sentence:
            assert isinstance(h["steps"], StepsAndLength) and h["steps"] == 4
            assert h["tokens"][-1] == EOS and len(h["tokens"]) - 1 <= h["steps"].length - 1
            assert not (h["tokens"][:-1] == EOS).any() and not (h["tokens"][:-1] == PAD).any()
    assert "{}".format(hypos[0][0]["steps"]) == f"4 length={hypos[0][0]['steps'].length}"


def test_an_output_vocabulary_keeps_the_end_of_each_canvas():
    allowed = torch.tensor([BOS, PAD, EOS, 3, 8, 13])
    for sentence in make(beam=3, output_ids=allowed).generate([network()], sample()):
        for h in sentence:
            assert h["tokens"][-1] == EOS and set(h["tokens"].tolist()) <= {EOS, 3, 8, 13}
            assert len(h["tokens"]) <= h["steps"].length


def test_the_score_adds_the_lengths_log_probability_and_ranks_by_it_when_asked():
    net = network()
    hypos = make(beam=3, candidates=2, ranking="score").generate([net], sample())
    log_probs = net.length_head.length_log_probs(source_logits(net), torch.tensor([4, 3]), LIMIT)
    for b, sentence in enumerate(hypos):
        scores = [float(h["score"]) for h in sentence]
        assert scores == sorted(scores, reverse=True)
        for h in sentence:
            words = float(h["positional_scores"].mean())
            assert float(h["score"]) == pytest.approx(words + float(log_probs[b, h["steps"].length]), rel=1e-5)


def test_mbr_weighs_each_candidate_as_a_reference_by_its_lengths_probability():
    """Two draws agreeing exactly on an unlikely length no longer outvote two close draws of the likely one."""
    tokens = torch.tensor([[[3, 4, 5, 6, 7], [3, 4, 5, 6, 8], [9, 10, 11, PAD, PAD], [9, 10, 11, PAD, PAD]]])
    valid = tokens.ne(PAD)
    assert DiffuSeqGenerator._mbr_ranking(tokens, valid, None)[0, 0] in (2, 3)  # plain MBR: the agreeing pair
    length_scores = torch.tensor([0.9, 0.9, 0.1, 0.1]).log()
    assert DiffuSeqGenerator._mbr_ranking(tokens, valid, length_scores)[0].tolist()[:2] in ([0, 1], [1, 0])


@pytest.mark.parametrize("sampler, stop", [("dpm-solver++", 0), ("ddim", 1)])
def test_a_sentence_decodes_the_same_alone_and_in_a_batch(sampler, stop):
    net = network()
    generator = make(beam=2, candidates=2, sampler=sampler, stop=stop, steps=6)
    together = generator.generate([net], sample())
    alone = generator.generate([net], {"id": torch.tensor([7]), "net_input": {
        "src_tokens": torch.tensor([[8, 9, EOS]]), "src_lengths": torch.tensor([3])}})
    assert [h["tokens"].tolist() for h in alone[0]] == [h["tokens"].tolist() for h in together[1]]
    assert [str(h["steps"]) for h in alone[0]] == [str(h["steps"]) for h in together[1]]


def test_stop_when_stable_and_history_work_per_candidate():
    net = network()
    hypos = make(beam=2, candidates=2, stop=1, steps=10, history=True).generate([net], sample())
    for h in (h for sentence in hypos for h in sentence):
        assert 2 <= h["steps"] <= 10 and len(h["history"]) == int(h["steps"])
        assert all(e["tokens"][-1] == EOS and len(e["tokens"]) <= h["steps"].length for e in h["history"])


def test_a_length_candidate_keeps_its_draws_when_the_beam_grows():
    """Noise is drawn per (sentence, draw, length): the candidates of the likeliest length do not
    change when more lengths join the beam."""
    net = network()
    one = make(beam=1, candidates=2).generate([net], sample())
    three = make(beam=3, candidates=2).generate([net], sample())
    for small, large in zip(one, three):
        length = small[0]["steps"].length
        same_length = sorted(h["tokens"].tolist() for h in large if h["steps"].length == length)
        assert sorted(h["tokens"].tolist() for h in small) == same_length


def test_bad_length_options_are_clear_errors():
    with pytest.raises(ValueError, match="--length-beam must be at least 1"):
        make(beam=-1)
    with pytest.raises(ValueError, match="total-length limit"):
        make(limit=0)
    with pytest.raises(ValueError, match="unknown --rank-candidates 'bleu'"):
        make(ranking="bleu")
    plain = DiffuSeqNetwork(NetworkConfig(**SMALL), VOCAB, PAD)
    with pytest.raises(ValueError, match="--length-beam 2 needs a model trained with --length-predictor"):
        DiffuSeqTask.length_beam(plain, 2)
    assert DiffuSeqTask.length_beam(plain, None) == 0
    net = network()  # 7 classes
    assert DiffuSeqTask.length_beam(net, None) == 1 and DiffuSeqTask.length_beam(net, 7) == 7
    for beam in (0, 8):
        with pytest.raises(ValueError, match=rf"--length-beam must be in \[1, 7\] \(the model's length classes\), "
                                             rf"got {beam}"):
            DiffuSeqTask.length_beam(net, beam)


def test_number_of_hypotheses_is_lengths_times_draws():
    options = make(beam=3, candidates=4).options
    assert options.hypotheses_per_source == 12 and make(beam=0, candidates=4).options.hypotheses_per_source == 4
