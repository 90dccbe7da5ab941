"""``translation_lev_bleu``: fairseq's ``translation_lev`` with ``translation``'s ``--eval-bleu``.

``translation_lev`` overrides ``valid_step`` to inject its training noise and in doing so drops the
BLEU decode that ``translation`` runs at validation, so LevT trains with no validation BLEU curve.
This task restores it (decoding with fairseq's own iterative refinement generator) so that
``scripts/compare_levt.py`` can draw LevT's curve next to DiffuSeq's. Model, criterion and
checkpoints are fairseq's unchanged; decode them with ``--task translation_lev`` as usual.
"""
from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationTask
from fairseq.tasks.translation_lev import TranslationLevenshteinConfig, TranslationLevenshteinTask


class _AttentionFromTheStart:
    """A LevT model whose decoding starts with an all-zero attention for every row.

    fairseq 0.12's LevT starts from ``attn=None`` and then keeps the attention of only the rows
    that inserted words, so a young model that leaves some row empty crashes the generator with an
    IndexError. Attention plays no part in the output or its BLEU.
    """

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)

    def initialize_output_tokens(self, encoder_out, src_tokens):
        start = self._model.initialize_output_tokens(encoder_out, src_tokens)
        tokens, scores = start.output_tokens, start.output_scores
        return start._replace(attn=scores.new_zeros(*tokens.shape, src_tokens.size(1)))


@register_task("translation_lev_bleu", dataclass=TranslationLevenshteinConfig)
class TranslationLevenshteinBleuTask(TranslationLevenshteinTask):
    def valid_step(self, sample, model, criterion):
        sample["prev_target"] = self.inject_noise(sample["target"])  # what translation_lev's loss needs
        return TranslationTask.valid_step(self, sample, model, criterion)

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        wrapped = [_AttentionFromTheStart(model) for model in models]
        return super().inference_step(generator, wrapped, sample, prefix_tokens, constraints)
