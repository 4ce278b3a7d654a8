"""Data: dataset readers, image loading, degradations, backbones, feature cache, built-in corpus."""

from .records import FAKE_LABEL, REAL_LABEL, DataError, Record, parse_label

__all__ = ["FAKE_LABEL", "REAL_LABEL", "DataError", "Record", "parse_label"]
