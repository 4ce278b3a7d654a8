"""Detection samples for a frozen understanding encoder, made once: a bank of augmented views.

Each training image gets `views` native crops (view 0 the plain central crop, the others augmented
by `augment.make_view`: JPEG and blur with the same probability for both classes, flips, 90-degree
turns). For each view the bank keeps what a detection sample needs - the frozen encoder's tokens,
the clean codec latent of the view at the generation size, and the cues measured on the view, from
which its reference explanation is written (so the answer states what is in that very view). The
bank's tokens, cues and the views at the generation size are cached on disk (safetensors), one
file per view recipe and encoder with rows keyed by image and view, so repeated runs, splits and
folds share the work; the latents are encoded at load time with the run's codec.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from unigendet.data.augment import ViewConfig, make_view
from unigendet.data.imageio import open_image
from unigendet.data.records import Record
from unigendet.explain import Cues, CueScale, measure_tensor, reference_answer
from unigendet.images import crop_square, pil_to_tensor
from unigendet.unified.packing import ImageTokens
from unigendet.unified.samples import SampleBuilder

AUGMENT = ViewConfig(side=256, jpeg_prob=0.5, blur_prob=0.1, flip=True, rot90=True, jitter=0.1)


@dataclass
class TokenBank:
    records: list[Record]
    tokens: torch.Tensor  # (N, V, T, D) float16: the encoder's tokens of each view
    latents: torch.Tensor  # (N, V, C, h, w): clean latents of each view at the generation size
    cues: torch.Tensor  # (N, V, 3): periodic, grid, texture of each view
    grid: tuple[int, int]
    scale: CueScale | None = None  # turns cues into the levels an answer states

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
        return reference_answer(self.records[idx].label, self.levels(idx, view))

    def training_view(self, idx: int, generator: torch.Generator, codec) -> tuple[ImageTokens, torch.Tensor, str]:
        """A random prepared view, whose answer states the cues measured on that view."""
        view = int(torch.randint(self.views, (1,), generator=generator))
        return self.image(idx, view), self.latents[idx, view], self.answer(idx, view)

    def plain(self, i: int, j: int) -> tuple[list[torch.Tensor], list[ImageTokens]]:
        return list(self.latents[i:j, 0]), [self.image(k, 0) for k in range(i, j)]

    def photo_cues(self) -> list[Cues]:
        """The plain views' cues of the real photos: what a cue scale is fitted on."""
        return [Cues(*self.cues[i, 0].tolist()) for i, r in enumerate(self.records) if r.label == 1]


def view_image(record: Record, view: int, side: int, seed: int) -> torch.Tensor:
    """View `view` of a record as (3, side, side) in [-1, 1]: the central crop for view 0."""
    img = open_image(record.path)
    if view:
        digest = hashlib.sha1(f"{seed}|{record.path}|{view}".encode()).digest()
        img = make_view(img, dataclasses.replace(AUGMENT, side=side), random.Random(int.from_bytes(digest[:8], "big")))
    return crop_square(pil_to_tensor(img), side)


def _recipe_key(side: int, seed: int, builder: SampleBuilder) -> str:
    recipe = {"side": side, "seed": seed, "augment": dataclasses.asdict(AUGMENT), "encoder": builder.cfg.vit.encoder,
              "image_size": builder.cfg.image_size, "version": 1}
    return hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


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
    keys = [f"{Path(r.path).resolve()}#{v}" for r in records for v in range(views)]
    file = Path(cache) / f"views-{_recipe_key(side, seed, builder)}.safetensors" if cache else None
    table = load_file(file) if file is not None and file.is_file() else {}
    stored = json.loads(bytes(table["keys"].tolist()).decode()) if table else []
    index = {k: i for i, k in enumerate(stored)}
    todo = [k for k in dict.fromkeys(keys) if k not in index]
    by_key = {k: (r, v) for k, (r, v) in zip(keys, [(r, v) for r in records for v in range(views)], strict=True)}
    new = {f: [] for f in FIELDS}
    grid = tuple(int(g) for g in table["grid"].tolist()) if table else (1, 1)
    for s in range(0, len(todo), batch):
        x = torch.stack([view_image(*by_key[k], side, seed) for k in todo[s:s + batch]])
        toks = builder.encode_images(x)
        grid = toks[0].grid
        new["tokens"].append(torch.stack([t.patches for t in toks]).half())
        new["small"].append(((torch.stack([builder.latent_view(v) for v in x]) + 1) * 127.5).round().to(torch.uint8))
        new["cues"].append(torch.tensor([[c.periodic, c.grid, c.texture] for c in measure_tensor(x)]))
        if progress:
            progress(min(s + batch, len(todo)), len(todo))
    if todo:
        for f in FIELDS:
            table[f] = torch.cat(([table[f]] if f in table else []) + new[f])
        start = len(index)
        index.update({k: start + i for i, k in enumerate(todo)})
        if file is not None:
            order = sorted(index, key=index.get)
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp = file.with_suffix(".tmp")
            save_file({**{f: table[f].contiguous() for f in FIELDS}, "grid": torch.tensor(grid),
                       "keys": torch.tensor(list(json.dumps(order).encode()), dtype=torch.uint8)}, str(tmp))
            tmp.replace(file)
    rows = torch.tensor([index[k] for k in keys])
    n = len(records)
    small = table["small"][rows].float() / 127.5 - 1
    latents = torch.cat([codec.encode(small[i:i + 64]).float() for i in range(0, len(small), 64)])
    tokens = table["tokens"][rows]
    return TokenBank(records, tokens.reshape(n, views, *tokens.shape[1:]),
                     latents.reshape(n, views, *latents.shape[1:]), table["cues"][rows].reshape(n, views, 3), grid)
