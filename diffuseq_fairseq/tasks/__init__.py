from . import diffuseq, translation_lev_bleu  # noqa: F401
