"""The denoiser network's embedding space options (no fairseq)."""
import pytest
import torch

from diffuseq_fairseq.network import DiffuSeqNetwork, NetworkConfig

SMALL = dict(encoder_layers=1, encoder_embed_dim=32, encoder_attention_heads=2, encoder_ffn_embed_dim=64,
             latent_dim=16, num_timesteps=50)


@pytest.mark.parametrize("factor", [1.0, 4.0])
def test_embed_norm_gives_unit_rows_divided_by_the_noise_factor(factor):
    net = DiffuSeqNetwork(NetworkConfig(**SMALL, embed_norm=True, noise_factor=factor), 30, 1)
    rows = net.word_embeddings()
    assert torch.allclose(rows.mean(-1), torch.zeros(30), atol=1e-5)
    assert torch.allclose(rows.pow(2).mean(-1).sqrt(), torch.full((30,), 1 / factor), atol=1e-3)
    terms = net.training_terms(torch.tensor([[5, 6, 2]]), torch.tensor([3]), torch.tensor([[7, 8, 2, 1]]),
                               torch.tensor([10]))
    assert all(torch.isfinite(v).all() for v in terms.values())


def test_noise_factor_needs_embed_norm_and_must_be_positive():
    with pytest.raises(ValueError, match="needs --embed-norm"):
        DiffuSeqNetwork(NetworkConfig(**SMALL, noise_factor=2.0), 30, 1)
    with pytest.raises(ValueError, match="positive"):
        DiffuSeqNetwork(NetworkConfig(**SMALL, embed_norm=True, noise_factor=0.0), 30, 1)
