"""Explanations tied to measurements: cues measured on an image's pixels, the sentences that
state them, reading any explanation back into claims checked against the measurements, and the
sentences of the detector's own evidence (which kind of evidence moved it, where in the image, how
confident)."""

from .cues import CUES, LEVELS, Cues, CueScale, measure, measure_tensor
from .evidence import confidence, evidence, where
from .reasons import WrittenReasons, cue_sentences, read_reasons, reasons, reasons_agree
from .text import PHRASES, Reading, check, claim_sentences, describe, read_claims, reference_answer

__all__ = [
    "CUES",
    "LEVELS",
    "PHRASES",
    "CueScale",
    "Cues",
    "Reading",
    "WrittenReasons",
    "check",
    "claim_sentences",
    "confidence",
    "cue_sentences",
    "describe",
    "evidence",
    "measure",
    "measure_tensor",
    "read_claims",
    "read_reasons",
    "reasons",
    "reasons_agree",
    "reference_answer",
    "where",
]
