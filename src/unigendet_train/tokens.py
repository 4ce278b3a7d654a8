"""Detection samples for a frozen understanding encoder, made once: a bank of augmented views.

Each training image gets `views` native crops (view 0 the plain central crop, the others augmented
by `augment.make_view`: JPEG and blur with the same probability for both classes, flips, 90-degree
turns). For each view the bank keeps what a detection sample needs - the frozen encoder's tokens,
the clean codec latent of the view at the generation size, and the cues measured on the view, from
which its reference explanation is written (so the answer states what is in that very view). The
bank's tokens, cues and the views at the generation size are kept in a `views.ViewTable`, one
file per view recipe and encoder with rows keyed by image and view, so repeated runs, splits and
folds share the work; the latents are encoded at load time with the run's codec.

When the model learns to explain another detector (`teacher_evidence`), each view also carries
that detector's verdict and attribution, and its answer states them: the verdict, the reasons
(`unigendet.explain.reasons` without numbers), then the measured cues.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unigendet.data.augment import ViewConfig, make_view
from unigendet.data.imageio import open_image
from unigendet.data.records import Record
from unigendet.detectors.attribution import attribute
from unigendet.explain import Cues, CueScale, measure_tensor, reasons, reference_answer
from unigendet.images import crop_square, pil_to_tensor, tensor_to_pil
from unigendet.labels import FAKE, LABEL_NAMES, REAL
from unigendet.unified.packing import ImageTokens
from unigendet.unified.prompts import DETECTION_QUESTION, evidence_question
from unigendet.unified.samples import SampleBuilder

from .views import ViewTable, recipe_key, view_key, view_rng

AUGMENT = ViewConfig(side=256, jpeg_prob=0.5, blur_prob=0.1, flip=True, rot90=True, jitter=0.1)


@dataclass
class TeacherEvidence:
    """What the detector an explainer learns to explain reads in each view of a bank."""

    groups: tuple[str, ...]  # kinds of evidence, as `Attribution.contributions` names them
    contributions: torch.Tensor  # (N, V, G) logit units toward generated
    fake: torch.Tensor  # (N, V) bool: the detector's verdict on the view

    def label(self, idx: int, view: int = 0) -> int:
        return FAKE if bool(self.fake[idx, view]) else REAL

    def of(self, idx: int, view: int = 0) -> dict[str, float]:
        return dict(zip(self.groups, self.contributions[idx, view].tolist(), strict=True))

    def reasons(self, idx: int, view: int = 0) -> str:
        return reasons(self.of(idx, view), LABEL_NAMES[self.label(idx, view)], numbers=False)


@dataclass
class TokenBank:
    records: list[Record]
    tokens: torch.Tensor  # (N, V, T, D) float16: the encoder's tokens of each view
    latents: torch.Tensor  # (N, V, C, h, w): clean latents of each view at the generation size
    cues: torch.Tensor  # (N, V, 3): periodic, grid, texture of each view
    grid: tuple[int, int]
    scale: CueScale | None = None  # turns cues into the levels an answer states
    teacher: TeacherEvidence | None = None  # the explained detector's verdict and reasons, per view
    ask_evidence: bool = False  # the question carries the teacher's verdict and evidence (`evidence_question`)

    @property
    def labels(self) -> list[int]:
        return [r.label for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def views(self) -> int:
        return self.tokens.shape[1]

    def image(self, idx: int, view: int) -> ImageTokens:
        return ImageTokens(self.tokens[idx, view].float(), self.grid)

    def levels(self, idx: int, view: int = 0) -> dict[str, str] | None:
        """The cue levels of a view its answer states (None without a cue scale)."""
        return None if self.scale is None else self.scale.levels(Cues(*self.cues[idx, view].tolist()))

    def answer(self, idx: int, view: int) -> str:
        if self.scale is None:
            raise ValueError("a token bank states cue levels only with a cue scale")
        if self.teacher is None:
            return reference_answer(self.records[idx].label, self.levels(idx, view))
        return reference_answer(self.teacher.label(idx, view), self.levels(idx, view), self.teacher.reasons(idx, view))

    def question(self, idx: int, view: int = 0) -> str:
        if self.ask_evidence and self.teacher is not None:
            return evidence_question(self.teacher.of(idx, view), LABEL_NAMES[self.teacher.label(idx, view)])
        return DETECTION_QUESTION

    def training_view(self, idx: int, generator: torch.Generator, codec) -> tuple[ImageTokens, torch.Tensor, str, str]:
        """A random prepared view, whose answer states the cues measured on that view."""
        view = int(torch.randint(self.views, (1,), generator=generator))
        return self.image(idx, view), self.latents[idx, view], self.answer(idx, view), self.question(idx, view)

    def plain(self, i: int, j: int) -> tuple[list[torch.Tensor], list[ImageTokens]]:
        return list(self.latents[i:j, 0]), [self.image(k, 0) for k in range(i, j)]

    def photo_cues(self) -> list[Cues]:
        """The plain views' cues of the real photos: what a cue scale is fitted on."""
        return [Cues(*self.cues[i, 0].tolist()) for i, r in enumerate(self.records) if r.label == 1]


