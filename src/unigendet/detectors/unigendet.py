"""UniGenDet as a `Detector` over its pipeline: p_fake from the cls head; it also explains
(`Explainer`) and generates (`Generator`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..data.imageio import open_image
from ..rundir import read_meta
from ..unified.inference import MAX_ANSWER, Detection
from ..unified.pipeline import UniGenDetPipeline
from ..unified.released import is_released
from .base import Detector, PathList, register_detector


@register_detector
class UniGenDetDetector(Detector):
    kind = "unigendet"

    def __init__(self, pipeline: UniGenDetPipeline, batch_size: int = 16, max_new_tokens: int = MAX_ANSWER,
                 reads_evidence: bool = False):
        super().__init__(pipeline.name, pipeline.device)
        self.pipeline, self.batch_size, self.max_new_tokens = pipeline, batch_size, max_new_tokens
        # trained to explain another detector from that detector's verdict and evidence in its prompt
        # (`unified.prompts.evidence_question`): explain_images then wants them as `questions`
        self.reads_evidence = reads_evidence

    def _detect(self, images: Sequence[Image.Image], explain: bool = False,
                questions: Sequence[str] | None = None) -> list[Detection]:
        return self.pipeline.detect_images(images, explain, batch_size=self.batch_size,
                                           max_new_tokens=self.max_new_tokens, questions=questions)

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return np.array([d.p_fake for d in self._detect(images)], dtype=np.float64)

    def explain_images(self, images: Sequence[Image.Image], questions: Sequence[str] | None = None) -> list[Detection]:
        return self._detect(images, explain=True, questions=questions)

    def explain(self, paths: PathList) -> list[Detection]:
        return self.explain_images([open_image(p) for p in paths])

    def generate(self, prompts: Sequence[str], **options) -> torch.Tensor:
        return self.pipeline.generate(prompts, **options)

    def image_features(self, images: Sequence[Image.Image]) -> np.ndarray:
        """The final-normed hidden state the cls head reads, (N, hidden)."""
        return torch.stack([d.state for d in self._detect(images)]).numpy()

    # A UniGenDet run is a model checkpoint (a run directory) or a released directory, which has no
    # config.json of ours.
    load_options = ("base",)

    @classmethod
    def claims(cls, path: Path) -> bool:
        return is_released(path)

    @classmethod
    def from_state(cls, run_dir: Path, config: dict[str, Any], device, base: str | None = None) -> UniGenDetDetector:
        """`base`: a BAGEL directory supplying the keys a released fine-tune lacks."""
        pipeline = UniGenDetPipeline.from_pretrained(run_dir, device=device, base=base)
        return cls(pipeline, reads_evidence=bool(read_meta(run_dir).get("evidence_prompt", False)))

    def save_pretrained(self, run_dir: str | os.PathLike, *, meta: dict | None = None,
                        json_files: dict[str, Any] | None = None, train: dict | None = None,
                        carry: tuple[str, ...] = ("log.jsonl",)) -> Path:
        """A UniGenDet checkpoint: a run directory like every kind's, its weights and codec inside."""
        return self.pipeline.save_pretrained(run_dir, meta=meta, train=train, json_files=json_files, carry=carry)
