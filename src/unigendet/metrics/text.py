"""Explanation metrics against reference texts: ROUGE-L F (with stemming, the
`rouge-score` package) and CSS, the cosine of TF-IDF vectors fitted on the pair
(as the public UniGenDet/FakeClue evaluation computes it)."""

from __future__ import annotations

import numpy as np


def rouge_l(predictions: list[str], references: list[str]) -> list[float]:
    from rouge_score import rouge_scorer

    _same_length(predictions, references)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)]


def css(predictions: list[str], references: list[str]) -> list[float]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    _same_length(predictions, references)
    out = []
    for p, r in zip(predictions, references, strict=True):
        if not p.strip() or not r.strip():
            out.append(0.0)
            continue
        try:
            v = TfidfVectorizer().fit_transform([p, r]).toarray()
        except ValueError:  # no word tokens at all (e.g. only punctuation)
            out.append(0.0)
            continue
        n = np.linalg.norm(v, axis=1)
        out.append(float(v[0] @ v[1] / (n[0] * n[1])) if n.all() else 0.0)
    return out


def _same_length(a: list[str], b: list[str]) -> None:
    if len(a) != len(b):
        raise ValueError(f"{len(a)} predictions for {len(b)} references")
