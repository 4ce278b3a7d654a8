"""Data: records, dataset readers, image loading, degradations, augmentation, writing, the built-in corpus."""

from .records import DataError, Record, parse_label

__all__ = ["DataError", "Record", "parse_label"]
