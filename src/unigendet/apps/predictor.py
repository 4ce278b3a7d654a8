"""One loaded detector (and, for UniGenDet, generator) behind a lock: what the CLI and
the server call. Inputs are decoded, hardened RGB images (`data.imageio.open_image`).

Concurrent score requests are coalesced: each caller queues its images; whoever finds
the model free takes up to `max_batch` queued images (its own and others') through one
forward pass and hands every caller its results, so a burst of single-image requests
runs in a few batches instead of one pass each."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..detectors import CropScorer, CropScores, Explainer, Generator, load_detector, tile_boxes
from ..detectors.attribution import Attribution, attribute
from ..explain import cue_sentences, evidence, reasons
from ..labels import FAKE
from ..unified.prompts import evidence_question, parse_verdict
from ..weights import CheckpointError, resolve_checkpoint

BASE_HELP = "released checkpoints: a BAGEL directory supplying keys the checkpoint lacks"  # Predictor(base=...)


EXPLAINER = "shipped:explain"  # the UniGenDet that explains another detector's verdicts, when none is named


@dataclass
class Verdict:
    label: str  # "fake" | "real" | "uncertain" (see `uncertain` for why)
    p_fake: float
    explanation: str | None = None
    spread: float | None = None  # std of the crops' p_fake (multi-crop detectors)
    note: str | None = None  # where the explaining UniGenDet's own verdict differs from this one
    evidence: str | None = None  # where in the image the detector's evidence lies, and how confident it is
    tiles: np.ndarray | None = None  # the tile map the evidence was read from (see `Predictor.tile_scores`)
    attribution: Attribution | None = None  # which kind of evidence moved the detector's logit, by how much
    uncertain: str | None = None  # why the detector declined to call it (label "uncertain")
    novel: bool = False  # it declined because the image is unlike its training images (it leans to fake)


def disagreement(label: str, text: str | None, own_p_fake: float) -> str | None:
    """A note when the explaining model's own verdict (its written one, else its cls head's) is not
    `label`; None when they agree or the verdict is "uncertain"."""
    stated = parse_verdict(text or "")
    own = ("fake" if stated == FAKE else "real") if stated is not None else label_of(own_p_fake, 0.5)
    if label == "uncertain" or own == label:
        return None
    return f"UniGenDet's own reading differs: it calls the image {own} (its p_fake {own_p_fake:.2f})."


def label_of(p_fake: float, threshold: float) -> str:
    return "fake" if p_fake > threshold else "real"


def leaning(v: Verdict, threshold: float) -> str:
    """The side a verdict is explained from: its label, or for `uncertain` the side its p_fake lies on."""
    return v.label if v.label in ("fake", "real") else label_of(v.p_fake, threshold)


def evidence_questions(verdicts: Sequence[Verdict], attributions: Sequence[Attribution],
                       threshold: float) -> list[str]:
    """The questions an evidence-reading explainer is asked: each verdict's side and its evidence."""
    return [evidence_question(a.contributions, leaning(v, threshold))
            for v, a in zip(verdicts, attributions, strict=True)]


