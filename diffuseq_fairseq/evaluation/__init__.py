"""Offline scoring of generation outputs with the DiffuSeq paper's metrics (``diffuseq-eval``)."""
