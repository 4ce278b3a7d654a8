"""Explanations tied to measurements: cues measured on an image's pixels, the sentences that
state them, and reading any explanation back into claims checked against the measurements."""

from .cues import CUES, LEVELS, Cues, CueScale, measure, measure_tensor
from .text import PHRASES, Reading, check, describe, read_claims, reference_answer

__all__ = ["CUES", "LEVELS", "PHRASES", "CueScale", "Cues", "Reading", "check", "describe", "measure",
           "measure_tensor", "read_claims", "reference_answer"]
