"""diffuseq-fairseq: DiffuSeq sequence-to-sequence diffusion as a fairseq plugin."""
from setuptools import find_packages, setup

setup(
    name="diffuseq-fairseq",
    version="0.1.0",
    description="DiffuSeq (continuous diffusion for seq2seq) as a fairseq --user-dir plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["diffuseq_fairseq", "diffuseq_fairseq.*"]),
    install_requires=[
        "torch>=2.0",
        # fairseq 0.12.2 does not import on Python 3.11+; fairseq-fixed ships the same module.
        "fairseq==0.12.2; python_version < '3.11'",
        "fairseq-fixed==0.12.3.1; python_version >= '3.11'",
        "omegaconf>=2.0",
        "sacremoses",
        "subword-nmt",
        "sacrebleu>=2.0",
        # The paper's BLEU is nltk's sentence_bleu (smoothing method4); pinned so scores stay comparable.
        "nltk==3.9.1",
        "matplotlib",
    ],
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "diffuseq-eval=diffuseq_fairseq.evaluation.cli:main",
            "diffuseq-prepare=diffuseq_fairseq.dataprep.prepare:main",
            "diffuseq-export-ema=diffuseq_fairseq.export_ema:main",
            "diffuseq-convert-official=diffuseq_fairseq.convert_official:main",
        ]
    },
)
