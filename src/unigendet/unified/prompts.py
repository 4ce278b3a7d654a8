"""Detection prompts and verdict parsing."""

from __future__ import annotations

import re

from ..labels import FAKE, LABEL_NAMES, REAL

DETECTION_QUESTION = "Does this image look real/fake?"

_VERDICT = re.compile(r"\bthis\s+is\s+an?\s+(real|fake)\s+image\b", re.IGNORECASE)


def evidence_question(contributions: dict[str, float], label: str) -> str:
    """The detection question followed by the verdict and the evidence of the detector an explainer
    explains (kind of evidence -> logit units toward generated), split by the side each kind points
    to, strongest first: what a model trained with the evidence in its prompt reads, so its answer
    states that detector's reasons."""
    ranked = sorted(contributions.items(), key=lambda kv: -abs(kv[1]))

    def listed(side):
        return ", ".join(f"{name} {value:+.1f}" for name, value in side) or "nothing"

    to_fake, to_real = [kv for kv in ranked if kv[1] > 0], [kv for kv in ranked if kv[1] < 0]
    return (f"{DETECTION_QUESTION} The detector calls it {label}. Toward generated: {listed(to_fake)}. "
            f"Toward a photo: {listed(to_real)}.")


def detection_answer(label: int, explanation: str = "") -> str:
    """'This is a fake image. <explanation>' or 'This is a real image. <explanation>'."""
    head = f"This is a {LABEL_NAMES[label]} image."
    return f"{head} {explanation.strip()}" if explanation.strip() else head


def parse_verdict(text: str) -> int | None:
    """The label stated by an answer, or None when it states none (counts as wrong)."""
    m = _VERDICT.search(text)
    if m is None:
        return None
    return FAKE if m.group(1).lower() == "fake" else REAL
