"""Sequence packing: many samples in one sequence, each with its own attention mask.

A sample is a list of *splits*. A split is a text span or an image block and has
one attention type:

- ``causal``: text; sees every earlier visible split, causal within itself;
- ``full``: a clean image (ViT tokens or t=0 latents); bidirectional within itself;
- ``noise``: a noised latent block being generated; bidirectional within itself
  and hidden from every other split.

Samples never see each other. Text gets consecutive RoPE positions; every token
of one image block (vision-start, tokens, vision-end) shares a single position,
and a clean block then advances the position by one (a noised block does not).

A detection sample (SMSA) and a text-to-image sample, with
``#`` = may attend (row = query, column = key)::

    detection: [L L | V V | q q | a a]      text-to-image: [c c | N N]
          L L V V q q a a                          c c N N
      L   # # . . . . . .                      c   # . . .
      L   # # . . . . . .                      c   # # . .
      V   # # # # . . . .                      N   # # # #
      V   # # # # . . . .                      N   # # # #
      q   # # # # # . . .
      q   # # # # # # . .     L clean latents (generation expert)
      a   # # # # # # # .     V ViT tokens, q question, a answer
      a   # # # # # # # #     c caption, N noised latents (hidden from all
                                other splits)

Building a batch is data work and happens here, never inside `forward`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

CAUSAL, FULL, NOISE = "causal", "full", "noise"


@dataclass
class ImageTokens:
    """Patch rows of one image: (n, dim) features on an (h, w) grid, row-major."""

    patches: torch.Tensor
    grid: tuple[int, int]
    t: float = 0.0  # flow time of latent tokens; 0 = clean
    target: torch.Tensor | None = None  # velocity target (noised latents only)
    align_target: torch.Tensor | None = None  # DIGA teacher features, (n, d)

    def __post_init__(self) -> None:
        h, w = self.grid
        if self.patches.shape[0] != h * w:
            raise ValueError(f"{self.patches.shape[0]} patches do not fill a {h}x{w} grid")


@dataclass
class Split:
    """One split of a sample: text ids, or a ViT / latent image block."""

    attn: str
    text: list[int] | None = None
    vit: ImageTokens | None = None
    latent: ImageTokens | None = None
    loss: bool = False  # text: next-token CE inside this split
    cls: bool = False  # the cls head reads this split's first position
    cls_label: int | None = None  # its training label, when known

    def __post_init__(self) -> None:
        if (self.text is None) + (self.vit is None) + (self.latent is None) != 2:
            raise ValueError("a split holds exactly one of text, vit, latent")
        if self.attn not in (CAUSAL, FULL, NOISE):
            raise ValueError(f"unknown attention type {self.attn!r}")
        if self.text is not None and self.attn != CAUSAL:
            raise ValueError("text splits are causal")
        if self.vit is not None and self.attn != FULL:
            raise ValueError("ViT splits are full")
        if self.attn == NOISE and self.latent is None:
            raise ValueError("only latent splits can be noised")


@dataclass
class Sample:
    splits: list[Split]
    rope_start: int = 0  # first RoPE position (the cached context's length in positions)


@dataclass
class PackedBatch:
    """Flat index tensors describing a packed sequence of `length` tokens."""

    length: int
    sample_lens: list[int]
    rope_pos: torch.Tensor  # (L,)
    split_ids: list[torch.Tensor]  # per sample, (n_s,) split index of each token
    split_attn: list[list[str]]  # per sample, attention type of each split
    text_ids: torch.Tensor
    text_index: torch.Tensor
    vit_patches: torch.Tensor
    vit_pos_ids: torch.Tensor
    vit_lens: list[int]
    vit_index: torch.Tensor
    latent_patches: torch.Tensor
    latent_pos_ids: torch.Tensor
    latent_t: torch.Tensor
    latent_index: torch.Tensor
    und_index: torch.Tensor
    gen_index: torch.Tensor
    ce_index: torch.Tensor  # positions whose next token is a target
    ce_targets: torch.Tensor
    mse_index: torch.Tensor  # noised latent positions with a velocity target
    mse_targets: torch.Tensor
    cls_index: torch.Tensor
    cls_labels: torch.Tensor  # -1 where the label is unknown (inference)
    align_index: torch.Tensor  # noised latent positions with a DIGA target
    align_targets: torch.Tensor
    next_rope: list[int] = field(default_factory=list)  # per sample, next free RoPE position

    def masks(self) -> list[torch.Tensor]:
        return [visibility(ids, attn) for ids, attn in zip(self.split_ids, self.split_attn)]

    def to(self, device: torch.device | str) -> PackedBatch:
        out = {}
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                value = value.to(device)
            elif name == "split_ids":
                value = [v.to(device) for v in value]
            out[name] = value
        return PackedBatch(**out)


def visibility(split_ids: torch.Tensor, split_attn: list[str]) -> torch.Tensor:
    """Boolean (n, n) mask of one sample, True where query row may attend key column."""
    q = split_ids[:, None]
    k = split_ids[None, :]
    dev = split_ids.device
    visible = torch.tensor([a != NOISE for a in split_attn], dtype=torch.bool, device=dev)[split_ids]
    causal = torch.tensor([a == CAUSAL for a in split_attn], dtype=torch.bool, device=dev)[split_ids]
    pos = torch.arange(split_ids.shape[0], device=dev)
    earlier = (k < q) & visible[None, :]
    within = (k == q) & (~causal[None, :] | (pos[None, :] <= pos[:, None]))
    return earlier | within


def block_diagonal(masks: list[torch.Tensor]) -> torch.Tensor:
    """The full (L, L) visibility of a packed batch: samples never see each other."""
    return torch.block_diag(*[m.to(torch.uint8) for m in masks]).bool()


def pack(
    samples: list[Sample],
    *,
    vision_start: int,
    vision_end: int,
    vit_side: int,
    latent_side: int,
    vit_dim: int | None = None,
    latent_dim: int | None = None,
) -> PackedBatch:
    """Pack samples into one sequence. `*_side` are the position-table sides."""
    acc = _Accumulator()
    for sample in samples:
        acc.add_sample(sample, vision_start, vision_end, vit_side, latent_side)
    return acc.finish(vit_dim, latent_dim)


class _Accumulator:
    def __init__(self) -> None:
        self.pos = 0
        self.lists: dict[str, list] = {
            k: []
            for k in (
                "rope",
                "text_ids",
                "text_index",
                "vit_patches",
                "vit_pos",
                "vit_lens",
                "vit_index",
                "lat_patches",
                "lat_pos",
                "lat_t",
                "lat_index",
                "und",
                "gen",
                "ce_index",
                "ce_targets",
                "mse_index",
                "mse_targets",
                "cls_index",
                "cls_labels",
                "align_index",
                "align_targets",
            )
        }
        self.sample_lens: list[int] = []
        self.split_ids: list[torch.Tensor] = []
        self.split_attn: list[list[str]] = []
        self.next_rope: list[int] = []

    def _text(self, ids: list[int], rope: list[int]) -> None:
        n = len(ids)
        idx = list(range(self.pos, self.pos + n))
        self.lists["text_ids"] += ids
        self.lists["text_index"] += idx
        self.lists["und"] += idx
        self.lists["rope"] += rope
        self.pos += n

    def _image(self, img: ImageTokens, kind: str, side: int, rope: int, noised: bool) -> None:
        h, w = img.grid
        if h > side or w > side:
            raise ValueError(f"{h}x{w} image grid exceeds the {side}x{side} position table")
        n = h * w
        idx = list(range(self.pos, self.pos + n))
        rows = torch.arange(h)[:, None] * side + torch.arange(w)[None, :]
        L = self.lists
        if kind == "vit":
            L["vit_patches"].append(img.patches)
            L["vit_pos"].append(rows.reshape(-1))
            L["vit_lens"].append(n)
            L["vit_index"] += idx
            L["und"] += idx
        else:
            L["lat_patches"].append(img.patches)
            L["lat_pos"].append(rows.reshape(-1))
            L["lat_t"] += [float(img.t)] * n
            L["lat_index"] += idx
            L["gen"] += idx
            if noised and img.target is not None:
                L["mse_index"] += idx
                L["mse_targets"].append(img.target)
            if noised and img.align_target is not None:
                L["align_index"] += idx
                L["align_targets"].append(img.align_target)
        L["rope"] += [rope] * n
        self.pos += n

    def add_sample(self, sample: Sample, vstart: int, vend: int, vit_side: int, lat_side: int) -> None:
        start = self.pos
        rope = sample.rope_start
        split_of: list[int] = []
        attn: list[str] = []
        for s_idx, split in enumerate(sample.splits):
            before = self.pos
            if split.text is not None:
                if split.cls:
                    self.lists["cls_index"].append(self.pos)
                    self.lists["cls_labels"].append(-1 if split.cls_label is None else int(split.cls_label))
                if split.loss:
                    n = len(split.text)
                    self.lists["ce_index"] += list(range(self.pos, self.pos + n - 1))
                    self.lists["ce_targets"] += split.text[1:]
                self._text(list(split.text), list(range(rope, rope + len(split.text))))
                rope += len(split.text)
            else:
                kind, img = ("vit", split.vit) if split.vit is not None else ("latent", split.latent)
                side = vit_side if kind == "vit" else lat_side
                self._text([vstart], [rope])
                self._image(img, kind, side, rope, split.attn == NOISE)
                self._text([vend], [rope])
                rope += split.attn != NOISE
            split_of += [s_idx] * (self.pos - before)
            attn.append(split.attn)
        self.sample_lens.append(self.pos - start)
        self.split_ids.append(torch.tensor(split_of, dtype=torch.long))
        self.split_attn.append(attn)
        self.next_rope.append(rope)

    def finish(self, vit_dim: int | None, latent_dim: int | None) -> PackedBatch:
        L = self.lists

        def idx(key: str) -> torch.Tensor:
            return torch.tensor(L[key], dtype=torch.long)

        def rows(key: str, dim: int | None) -> torch.Tensor:
            if L[key]:
                return torch.cat(L[key]).float()
            return torch.zeros(0, dim or 0)

        def cat_long(key: str) -> torch.Tensor:
            return torch.cat(L[key]).long() if L[key] else torch.zeros(0, dtype=torch.long)

        return PackedBatch(
            length=self.pos,
            sample_lens=self.sample_lens,
            rope_pos=idx("rope"),
            split_ids=self.split_ids,
            split_attn=self.split_attn,
            text_ids=idx("text_ids"),
            text_index=idx("text_index"),
            vit_patches=rows("vit_patches", vit_dim),
            vit_pos_ids=cat_long("vit_pos"),
            vit_lens=L["vit_lens"],
            vit_index=idx("vit_index"),
            latent_patches=rows("lat_patches", latent_dim),
            latent_pos_ids=cat_long("lat_pos"),
            latent_t=torch.tensor(L["lat_t"], dtype=torch.float),
            latent_index=idx("lat_index"),
            und_index=torch.tensor(sorted(L["und"]), dtype=torch.long),
            gen_index=idx("gen"),
            ce_index=idx("ce_index"),
            ce_targets=idx("ce_targets"),
            mse_index=idx("mse_index"),
            mse_targets=rows("mse_targets", latent_dim),
            cls_index=idx("cls_index"),
            cls_labels=idx("cls_labels"),
            align_index=idx("align_index"),
            align_targets=rows("align_targets", None),
            next_rope=self.next_rope,
        )
