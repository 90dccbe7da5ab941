"""Scoring decodes: the paper's metrics of a fairseq-generate output, the metrics along the reverse
process, and multi-reference scoring with its like-for-like baselines.

With K references per source, a system is scored against all K, and also K times against K-1 of
them (each reference left out in turn, averaged), so that it compares like for like with the human
ceiling: each reference scored against the other K-1, averaged over the K choices.
"""
import logging
import re
from pathlib import Path
from statistics import fmean
from typing import Dict, List, Optional, Sequence

from ..evaluation.metrics import div_4, evaluate, self_bleu, sentence_bleu_avg
from ..evaluation.readers import read_file, read_reference_files

# sacrebleu warns at every call that the text looks tokenized: it is, by design (the paper scores tokenized text),
# and the report scores dozens of times.
logging.getLogger("sacrebleu").setLevel(logging.ERROR)


def metrics_of(gen_file: Path) -> dict:
    """The paper's metrics of a fairseq-generate output, against its T- lines."""
    generations = read_file(str(gen_file))
    return evaluate(generations.selected, generations.references, generations.candidates)


def history_curve(gen_file: Path, steps: int) -> List[dict]:
    """BLEU of the MBR pick and div-4 of all candidates at every reverse step (E- lines, Fig. 5)."""
    generations = read_file(str(gen_file))
    references = dict(zip(generations.ids, generations.references))
    per_id: Dict[int, List[str]] = {}
    for line in gen_file.read_text().splitlines():
        match = re.match(r"E-(\d+)_(\d+)\t?(.*)$", line)
        if match:
            per_id.setdefault(int(match.group(1)), []).append(match.group(3).replace("@@ ", ""))
    curve = []
    for step in range(steps):
        picks, refs, sets = [], [], []
        for sid, lines in per_id.items():
            candidates = lines[step::steps]  # hypotheses print their E- lines one after another
            picks.append(candidates[0])
            refs.append(references[sid])
            sets.append(candidates)
        curve.append({"step": step + 1, "bleu": sentence_bleu_avg(picks, refs), "div_4": div_4(sets)})
    return curve


def _against(selected: Sequence[str], candidate_sets, reference_sets: Sequence[Sequence[str]]) -> dict:
    return evaluate(selected, [refs[0] for refs in reference_sets], candidate_sets, reference_sets=reference_sets)


def _mean_of(results: Sequence[dict]) -> dict:
    """Key-wise mean of metric dicts (a None stays None: undefined in every one of them)."""
    merged = {}
    for key, value in results[0].items():
        values = [r[key] for r in results]
        merged[key] = None if value is None else fmean(values)
    return merged


def leave_one_out(selected: Sequence[str], candidate_sets, reference_sets: Sequence[Sequence[str]]) -> dict:
    """Metrics against K-1 references, each of the K left out in turn, averaged."""
    count = len(reference_sets[0])
    return _mean_of([_against(selected, candidate_sets, [refs[:k] + refs[k + 1:] for refs in reference_sets])
                     for k in range(count)])


def multi_reference(selected: Sequence[str], candidate_sets, reference_sets) -> dict:
    """{"all": against all K references, "leave_one_out": against K-1, averaged over the K ways}."""
    return {"all": _against(selected, candidate_sets, reference_sets),
            "leave_one_out": leave_one_out(selected, candidate_sets, reference_sets)}


def multi_reference_of(gen_file: Path, reference_paths: Sequence[str]) -> dict:
    """A decode scored with reference files aligned with its ids (line k = id k)."""
    generations = read_file(str(gen_file))
    reference_sets = read_reference_files(list(reference_paths), generations.ids, scored=str(gen_file))
    return multi_reference(generations.selected, generations.candidates, reference_sets)


def human_ceiling(reference_sets: Sequence[Sequence[str]]) -> dict:
    """Each reference scored against the other K-1 as if it were a system's output, averaged over the K choices."""
    count = len(reference_sets[0])
    if count < 2:
        raise ValueError("the human ceiling needs two or more references per source")
    results = []
    for k in range(count):
        chosen = [refs[k] for refs in reference_sets]
        others = [refs[:k] + refs[k + 1:] for refs in reference_sets]
        results.append(_against(chosen, [[hyp] for hyp in chosen], others))
    return _mean_of(results)


def baselines(reference_sets: Sequence[Sequence[str]], sources: Optional[Sequence[str]]) -> dict:
    """The human ceiling and, given the sources, copying the source, scored like the systems."""
    found = {"human": {"leave_one_out": human_ceiling(reference_sets)}}
    if sources is not None:
        found["copy_source"] = multi_reference(sources, [[source] for source in sources], reference_sets)
    return found


def reference_baselines(reference_paths: Sequence[str], gen_file: Path, source_path: Optional[str]) -> dict:
    """``baselines`` on the sources of ``gen_file``, from reference files and a source file (line k = id k)."""
    ids = read_file(str(gen_file)).ids
    reference_sets = read_reference_files(list(reference_paths), ids, scored=str(gen_file))
    sources = [refs[0] for refs in read_reference_files([source_path], ids, scored=str(gen_file))] if source_path else None
    return baselines(reference_sets, sources)


def deterministic_diversity(gen_file: Path, samples: int = 3) -> dict:
    """self-BLEU and div-4 of a deterministic decoder (LevT): its ``samples`` samples are one sentence."""
    generations = read_file(str(gen_file))
    sets = [[hypothesis] * samples for hypothesis in generations.selected]
    return {"self_bleu": self_bleu(sets), "div_4": div_4(sets)}
