"""The network's options, read back from a fairseq config (no fairseq needed)."""
from omegaconf import OmegaConf

from diffuseq_fairseq.network_config import NetworkConfig

SMALL = dict(encoder_layers=1, encoder_embed_dim=32, encoder_attention_heads=2, encoder_ffn_embed_dim=64,
             latent_dim=16, num_timesteps=50)


def test_config_of_an_older_checkpoint_takes_the_defaults_of_newer_fields():
    newer = ("target_positions", "time_embed_dim", "identity_projections")
    saved = OmegaConf.create({k: v for k, v in NetworkConfig(**SMALL).__dict__.items() if k not in newer})
    OmegaConf.set_struct(saved, True)  # as fairseq loads it: a missing key raises
    cfg = NetworkConfig.of(saved)
    assert cfg.target_positions == "continue" and cfg.latent_dim == 16
    assert cfg.time_embed_dim is None and not cfg.identity_projections
