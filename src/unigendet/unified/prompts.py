"""Detection prompts and verdict parsing."""

from __future__ import annotations

import re

from ..labels import FAKE, LABEL_NAMES, REAL

DETECTION_QUESTION = "Does this image look real/fake?"

_VERDICT = re.compile(r"\bthis\s+is\s+an?\s+(real|fake)\s+image\b", re.IGNORECASE)


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
