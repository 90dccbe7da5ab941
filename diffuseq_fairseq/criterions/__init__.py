from . import diffuseq_loss  # noqa: F401
