"""fairseq wrapper of :class:`~diffuseq_fairseq.network.DiffuSeqNetwork` and its presets."""
from dataclasses import dataclass, field, fields
from typing import Optional

from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.models import BaseFairseqModel, register_model, register_model_architecture
from omegaconf import II

from ..diffusion import SCHEDULES
from ..network import DiffuSeqNetwork
from ..network_config import TARGET_POSITIONS, NetworkConfig


def network_field(name: str):
    """The default and help of NetworkConfig's field ``name``, for a field whose type the fairseq
    config narrows (to a ChoiceEnum, so that --help lists the choices and argparse refuses others)."""
    (declared,) = (f for f in fields(NetworkConfig) if f.name == name)
    return field(default=declared.default, metadata=declared.metadata)


@dataclass
class DiffuSeqModelConfig(FairseqDataclass, NetworkConfig):
    noise_schedule: ChoiceEnum(SCHEDULES) = network_field("noise_schedule")
    target_positions: ChoiceEnum(TARGET_POSITIONS) = network_field("target_positions")
    # The task's canvas rule at training, saved with the model so that decoding can reuse it.
    # Interpolations without help are not command-line options (fairseq's II convention).
    canvas_len_a: Optional[float] = II("task.canvas_len_a")
    canvas_len_b: Optional[int] = II("task.canvas_len_b")
    # The token layout it was trained on (issue #26), which decoding must follow.
    token_layout: str = II("task.token_layout")


@register_model("diffuseq", dataclass=DiffuSeqModelConfig)
class DiffuSeqModel(BaseFairseqModel):
    """``forward`` returns the per-sentence loss terms, so the training pass runs through the
    (possibly DDP-wrapped) module call; decoding uses ``model.network`` directly."""

    def __init__(self, cfg: DiffuSeqModelConfig, dictionary):
        super().__init__()
        self.cfg = cfg
        self.network = DiffuSeqNetwork(NetworkConfig.of(cfg), len(dictionary), dictionary.pad())

    @classmethod
    def build_model(cls, cfg: DiffuSeqModelConfig, task):
        if cfg.max_positions < task.cfg.max_total_len:
            raise ValueError(
                f"--max-positions {cfg.max_positions} is smaller than the task's --max-total-len {task.cfg.max_total_len}"
            )
        return cls(cfg, task.target_dictionary)

    def max_positions(self):
        return (self.cfg.max_positions, self.cfg.max_positions)

    def forward(self, src_tokens, src_lengths, target, t, **options):
        """:meth:`DiffuSeqNetwork.training_terms` (its keyword ``options``)."""
        return self.network.training_terms(src_tokens, src_lengths, target, t, **options)


@register_model_architecture("diffuseq", "diffuseq_base")
def diffuseq_base(args):
    """The paper's model: BERT-base sized stack, 128-d embeddings (91.2M parameters at V=30,522)."""
    args.encoder_layers = getattr(args, "encoder_layers", 12)
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 768)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 12)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 3072)
    args.latent_dim = getattr(args, "latent_dim", 128)
    # fairseq builds a saved model from its raw config through these functions (the arch name is not
    # the dataclass's): a checkpoint from before the canvas rule was kept here points to the task
    # options saved beside it, which hold the training values.
    for name in ("canvas_len_a", "canvas_len_b"):
        if not hasattr(args, name):
            setattr(args, name, "${task.%s}" % name)
    # A checkpoint from before --token-layout existed has it in neither config: it was trained on the
    # only layout there was.
    if not hasattr(args, "token_layout"):
        args.token_layout = "fairseq"


@register_model_architecture("diffuseq", "diffuseq_small")
def diffuseq_small(args):
    args.encoder_layers = getattr(args, "encoder_layers", 6)
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 512)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 8)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 2048)
    diffuseq_base(args)


@register_model_architecture("diffuseq", "diffuseq_tiny")
def diffuseq_tiny(args):
    """CPU-sized: 4 layers, d=256."""
    args.encoder_layers = getattr(args, "encoder_layers", 4)
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 256)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 4)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 1024)
    diffuseq_base(args)
