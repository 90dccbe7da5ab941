"""The network's options (architecture and training-chain facts, saved with the model), free of
fairseq: the fairseq model config inherits them, and ``NetworkConfig.of`` reads them back from a
checkpoint's config, newer fields taking their defaults."""
from dataclasses import dataclass, field, fields
from typing import Optional

# The choices of --target-positions, declared once: the fairseq config's ChoiceEnum reads them.
TARGET_POSITIONS = ("continue", "restart")


@dataclass
class NetworkConfig:
    """Architecture and training-chain facts (saved with the model; decoding knobs are not)."""

    encoder_layers: int = field(default=12, metadata={"help": "transformer layers"})
    encoder_embed_dim: int = field(default=768, metadata={"help": "hidden size of the transformer"})
    encoder_attention_heads: int = field(default=12, metadata={"help": "attention heads"})
    encoder_ffn_embed_dim: int = field(default=3072, metadata={"help": "feed-forward size"})
    latent_dim: int = field(default=128, metadata={"help": "word-embedding (diffusion space) size"})
    dropout: float = field(default=0.1, metadata={"help": "dropout"})
    attention_dropout: float = field(default=0.1, metadata={"help": "attention dropout"})
    max_positions: int = field(default=512, metadata={"help": "learned position embeddings"})
    num_timesteps: int = field(default=2000, metadata={"help": "T, number of diffusion steps of the training chain"})
    noise_schedule: str = field(default="sqrt", metadata={"help": "noise schedule of the diffusion chain"})
    self_condition: bool = field(
        default=False, metadata={"help": "feed the previous x0 estimate back in (50%% of training steps)"}
    )
    learned_mean_embed: bool = field(
        default=False, metadata={"help": "DiffuSeq-v2 soft absorbing state: noise centred on a learned vector"}
    )
    absorb_rate: float = field(
        default=0.0, metadata={"help": "v2 discrete noise: replace a target token by the absorbing state with "
                               "probability sqrt(1-abar_t)*rate (needs --learned-mean-embed)"}
    )
    embed_norm: bool = field(
        default=False, metadata={"help": "layer-normalise the word embeddings (Difformer): their scale cannot grow "
                                 "to outrun the noise, so high noise levels stay informative"}
    )
    noise_factor: float = field(
        default=1.0, metadata={"help": "with --embed-norm, divide the normalised embeddings by this factor: the "
                               "same as multiplying the noise of every step by it (Difformer's noise factor), "
                               "so that even early steps leave the target uncertain and the source must be used"}
    )
    target_positions: str = field(
        default="continue", metadata={"help": "continue: target position ids follow the source's, as in the paper's "
                                      "single sequence | restart: they start at 0 like the source's, so target j and "
                                      "source j share a position embedding (aligning them is one learned pattern for "
                                      "every source length), and a learned segment embedding tells the two apart"}
    )
    min_timestep_fraction: float = field(
        default=0.0, metadata={"help": "noise-scale clipping (DINOISER): train only on steps t >= F*T, where the "
                               "noisy target can no longer be rounded back to its words, and give the model "
                               "max(t, F*T) when decoding; 0 trains on every step (the paper)"}
    )
    encode_source_once: bool = field(
        default=False, metadata={"help": "source attends only to the source and gets no time embedding, so its "
                                 "keys/values are computed once per sentence and reused by every step"}
    )
    time_embed_dim: Optional[int] = field(
        default=None, metadata={"help": "size of the sinusoidal step embedding (the official hidden_t_dim), for "
                                "converting an official model trained with hidden_t_dim != hidden_dim; default: "
                                "--latent-dim, as the paper's configuration"}
    )
    identity_projections: bool = field(
        default=False, metadata={"help": "no projection between the embedding space and the stack, as the official "
                                 "TransformerNetModel when hidden_dim equals the stack's hidden size (for converting "
                                 "such a model); needs --latent-dim = --encoder-embed-dim and no --self-condition"}
    )
    glance_rate: float = field(
        default=0.0, metadata={"help": "glancing training (GLAT): a first pass without gradient predicts the "
                               "words, and the second, trained pass is given this share of as many gold words as "
                               "the first got wrong, at random positions (the loss covers the others). Decoding "
                               "gives no words: the glancing only teaches the model to make its words agree. "
                               "0 = off"}
    )
    uniform_output_bias: bool = field(
        default=False, metadata={"help": "initialise the lm_head bias as the official code's nn.Linear does, "
                                 "U(±1/√latent), instead of 0"}
    )

    length_predictor: bool = field(
        default=False, metadata={"help": "predict the target length from the encoded source (a classifier over "
                                 "offsets |y|-|x|, trained with the criterion's --length-loss-weight): training "
                                 "canvases are then exactly the target's length, and decoding gives each candidate "
                                 "a canvas of a predicted length (--length-beam) instead of letting the model write "
                                 "padding, as the paper does"}
    )
    max_length_offset: int = field(
        default=64, metadata={"help": "length classes of --length-predictor: offsets from -N to N (longer offsets "
                              "are trained as the edge class)"}
    )

    @classmethod
    def of(cls, cfg) -> "NetworkConfig":
        """The network fields of ``cfg`` (a fairseq model config); a field missing from it, as in
        a checkpoint saved before the field existed, takes its default, which is the old behaviour."""
        return cls(**{f.name: getattr(cfg, f.name, f.default) for f in fields(cls)})
