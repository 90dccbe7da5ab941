"""The reverse-diffusion generator on a tiny random network (no fairseq CLI): hypothesis protocol,
MBR ordering, candidate batching, seeding and history."""
import pytest
import torch

from diffuseq_fairseq.generator import DiffuSeqGenerator
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


def make(sampler="dpm-solver++", steps=5, candidates=3, seed=1, history=False, eta=0.0):
    return DiffuSeqGenerator((PAD, BOS, EOS), sampler=sampler, num_steps=steps, total_steps=50, step_spacing="uniform",
                             eta=eta, rounding="l2", num_candidates=candidates, canvas_length=lambda lengths: 6,
                             retain_history=history, base_seed=seed)


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


def test_encode_source_once_matches_shapes(network):
    cfg = NetworkConfig(**{**network.cfg.__dict__, "encode_source_once": True})
    cached = DiffuSeqNetwork(cfg, VOCAB, PAD)
    hypos = make().generate([cached], sample())
    assert len(hypos) == 2 and all(len(h) == 3 for h in hypos)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="unknown --sampler"):
        make(sampler="euler")
    with pytest.raises(ValueError, match="mbr-candidates"):
        make(candidates=0)