def view_image(record: Record, view: int, side: int, seed: int) -> torch.Tensor:
    """View `view` of a record as (3, side, side) in [-1, 1]: the central crop for view 0."""
    img = open_image(record.path)
    if view:
        img = make_view(img, dataclasses.replace(AUGMENT, side=side), view_rng(seed, record.path, view))
    return crop_square(pil_to_tensor(img), side)


FIELDS = ("tokens", "small", "cues")


@torch.no_grad()
def load_token_bank(records: list[Record], builder: SampleBuilder, codec, views: int = 1, seed: int = 0,
                    cache: str | Path | None = None, batch: int = 32, progress=None) -> TokenBank:
    """The bank of `views` views of each record (see the module docstring). The cache holds one
    file per view recipe, its rows keyed by image path and view index, so any subset of records
    (a fold, a split) reuses the views already made."""
    if not records:
        raise ValueError("no records to load")
    side = builder.cfg.detect_side
    keys = [view_key(r.path, v) for r in records for v in range(views)]
    recipe = {"side": side, "seed": seed, "augment": AUGMENT.key(), "encoder": builder.cfg.vit.encoder,
              "image_size": builder.cfg.image_size, "version": 2}
    table = ViewTable(Path(cache) / f"views-{recipe_key(recipe)}.safetensors" if cache else None, FIELDS)
    todo = table.missing(keys)
    by_key = dict(zip(keys, [(r, v) for r in records for v in range(views)], strict=True))
    for s in range(0, len(todo), batch):
        x = torch.stack([view_image(*by_key[k], side, seed) for k in todo[s:s + batch]])
        toks = builder.encode_images(x)
        table.meta["grid"] = list(toks[0].grid)
        small = ((torch.stack([builder.latent_view(v) for v in x]) + 1) * 127.5).round().to(torch.uint8)
        cues = torch.tensor([[c.periodic, c.grid, c.texture] for c in measure_tensor(x)])
        table.add(todo[s:s + batch], tokens=torch.stack([t.patches for t in toks]).half(), small=small, cues=cues)
        table.checkpoint()
        if progress:
            progress(min(s + batch, len(todo)), len(todo))
    table.save()
    rows = table.rows(keys)
    grid = tuple(table.meta["grid"])
    n = len(records)
    small = rows["small"].float() / 127.5 - 1
    latents = torch.cat([codec.encode(small[i:i + 64]).float() for i in range(0, len(small), 64)])
    tokens = rows["tokens"]
    return TokenBank(records, tokens.reshape(n, views, *tokens.shape[1:]),
                     latents.reshape(n, views, *latents.shape[1:]), rows["cues"].reshape(n, views, 3), grid)


@torch.no_grad()
def teacher_evidence(bank: TokenBank, detector, name: str, side: int, seed: int, cache: str | Path | None = None,
                     batch: int = 32, progress=None) -> TeacherEvidence:
    """`detector`'s verdict and attribution (`unigendet.detectors.attribution.attribute`) on every
    view of the bank, the views made as `load_token_bank` makes them; cached per view recipe and
    detector (`name` identifies its weights)."""
    views = bank.views
    keys = [view_key(r.path, v) for r in bank.records for v in range(views)]
    recipe = {"side": side, "seed": seed, "augment": AUGMENT.key(), "teacher": name, "version": 1}
    table = ViewTable(Path(cache) / f"teacher-{recipe_key(recipe)}.safetensors" if cache else None,
                      ("contributions", "logit"))
    by_key = dict(zip(keys, [(r, v) for r in bank.records for v in range(views)], strict=True))
    todo = table.missing(keys)
    for s in range(0, len(todo), batch):
        images = [tensor_to_pil(view_image(*by_key[k], side, seed)) for k in todo[s:s + batch]]
        found = attribute(detector, images)
        groups = sorted(found[0].contributions)
        table.meta["groups"] = groups
        table.add(todo[s:s + batch], contributions=torch.tensor([[a.contributions[g] for g in groups] for a in found]),
                  logit=torch.tensor([[a.logit] for a in found]))
        table.checkpoint()
        if progress:
            progress(min(s + batch, len(todo)), len(todo))
    table.save()
    rows = table.rows(keys)
    n = len(bank)
    threshold = float(getattr(detector, "threshold", 0.5))
    fake = rows["logit"][:, 0] > float(np.log(threshold / (1 - threshold)))
    return TeacherEvidence(tuple(table.meta["groups"]), rows["contributions"].reshape(n, views, -1),
                           fake.reshape(n, views))
