"""Data preparation for DiffuSeq on fairseq: input validation, raw text/jsonl to data-bin
conversion, and a small embedded paraphrase task for demos and tests.

These modules deliberately import neither torch nor fairseq so they stay cheap to import and test;
binarization runs ``fairseq_cli.preprocess`` in a subprocess.
"""
