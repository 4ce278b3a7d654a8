"""Explanations as sentences about measured cues, and reading them back.

Every sentence an explanation may contain is one of a fixed set of phrasings, each claiming a
level (or levels) of one cue (`cues.CUES`). `describe` writes the sentences for an image's
measured levels - the reference answers UniGenDet learns from, for real and fake images alike -
and `check` reads any explanation (written by a model or a person) back into claims and counts
how many agree with the image's measured levels. A sentence that is not a known phrasing is
reported as unparsed, never silently dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..labels import LABEL_NAMES

# cue -> (sentence, the levels it is true for); `describe` uses the first sentence true for a level
PHRASES: dict[str, tuple[tuple[str, frozenset[str]], ...]] = {
    "periodic": (
        ("Its fine detail repeats every few pixels, as upsampling leaves it.", frozenset({"high"})),
        ("No upsampling period beyond a photo's.", frozenset({"typical"})),
        ("No periodic pattern at all.", frozenset({"low"})),
    ),
    "grid": (
        ("An 8-pixel JPEG block grid shows.", frozenset({"high"})),
        ("No 8-pixel block grid.", frozenset({"low", "typical"})),
    ),
    "texture": (
        ("Smoother than most photos.", frozenset({"low"})),
        ("Texture as in a typical photo.", frozenset({"typical"})),
        ("Noisier than most photos.", frozenset({"high"})),
    ),
}
_VERDICT = re.compile(r"^this is an? (real|fake) image\.?$", re.IGNORECASE)
_SENTENCE = re.compile(r"[^.]+\.?")
# the reasons sentences (`reasons.reasons`, without numbers): not cue claims, read by `reasons.read_reasons`
_REASONS = re.compile(r"^(most of the evidence for|no kind of evidence points|the evidence is weak|"
                      r"the image's parts disagree)")


def _norm(sentence: str) -> str:
    return " ".join(sentence.lower().split()).rstrip(".")


_LOOKUP = {_norm(s): (cue, levels) for cue, rows in PHRASES.items() for s, levels in rows}


def describe(levels: dict[str, str]) -> str:
    """The sentences true of an image whose cues are at `levels` (cue -> "low"/"typical"/"high")."""
    out = []
    for cue, rows in PHRASES.items():
        out.append(next(s for s, ok in rows if levels[cue] in ok))
    return " ".join(out)


def reference_answer(label: int, levels: dict[str, str], reasons: str | None = None) -> str:
    """The answer UniGenDet learns: the verdict, the reasons for it when given (the sentences of
    `reasons.reasons` without numbers), then what was measured in this image."""
    return " ".join(filter(None, [f"This is a {LABEL_NAMES[label]} image.", reasons, describe(levels)]))


@dataclass
class Reading:
    """An explanation read back: the cue claims it makes and how many of them hold."""

    claims: dict[str, frozenset[str]] = field(default_factory=dict)  # cue -> levels the claim allows
    consistent: int = 0
    unparsed: list[str] = field(default_factory=list)  # sentences that are neither verdict nor a known claim

    @property
    def made(self) -> int:
        return len(self.claims)


def claim_sentences(text: str | None) -> list[tuple[str, str, frozenset[str]]]:
    """(sentence as written, cue, levels it allows) for each cue claim of a text, in order."""
    out = []
    for raw in _SENTENCE.findall(text or ""):
        s = _norm(raw)
        if s in _LOOKUP:
            out.append((raw.strip(), *_LOOKUP[s]))
    return out


def read_claims(text: str) -> Reading:
    """Claims of an explanation (the verdict sentence is not a cue claim). A cue claimed twice
    keeps only the levels both claims allow."""
    reading = Reading()
    for raw in _SENTENCE.findall(text or ""):
        s = _norm(raw)
        if not s or _VERDICT.match(s + ".") or _REASONS.match(s):
            continue
        if s not in _LOOKUP:
            reading.unparsed.append(raw.strip())
            continue
        cue, levels = _LOOKUP[s]
        reading.claims[cue] = reading.claims.get(cue, levels) & levels
    return reading


def check(text: str, levels: dict[str, str]) -> Reading:
    """`read_claims`, with the number of claims consistent with the measured `levels`."""
    reading = read_claims(text)
    reading.consistent = sum(levels[cue] in allowed for cue, allowed in reading.claims.items())
    return reading
