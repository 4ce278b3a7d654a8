"""The reasons for a verdict, in words: which kind of evidence moved the detector's logit, and how
the measured cues relate to the call.

`reasons` reads an attribution (kind of evidence -> logit units, + toward generated) and names
the strongest evidence for the verdict and the strongest against it. It never gives a call with
only contrary evidence: when nothing supports the verdict, or the support is weak, it says the
call is uncertain. Without numbers (`numbers=False`) the same sentences are what an explaining
model learns to write; `read_reasons` reads them back and `reasons_agree` checks them against an
attribution. `cue_sentences` keeps an explaining model's cue claims and drops its verdict
sentence (the verdict shown is the detector's), saying whether the cues agree with the call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..backbones.base import EVIDENCE
from .text import claim_sentences

WEAK = 0.5  # logit units: support below this is too weak to carry a call on its own
MOVED = 0.05  # logit units: evidence that moved the logit less than this is not named
SIDE = {"fake": "generated", "real": "a photo"}
# cue levels unusual for a camera photo: evidence of generation when measured
UNUSUAL = {"periodic": frozenset({"high"}), "texture": frozenset({"low", "high"})}


def _listed(items: list[tuple[str, float]], numbers: bool = True) -> str:
    parts = [f"{name} ({value:+.1f})" if numbers else name for name, value in items]
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def reasons(contributions: dict[str, float], label: str, exact: bool = True, numbers: bool = True) -> str:
    """One or two sentences: the evidence for the verdict `label` ("fake", "real" or "uncertain")
    and the strongest against it; `exact` False says the numbers come from occlusion; `numbers`
    False leaves the logit units out (the sentences an explaining model writes)."""
    how = "" if exact or not numbers else " (the change in the fake logit when each is taken out of the image)"
    ranked = sorted(contributions.items(), key=lambda kv: -abs(kv[1]))
    to_fake = [(k, v) for k, v in ranked if v >= MOVED]  # evidence that barely moved the logit is not named
    to_real = [(k, v) for k, v in ranked if v <= -MOVED]
    if label == "uncertain" or label not in SIDE:
        if not to_fake or not to_real:
            side, named = ("generated", to_fake) if to_fake else ("a photo", to_real)
            which = f": {_listed(named[:2], numbers)}" if named else ""
            return f"The image's parts disagree, though the evidence overall points to {side}{which}{how}."
        return (f"The image's parts disagree. Toward generated: {_listed(to_fake[:1], numbers)}; toward a photo: "
                f"{_listed(to_real[:1], numbers)}{how}.")
    support, against = (to_fake, to_real) if label == "fake" else (to_real, to_fake)
    other = SIDE["real" if label == "fake" else "fake"]
    if not support:
        return (f"No kind of evidence points to {SIDE[label]} on its own; the call rests on the detector's "
                f"baseline, so treat it as uncertain{how}.")
    top = [support[0]] + [kv for kv in support[1:2] if abs(kv[1]) >= 0.5 * abs(support[0][1])]
    text = f"Most of the evidence for {SIDE[label]} is in {_listed(top, numbers)}"
    if against:
        text += f"; the strongest evidence for {other} is in {_listed(against[:1], numbers)}"
    text += f"{how}."
    if abs(support[0][1]) < WEAK:
        text += " The evidence is weak: treat the call as uncertain."
    return text


_SUPPORT = re.compile(r"most of the evidence for (generated|a photo) is in ([^;.]+)", re.IGNORECASE)
_AGAINST = re.compile(r"the strongest evidence for (generated|a photo) is in ([^;.]+)", re.IGNORECASE)


def _groups(span: str) -> tuple[str, ...]:
    """The kinds of evidence a span names, in the order written."""
    span = span.lower()
    found = sorted((span.find(g), g) for g in EVIDENCE if g in span)
    return tuple(g for _, g in found)


@dataclass(frozen=True)
class WrittenReasons:
    """The reasons sentence of an answer, read back: the side it supports, the kinds of evidence it
    cites for that side (strongest first) and the one it cites against (None when it cites none)."""

    side: str | None  # "fake" | "real" | None (no reasons sentence)
    support: tuple[str, ...] = ()
    against: str | None = None


_NUMBER = re.compile(r"\s*\([+-]?\d+(?:\.\d+)?\)")


def read_reasons(text: str | None) -> WrittenReasons:
    text = _NUMBER.sub("", text or "")
    m = _SUPPORT.search(text)
    if m is None:
        return WrittenReasons(None)
    side = "fake" if m.group(1).lower() == "generated" else "real"
    a = _AGAINST.search(text, m.end())
    against = _groups(a.group(2)) if a else ()
    return WrittenReasons(side, _groups(m.group(2)), against[0] if against else None)


def reasons_agree(text: str | None, contributions: dict[str, float], label: str) -> bool:
    """Whether an answer's written reasons are the ones `reasons` gives for this attribution and the
    verdict `label` ("fake"/"real"): the same side, the same strongest kind of evidence for it and
    the same strongest against it."""
    written = read_reasons(text)
    expected = read_reasons(reasons(contributions, label, numbers=False))
    if expected.side is None:  # nothing supports the verdict: the answer must say so
        return written.side is None and "no kind of evidence points" in (text or "").lower()
    return written.side == label and written.support[:1] == expected.support[:1] \
        and written.against == expected.against


def cue_sentences(text: str | None, label: str) -> str | None:
    """An explaining model's cue sentences without its verdict sentence, introduced by whether they
    agree with the call `label`; None when it states no cue."""
    claims = claim_sentences(text)
    if not claims:
        return None
    sentences = " ".join(s if s.endswith(".") else s + "." for s, _, _ in claims)
    unusual = any(cue in UNUSUAL and allowed <= UNUSUAL[cue] for _, cue, allowed in claims)
    if label not in SIDE:
        return f"Measured cues: {sentences}"
    agree = unusual == (label == "fake")
    lead = "The measured cues agree" if agree else "The measured cues point the other way and did not decide it"
    return f"{lead}: {sentences}"
