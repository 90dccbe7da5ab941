"""Score fairseq-generate output on the embedded paraphrase task.

Prints, as one JSON object: exact-match accuracy of the selected hypothesis against ANY valid
paraphrase, the same for copying the source (the trivial baseline), the share of all candidates
that are valid, and how many distinct valid paraphrases the candidates of a source cover.

    python -m diffuseq_fairseq.dataprep.toy_score GENERATE_OUTPUT
"""
import argparse
import json
from typing import Optional, Sequence

from ..evaluation.readers import read_file
from .toy_task import exact_match_accuracy, valid_targets


def score(path: str) -> dict:
    generations = read_file(path)
    sources = generations.sources
    all_candidates = [c for cands in generations.candidates for c in cands]
    all_sources = [s for s, cands in zip(sources, generations.candidates) for _ in cands]
    distinct_valid = [
        len({" ".join(c.split()) for c in cands} & set(valid_targets(s)))
        for s, cands in zip(sources, generations.candidates)
    ]
    return {
        "sentences": len(sources),
        "exact_match": exact_match_accuracy(sources, generations.selected),
        "copy_source_exact_match": exact_match_accuracy(sources, sources),
        "valid_candidate_share": exact_match_accuracy(all_sources, all_candidates),
        "distinct_valid_paraphrases_per_source": sum(distinct_valid) / max(len(sources), 1),
        "candidates_per_source": len(all_candidates) / max(len(sources), 1),
    }


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("generate_output")
    print(json.dumps(score(parser.parse_args(argv).generate_output), indent=2))


if __name__ == "__main__":
    main()
