"""diffuseq_loss on a real task and model, without the fairseq CLIs: each row's own canvas, validation
draws that are a function of the sentence, training draws that stay random."""
import pytest
import torch
from fairseq.data import Dictionary

from diffuseq_fairseq.criterions.diffuseq_loss import DiffuSeqLoss
from diffuseq_fairseq.models.diffuseq import DiffuSeqModel
from diffuseq_fairseq.network_config import NetworkConfig
from diffuseq_fairseq.tasks.diffuseq import DiffuSeqConfig, DiffuSeqTask

SMALL = dict(encoder_layers=1, encoder_embed_dim=32, encoder_attention_heads=2, encoder_ffn_embed_dim=64,
             latent_dim=16, num_timesteps=50, self_condition=True)


@pytest.fixture
def parts():
    dictionary = Dictionary()
    for word in "abcdefghijklmnop":
        dictionary.add_symbol(word)
    task = DiffuSeqTask(DiffuSeqConfig(data="unused", max_total_len=24), dictionary, dictionary)
    torch.manual_seed(0)
    model = DiffuSeqModel(NetworkConfig(**SMALL), dictionary)
    criterion = DiffuSeqLoss(task, "uniform", 0.001, 0, "target", 1.0, 0.0, 1.0, 0.5)
    return dictionary, model, criterion


def batch(dictionary, pairs, ids):
    """A right-padded sample of (source length, target length) pairs."""
    pad, eos = dictionary.pad(), dictionary.eos()

    def tokens(lengths, offset):
        rows = torch.full((len(lengths), max(lengths)), pad)
        for i, n in enumerate(lengths):
            rows[i, : n - 1] = torch.arange(n - 1) % 12 + dictionary.nspecial + offset
            rows[i, n - 1] = eos
        return rows

    src_lengths = torch.tensor([s for s, _ in pairs])
    target = tokens([t for _, t in pairs], 2)
    return {"id": torch.tensor(ids), "ntokens": int(target.ne(pad).sum()), "target": target,
            "net_input": {"src_tokens": tokens(src_lengths.tolist(), 0), "src_lengths": src_lengths}}


def test_each_row_is_trained_on_its_own_canvas(parts, monkeypatch):
    """max(the rule's canvas within the limit, the row's target): 1.5·|x| + 5 by default, limit 24."""
    dictionary, model, criterion = parts
    seen = {}
    terms = model.network.training_terms
    monkeypatch.setattr(model.network, "training_terms",
                        lambda *args, **kwargs: seen.update(kwargs, target=args[2]) or terms(*args, **kwargs))
    criterion(model.train(), batch(dictionary, [(3, 12), (6, 4), (16, 3)], [0, 1, 2]))
    assert seen["target_mask"].sum(1).tolist() == [12, 14, 8]  # max(10, 12); 14; min(24 - 16, 29)
    assert seen["target"].shape == (3, 14) and seen["noise"] is None


def test_validation_loss_of_a_sentence_does_not_depend_on_its_batch(parts):
    dictionary, model, criterion = parts
    model.eval()
    pairs, ids = [(3, 12), (6, 4), (16, 3)], [7, 8, 9]
    with torch.no_grad():
        together, size, _ = criterion(model, batch(dictionary, pairs, ids))
        alone = [criterion(model, batch(dictionary, [pair], [i]))[0] for pair, i in zip(pairs, ids)]
        other_seed = criterion(model, batch(dictionary, pairs[:1], [70]))[0]
    assert size == 3 and float(together) == pytest.approx(float(sum(alone)), rel=1e-5)
    assert float(other_seed) != pytest.approx(float(alone[0]), rel=1e-3)  # the draws follow the sentence id


def test_training_draws_stay_random(parts):
    dictionary, model, criterion = parts
    sample = batch(dictionary, [(3, 12), (6, 4)], [0, 1])
    first, second = (float(criterion(model.train(), sample)[0].detach()) for _ in range(2))
    assert first != second


def found_in(table: torch.Tensor, draws: torch.Tensor) -> float:
    """Share of ``table``'s values that run on, in order, from where its first value sits in ``draws`` (0: nowhere)."""
    values = table.detach().flatten()
    hits = (draws - values[0]).abs().lt(1e-7).nonzero().flatten()
    if not len(hits):
        return 0.0
    start = int(hits[0])
    n = min(len(values), len(draws) - start)
    return float((draws[start:start + n] - values[:n]).abs().lt(1e-6).float().mean()) * n / len(values)


def test_training_draws_do_not_replay_the_initialisation(parts, monkeypatch):
    """fairseq seeds torch with --seed before building the model and with --seed + the update number before
    each update: without reseed_training_draws, update 0 draws the numbers the initialisation drew (here
    its Gaussian noise equals the word embedding table); with it they are new numbers."""
    from fairseq import utils

    from diffuseq_fairseq.tasks import diffuseq as diffuseq_task

    dictionary, _, criterion = parts
    utils.set_torch_seed(5)
    model = DiffuSeqModel(NetworkConfig(**SMALL), dictionary)
    table = model.network.embed_tokens.weight
    drawn = 4 * sum(p.numel() for p in model.parameters())
    utils.set_torch_seed(5)  # what fairseq's Trainer does before update 0
    assert found_in(table, torch.randn(drawn)) > 0.99
    utils.set_torch_seed(5)
    diffuseq_task.reseed_training_draws()
    assert found_in(table, torch.randn(drawn)) == 0.0
    # Every rank gets other draws, though fairseq seeds them alike.
    draws = []
    for rank in (0, 1):
        monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.distributed, "get_rank", lambda rank=rank: rank)
        utils.set_torch_seed(5)
        diffuseq_task.reseed_training_draws()
        draws.append(torch.randn(8))
    assert not torch.equal(draws[0], draws[1])
    monkeypatch.undo()
    utils.set_torch_seed(5)
    diffuseq_task.reseed_training_draws()
    assert torch.equal(torch.randn(8), draws[0])  # rank 0 without distributed: the same, so resuming draws alike
