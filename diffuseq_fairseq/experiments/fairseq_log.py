"""Reading fairseq-train's logs: the one parser of its JSON records and its timestamps.

With ``--log-format json`` fairseq logs each record as ``... | train_inner | {json}`` (also
``train``, ``valid``, ``train_inner``); fairseq-generate ends with "Translated N sentences ... in
Xs (Y sentences/s)".
"""
import json
import math
import re
import time
from pathlib import Path
from typing import List

_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \| \w+ \| (\S+) \|")
_GENERATE_FOOTER = re.compile(r"Translated [\d,]+ sentences .* in ([\d.]+)s \(([\d.]+) sentences/s")


def records(text: str, kind: str) -> List[dict]:
    """The JSON records of one kind (``train``, ``train_inner``, ``valid``), in log order."""
    pattern = re.compile(rf"(?:^|[\s|]){re.escape(kind)}\s*[|:]\s*(\{{.*\}})\s*$")
    found = []
    for line in text.splitlines():
        match = pattern.search(line)
        if match:
            found.append(json.loads(match.group(1)))
    return found


def log_times(text: str, logger: str = "") -> List[float]:
    """Epoch seconds of the log lines written by ``logger`` (any logger if empty)."""
    stamps = []
    for line in text.splitlines():
        match = _TIMESTAMP.match(line)
        if match and (not logger or match.group(2) == logger):
            stamps.append(time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")))
    return stamps


def generate_timing(text: str):
    """(seconds, sentences/s) from fairseq-generate's footer; NaN for both without one."""
    footer = _GENERATE_FOOTER.search(text)
    return (float(footer.group(1)), float(footer.group(2))) if footer else (math.nan, math.nan)


def peak_rss_mib(path: Path) -> float:
    """The peak resident memory a launched process wrote (KiB) to ``path``, in MiB; NaN if it wrote none."""
    return int(path.read_text()) / 1024 if path.exists() else math.nan


def training_summary(text: str, checkpoint: str, seconds: float, peak_mib: float) -> dict:
    """Updates, tokens/s, peak RSS and the validation curve of a finished fairseq-train log."""
    epochs, inner, valid = records(text, "train"), records(text, "train_inner"), records(text, "valid")
    # fairseq's validation records carry no clock: their minutes come from the log timestamps.
    started = min(log_times(text), default=0.0)
    valid_minutes = [(stamp - started) / 60 for stamp in log_times(text, "valid")]
    # With --eval-bleu on, fairseq logs no BLEU when the hypotheses hold no words at all: that is 0.
    no_bleu = 0.0 if "'eval_bleu': True" in text else math.nan
    # Per-epoch summaries, plus the train_inner intervals of an epoch cut by --stop-time-hours.
    wps = [float(e["train_wps"]) for e in epochs] + [float(e["wps"]) for e in inner]
    updates = max([int(e["train_num_updates"]) for e in epochs] + [int(e["num_updates"]) for e in inner], default=0)
    return {
        "checkpoint": checkpoint,
        "train_seconds": seconds,
        "updates": updates,
        "train_tokens_per_s": sum(wps) / len(wps) if wps else math.nan,
        "train_peak_rss_mib": peak_mib,
        "valid_curve": [{"updates": int(v.get("valid_num_updates", 0)), "loss": float(v["valid_loss"]),
                         "bleu": float(v.get("valid_bleu", no_bleu)), "minutes": minutes}
                        for v, minutes in zip(valid, valid_minutes)],
    }
