"""Data: records, dataset readers, image loading, degradations, augmentation, writing (making data, the
built-in corpus among it, is `unigendet.corpus`)."""

from .records import DataError, Record, parse_label

__all__ = ["DataError", "Record", "parse_label"]