class Predictor:
    """Serialises model calls (safe under concurrent requests) and keeps the model loaded."""

    def __init__(self, checkpoint: str, device: str = "cpu", threshold: float | None = None, verdict: str = "cls",
                 base: str | None = None, max_batch: int = 16, explainer: str | None = EXPLAINER):
        if verdict not in ("cls", "text"):
            raise ValueError("verdict must be 'cls' (cls head / score) or 'text' (UniGenDet's written answer)")
        # `base`: a BAGEL directory for a released fine-tune's missing keys (see docs/full_scale.md)
        self.detector = load_detector(checkpoint, device=device, **({"base": base} if base else {}))
        self.kind, self.name = self.detector.kind, self.detector.name
        self.device = device
        # a detector that writes no answer is explained by a UniGenDet (loaded on first use)
        self.explainer_path = None if isinstance(self.detector, Explainer) else _available(explainer)
        self._explainer: Explainer | None = None
        if verdict == "text" and not isinstance(self.detector, Explainer):
            raise ValueError(f"a {self.kind} detector writes no answer; --verdict text needs a UniGenDet checkpoint")
        # None: the threshold the detector was calibrated with (0.5 for uncalibrated kinds)
        self.threshold = float(self.detector.threshold if threshold is None else threshold)
        if isinstance(self.detector, CropScorer):  # its `uncertain` rules compare crops with the same threshold
            self.detector.threshold = self.threshold
        self.verdict = verdict
        self.lock = threading.Lock()  # held while the model runs
        self.queue_lock = threading.Lock()
        self.queue: list[tuple[Image.Image, Future]] = []
        self.max_batch = max_batch

    @property
    def can_explain(self) -> bool:
        return isinstance(self.detector, Explainer) or self.explainer_path is not None

    def explainer(self) -> Explainer:
        if self._explainer is None:
            self._explainer = load_detector(self.explainer_path, device=self.device)
        return self._explainer

    @property
    def can_generate(self) -> bool:
        return isinstance(self.detector, Generator)

    def detect(self, images: Sequence[Image.Image], explain: bool = False) -> list[Verdict]:
        """Verdicts; with `explain`, also why: which kind of evidence moved the detector (its
        attribution, in words), the explaining model's measured cues and how they relate to the call
        (its own verdict sentence is never shown: the verdict is the detector's), where in the image
        the evidence is strongest and how clear the call is."""
        explain = explain or self.verdict == "text"
        if explain and isinstance(self.detector, Explainer):
            out, written = self._written(images)
        else:
            out, written = self._scored(images), [None] * len(images)
        if explain:
            with self.lock:
                attributions = attribute(self.detector, images)
            if not isinstance(self.detector, Explainer) and self.can_explain:
                written = self._explained(images, out, attributions)
            for v, image, a, text in zip(out, images, attributions, written, strict=True):
                v.attribution = a
                side = leaning(v, self.threshold) if v.novel else v.label  # a novel image's evidence still leans
                v.explanation = " ".join(filter(None, [reasons(a.contributions, side, a.exact),
                                                       cue_sentences(text, side)]))
                v.tiles = self.tile_scores(image) if self.has_tile_map(image) else None
                v.evidence = evidence(v.p_fake, self.threshold, v.tiles, side)
        return out

    def _written(self, images: Sequence[Image.Image]) -> tuple[list[Verdict], list[str | None]]:
        """A UniGenDet's verdicts and its written answers (the verdict stated there, for --verdict text)."""
        with self.lock:
            found = self.detector.explain_images(images)
        out = []
        for d in found:
            stated = parse_verdict(d.text or "") if self.verdict == "text" else None
            label = ("fake" if stated == FAKE else "real") if stated is not None else label_of(d.p_fake, self.threshold)
            out.append(Verdict(label, d.p_fake, note=disagreement(label, d.text, d.p_fake)))
        return out, [d.text for d in found]

    def _scored(self, images: Sequence[Image.Image]) -> list[Verdict]:
        """A scoring detector's verdicts."""
        if isinstance(self.detector, CropScorer):
            return [Verdict("uncertain" if c.uncertain else label_of(c.p_fake, self.threshold), c.p_fake,
                            spread=c.spread, uncertain=c.uncertain, novel=c.novel) for c in self._queued(images)]
        return [Verdict(label_of(p, self.threshold), p) for p in self._queued(images)]

    def _explained(self, images: Sequence[Image.Image], verdicts: list[Verdict],
                   attributions: list[Attribution]) -> list[str | None]:
        """The explaining UniGenDet's answers (given the verdicts and evidence when it reads them);
        a note on each verdict its own reading differs from."""
        explainer = self.explainer()
        questions = evidence_questions(verdicts, attributions, self.threshold) \
            if getattr(explainer, "reads_evidence", False) else None
        with self.lock:
            found = explainer.explain_images(images, questions) if questions else explainer.explain_images(images)
        for v, d in zip(verdicts, found, strict=True):
            v.note = disagreement(v.label, d.text, d.p_fake)
        return [d.text for d in found]

    def has_tile_map(self, image: Image.Image) -> bool:
        """Whether the image is larger than what the detector reads at once (else its tiles would
        all be the same window: nothing to localise)."""
        if isinstance(self.detector, CropScorer):
            return max(image.size) > self.detector.side
        return True

    def scores(self, images: Sequence[Image.Image]) -> list[float]:
        """p_fake per image, batched together with other threads' pending images."""
        return [r.p_fake if isinstance(r, CropScores) else r for r in self._queued(images)]

    def _score_batch(self, images: list[Image.Image]) -> list:
        if isinstance(self.detector, CropScorer):
            return self.detector.crop_scores(images)
        return [float(p) for p in self.detector.predict_images(images)]

    def _queued(self, images: Sequence[Image.Image]) -> list:
        """Each image's result (CropScores or p_fake), through the queue shared by all threads."""
        futures = [Future() for _ in images]
        with self.queue_lock:
            self.queue.extend(zip(images, futures, strict=True))
        while not all(f.done() for f in futures):
            if not self.lock.acquire(blocking=False):
                wait(futures, timeout=0.002)
                continue
            try:
                with self.queue_lock:
                    batch, self.queue = self.queue[:self.max_batch], self.queue[self.max_batch:]
                if batch:
                    try:
                        found = self._score_batch([im for im, _ in batch])
                        for (_, f), r in zip(batch, found, strict=True):
                            f.set_result(r)
                    except Exception as e:  # every waiting caller gets the error, not a hang
                        for _, f in batch:
                            f.set_exception(e)
            finally:
                self.lock.release()
        return [f.result() for f in futures]

    def tile_scores(self, image: Image.Image, grid: int = 4) -> np.ndarray:
        """(grid, grid) p_fake of each tile of the image, scored on its own: where the evidence
        lies. A crop-reading detector scores the native window of its input side centred on each
        tile (nothing resized); others score the tile itself, which their preprocessing resizes.
        An image narrower than `grid` pixels gets fewer, one-pixel-or-larger tiles."""
        w, h = image.size
        grid = max(1, min(grid, w, h))
        if isinstance(self.detector, CropScorer):
            boxes = tile_boxes(w, h, grid, self.detector.side)
        else:
            boxes = [(c * w // grid, r * h // grid, (c + 1) * w // grid, (r + 1) * h // grid)
                     for r in range(grid) for c in range(grid)]
        return np.asarray(self.scores([image.crop(b) for b in boxes]), dtype=np.float64).reshape(grid, grid)

    def generate(self, prompt: str, size: int | None = None, steps: int = 50, guidance: float = 4.0,
                 shift: float = 3.0, seed: int = 0, n: int = 1) -> torch.Tensor:
        """(n, 3, S, S) images in [-1, 1]; the same seed gives the same images."""
        import dataclasses

        from ..unified.flow import Guidance

        if not self.can_generate:
            raise ValueError(f"a {self.kind} detector cannot generate; use a UniGenDet checkpoint")
        if not 1 <= steps <= 1000 or not 1 <= n <= 64:
            raise ValueError("steps must be in 1..1000 and n in 1..64")
        with self.lock:
            return self.detector.generate([prompt] * n, size=size, steps=steps, shift=shift,
                                          guidance=dataclasses.replace(Guidance(), scale=guidance), seed=seed)


def _available(checkpoint: str | None) -> str | None:
    """The explaining checkpoint's path, or None when there is none (a package without one)."""
    if checkpoint is None:
        return None
    try:
        return str(resolve_checkpoint(checkpoint))
    except CheckpointError:
        return None


def timed(fn, *a, **kw):
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    return out, (time.perf_counter() - t0) * 1000
