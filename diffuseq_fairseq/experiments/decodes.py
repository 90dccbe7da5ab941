"""The side by side's DiffuSeq decodes as a declarative list.

Every decode is the base decoding options (``--diffuseq-decode``) with a few options replaced, and
each section (a table block or a figure) may vary only its own options: so the points of one figure
differ exactly in what the figure plots, and a point that equals another decode (the 20-step point
of Fig. 6 and the table's |S|=1 row) is decoded once.
"""
import shlex
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

# Section -> the options its decodes may set over the base (fairseq keeps the last value of an option).
# --nbest and --retain-iter-history only choose what fairseq-generate prints.
SECTION_OPTIONS: Dict[str, Tuple[str, ...]] = {
    "mbr": ("--mbr-candidates", "--nbest"),  # the table's |S| columns and Fig. 3, BLEU against |S|
    "early_stop": ("--stop-when-stable", "--rounding", "--mbr-candidates", "--nbest"),  # the early-stopping rows
    "diversity": ("--sampler", "--ddim-eta", "--mbr-candidates", "--nbest", "--retain-iter-history"),  # Fig. 4, 5
    "steps": ("--diffusion-steps", "--mbr-candidates", "--nbest"),  # Fig. 6, BLEU against decoding time
}
# Samplers of the diversity decodes (Fig. 4): key -> (label in compare.json and the plots, options).
DIVERSITY_SAMPLERS = {
    "dpm-solver++": ("dpm-solver++", "--sampler dpm-solver++"),
    "ddim-eta1": ("ddim eta=1", "--sampler ddim --ddim-eta 1"),
}
DIVERSITY_SAMPLES = 3  # the paper's diversity metrics use 3 samples per source


def options_of(flags: str) -> Dict[str, str]:
    """fairseq options as {option: value} ('' for a switch), the last value of a repeated option kept."""
    words = shlex.split(flags)
    options: Dict[str, str] = {}
    for i, word in enumerate(words):
        if word.startswith("--"):
            following = words[i + 1] if i + 1 < len(words) else "--"
            options[word] = "" if following.startswith("--") else following
        elif i == 0 or not words[i - 1].startswith("--"):
            raise ValueError(f"decoding options: {word!r} is neither an option nor an option's value in {flags!r}")
    return options


@dataclass(frozen=True)
class Decode:
    section: str  # a key of SECTION_OPTIONS: where the result goes in compare.json
    key: str  # the entry within the section
    tag: str  # output file gen_diffuseq_{tag}.txt
    options: str  # set over the base decoding options
    timed: bool = False  # behind the headline speed ratio: run --timing-repeats times, the fastest counts
    history: bool = False  # its E- lines give Fig. 5

    def __post_init__(self):
        extra = set(options_of(self.options)) - set(SECTION_OPTIONS[self.section])
        if extra:
            raise ValueError(f"a {self.section} decode may not set {sorted(extra)}")

    def flags(self, base: str) -> str:
        return f"{base} {self.options}"

    def identity(self, base: str) -> Tuple[Tuple[str, str], ...]:
        """What decides the output: two decodes of the same identity write the same file."""
        return tuple(sorted(options_of(self.flags(base)).items()))


def side_by_side(mbr_sizes: Sequence[int], step_counts: Sequence[int], samplers: Sequence[str],
                 early_stop: str) -> List[Decode]:
    """The decodes of scripts/compare_levt.py, in the order they run."""
    decodes = [Decode("mbr", str(size), f"mbr{size}", f"--mbr-candidates {size} --nbest {size}", timed=size == 1)
               for size in mbr_sizes]
    decodes += [Decode("early_stop", f"stop{size}", f"stop{size}", f"{early_stop} --mbr-candidates {size} --nbest {size}",
                       timed=size == 1) for size in (1, 10)]
    for key in samplers:
        if key not in DIVERSITY_SAMPLERS:
            raise ValueError(f"--diversity-samplers: unknown {key!r}; known: {', '.join(DIVERSITY_SAMPLERS)}")
        label, options = DIVERSITY_SAMPLERS[key]
        history = key == "dpm-solver++"
        decodes.append(Decode("diversity", label, "div_" + label.split()[0],
                              f"{options} --mbr-candidates {DIVERSITY_SAMPLES} --nbest {DIVERSITY_SAMPLES}"
                              + (" --retain-iter-history" if history else ""), history=history))
    decodes += [Decode("steps", str(steps), f"steps{steps}", f"--diffusion-steps {steps} --mbr-candidates 1 --nbest 1")
                for steps in step_counts]
    return decodes
