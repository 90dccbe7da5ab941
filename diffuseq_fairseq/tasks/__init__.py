from . import diffuseq  # noqa: F401
