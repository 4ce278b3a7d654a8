"""`unigendet data build`: the built-in real/fake corpus, made offline on CPU.

1. Real photos from installed packages (`sources.py`), split **by photo group**
   (near-duplicates together) into train / val / test - never by crop.
2. Each photo is downscaled at least 2x (wiping its JPEG block grid) and tiled
   into crops of `size + 2 * margin` pixels.
3. Every crop becomes one real image and one fake made *from that crop* by one
   generator (round-robin within each split), so the pair differs only in how
   the pixels were made. Both are centre-cropped to `size` (generator border
   effects removed) and saved the same way: RGB PNG without compression, so file
   size and encoding carry no label.
4. `manifest.csv` (path,label,generator,split,caption,explanation,source,group),
   `captions.jsonl` (reals, for text-to-image) and `DATACARD.md`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..codecs import ConvVAE, codec_from_entry
from ..codecs.fit import train_autoencoder
from ..data.readers import read_manifest
from ..data.records import Record
from ..data.writing import INCOMPLETE, atomic_file, building, write_manifest_csv
from ..images import pil_to_tensor
from ..labels import FAKE, REAL
from ..progress import progress_bar
from . import texts
from .fakes import (
    AUTOENCODERS,
    INTERPOLATORS,
    REALESRGAN_MODELS,
    CodecReconstruction,
    FakeGenerator,
    Interpolation,
    RealESRGAN,
    TextToImage,
)
from .sources import MIN_PHOTOS, PHOTO_SOURCES, SourcePhoto, check_photo_count, discover_photos

DEFAULT_GENERATORS = ("realesrgan-x4plus", "realesrgan-x4plus-anime", "realesrgan-animevideov3-x2", "conv-ae")
# More fake processes: several upsamplers and autoencoder families
RICH_GENERATORS = (*DEFAULT_GENERATORS, "nearest-x2", "bilinear-x2", "bicubic-x2", "conv-ae-transposed",
                   "conv-ae-bilinear", "conv-ae-pixelshuffle")
# Fake processes no default or rich build uses: the held-out check
HELDOUT_GENERATORS = ("realesrgan-animevideov3-x3", "realesrgan-animevideov3-x4", "lanczos-x3")
GENERATORS = (*REALESRGAN_MODELS, *INTERPOLATORS, *AUTOENCODERS)
SPLITS = ("train", "val", "test")
GENERATOR_SETS = {"default": DEFAULT_GENERATORS, "rich": RICH_GENERATORS, "heldout": HELDOUT_GENERATORS}


@dataclass(frozen=True)
class CorpusConfig:
    """`unigendet data build`: the built-in real/fake corpus, offline."""

    out: str  # the corpus folder (images, manifest.csv, DATACARD.md)
    size: int = 128  # image side in pixels
    margin: int = 8  # pixels cropped off each side after generation (generator border effects)
    crops_per_photo: int = 8
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)  # train / val / test shares of the photos
    generators: tuple[str, ...] = field(default=DEFAULT_GENERATORS, metadata={"choices": GENERATORS})  # fake processes
    taef2: str | None = None  # folder holding taef2_encoder.pth / taef2_decoder.pth
    generator_checkpoint: str | None = None  # a UniGenDet run: every real crop also gets a fake from its caption
    extra_photo_dirs: tuple[str, ...] = field(default_factory=tuple)  # extra folders of real photos
    photo_sources: str = field(default="all", metadata={"choices": PHOTO_SOURCES, "help": (
        "all installed photo packages, or only the photos pip installs (the same set on every machine)")})
    allow_small: bool = field(default=False, metadata={"help": (
        f"build even with fewer than {MIN_PHOTOS} source photos installed (without the Debian photo packages: "
        "a fraction of the documented corpus)")})
    autoencoder_steps: int = 200  # training steps of each autoencoder generator
    jpeg_history: float = 0.0  # share of pairs JPEG-compressed (same quality for real and fake)
    jpeg_quality: tuple[int, int] = (60, 95)  # the range of those JPEG qualities
    only_split: str | None = field(default=None, metadata={"choices": SPLITS, "help": (
        "keep one split's photos (a held-out set shares the split seed)")})
    seed: int = 0


# Corpus recipes (bench/generalisation.py, `make demo`): CorpusConfig fields
PRESETS = {
    "default": {},
    "rich": {"generators": RICH_GENERATORS, "crops_per_photo": 16, "jpeg_history": 0.3},
    "heldout": {"generators": HELDOUT_GENERATORS, "size": 192, "crops_per_photo": 24, "only_split": "test"},
}


def split_groups(photos: list[SourcePhoto], fractions, seed: int) -> dict[str, str]:
    """Assign whole photo groups to splits so each split gets about its fraction of photos."""
    groups = sorted({p.group for p in photos})
    random.Random(seed).shuffle(groups)
    sizes = Counter(p.group for p in photos)
    total, done, out = len(photos), 0, {}
    bounds = np.cumsum(fractions) / sum(fractions)
    for g in groups:
        out[g] = SPLITS[min(int(np.searchsorted(bounds, (done + 0.5 * sizes[g]) / total)), 2)]
        done += sizes[g]
    return out


def photo_crops(photo: SourcePhoto, side: int, count: int, rng: random.Random) -> list[Image.Image]:
    """Downscale the photo at least 2x (shorter side at most 4 crops) and take `count` tiles
    from a half-overlapping grid."""
    img = Image.open(photo.path).convert("RGB")
    w, h = img.size
    target = min(min(w, h) / 2, 4 * side)
    if target < side:
        return []
    s = target / min(w, h)
    img = img.resize((round(w * s), round(h * s)), Image.Resampling.BICUBIC, reducing_gap=3.0)
    step = side // 2
    cells = [(x, y) for y in range(0, img.height - side + 1, step) for x in range(0, img.width - side + 1, step)]
    return [img.crop((x, y, x + side, y + side)) for x, y in rng.sample(cells, min(count, len(cells)))]


def make_generators(cfg: CorpusConfig, train_crops: list[Image.Image]) -> list[FakeGenerator]:
    gens: list[FakeGenerator] = []
    for name in cfg.generators:
        if name in REALESRGAN_MODELS:
            gens.append(RealESRGAN(name))
        elif name in INTERPOLATORS:
            gens.append(Interpolation(name))
        elif name in AUTOENCODERS:
            if not train_crops:
                raise ValueError(f"{name} is trained on the train split's crops, and there are none")
            torch.manual_seed(cfg.seed)
            ae = ConvVAE(channels=16, downsample=8, width=24, upsample=AUTOENCODERS[name])
            images = torch.stack([pil_to_tensor(c) for c in train_crops])
            train_autoencoder(ae, images, steps=cfg.autoencoder_steps, seed=cfg.seed)
            gens.append(CodecReconstruction(name, ae, "was reconstructed by a small convolutional autoencoder "
                                            "that compresses it 8x in each direction"))
        else:
            raise ValueError(f"unknown generator {name!r}; available: {GENERATORS}")
    if cfg.taef2:
        gens.append(CodecReconstruction("taef2", codec_from_entry({"name": "taef2", "path": cfg.taef2}),
                                        "was reconstructed through the latent space of a tiny FLUX.2 autoencoder"))
    return gens


def centre(img: Image.Image, margin: int) -> Image.Image:
    return img.crop((margin, margin, img.width - margin, img.height - margin)) if margin else img


def shared_jpeg(real: Image.Image, fake: Image.Image, quality: int) -> tuple[Image.Image, Image.Image]:
    """Both images through JPEG at one quality (decoded back to pixels; saved as PNG like the rest)."""
    from ..data.degrade import JPEG

    jpeg = JPEG(quality)
    return jpeg(real), jpeg(fake)


def save_png(img: Image.Image, path: Path) -> None:
    """Pixels only: no ICC profile, EXIF or text chunk carried over from a source photo (written whole
    or not at all)."""
    with atomic_file(path) as tmp:
        Image.fromarray(np.asarray(img.convert("RGB"))).save(tmp, format="PNG", compress_level=0)


def is_built(folder: str | Path) -> bool:
    """Whether `folder` holds a finished build (a manifest, and no mark of a build under way or killed)."""
    return (Path(folder) / "manifest.csv").is_file() and not (Path(folder) / INCOMPLETE).exists()


def build_corpus(cfg: CorpusConfig, progress: bool = True) -> list[Record]:
    """Build the corpus into `cfg.out`, marked incomplete until its manifest is written (last): a
    killed build is refused by the readers, and a rerun rewrites it whole. Too few source photos
    stop it before `cfg.out` is touched."""
    photos = discover_photos(cfg.extra_photo_dirs, cfg.photo_sources)
    if not photos:
        raise RuntimeError("no source photos installed (needs scikit-image, scikit-learn or matplotlib)")
    check_photo_count(photos, cfg.allow_small)
    with building(cfg.out):
        return _build_corpus(cfg, photos, progress)


def _build_corpus(cfg: CorpusConfig, photos: list[SourcePhoto], progress: bool) -> list[Record]:
    out = Path(cfg.out)
    (out / "manifest.csv").unlink(missing_ok=True)  # a previous build's manifest no longer describes the folder
    for stale in out.rglob(".*.tmp-*"):  # half-written files of a killed build
        stale.unlink()
    split_of = split_groups(photos, cfg.fractions, cfg.seed)
    rng = random.Random(cfg.seed)
    crops: dict[str, list[tuple[SourcePhoto, Image.Image]]] = {s: [] for s in SPLITS}
    for photo in photos:
        for crop in photo_crops(photo, cfg.size + 2 * cfg.margin, cfg.crops_per_photo, rng):
            crops[split_of[photo.group]].append((photo, crop))
    generators = make_generators(cfg, [c for _, c in crops["train"]])
    reference = float(np.median([texts.hf_energy(centre(c, cfg.margin)) for _, c in crops["train"]] or [1.0]))
    if cfg.only_split:
        crops = {s: (v if s == cfg.only_split else []) for s, v in crops.items()}

    records: list[Record] = []
    total = sum(len(v) for v in crops.values())
    bar = _progress(total, progress)
    for split in SPLITS:
        for i, (photo, crop) in enumerate(crops[split]):
            gen = generators[i % len(generators)]
            real = centre(crop, cfg.margin)
            text = texts.caption(photo.subject, real)
            fake = centre(gen(crop, text), cfg.margin)
            if cfg.jpeg_history and rng.random() < cfg.jpeg_history:  # one compression history for the whole pair
                real, fake = shared_jpeg(real, fake, rng.randint(*cfg.jpeg_quality))
            stem = f"{i:05d}"
            for label, img, kind in ((REAL, real, "real"), (FAKE, fake, "fake")):
                path = out / "images" / split / kind / f"{stem}.png"
                save_png(img, path)
                records.append(Record(path, label, gen.name, split, caption=text, source=photo.id, group=photo.group,
                                      explanation=texts.explanation(label, img, reference, gen.how)))
            bar.update(1)
    bar.close()
    write_outputs(cfg, records, photos, split_of)
    if cfg.generator_checkpoint:
        records = add_text_to_image_pairs(out, out, cfg.generator_checkpoint, cfg.seed, progress)
    return records


def add_text_to_image_pairs(corpus: str | Path, out: str | Path, checkpoint: str | Path, seed: int = 0,
                            progress: bool = True) -> list[Record]:
    """Content-aligned pairs from the project's own generator: for every real crop of `corpus`, the
    image generated from its caption beside the crop downscaled to the generator's size, so both
    sides show the same subject at the same size and only how the pixels were made differs.
    Written to `out` with the corpus's own images (hard links where possible); `out` may be `corpus`.
    Returns every record of the result."""
    corpus, out = Path(corpus), Path(out)
    with building(out):  # a rerun after a kill may read `out`'s manifest: written last, it is whole
        return _add_pairs(read_manifest(corpus / "manifest.csv", strict=True), corpus, out, checkpoint, seed,
                          progress)


def _add_pairs(records: list[Record], corpus: Path, out: Path, checkpoint: str | Path, seed: int,
               progress: bool) -> list[Record]:
    if out.resolve() != corpus.resolve():
        records = [_linked(r, corpus, out) for r in records]
    t2i = TextToImage(checkpoint, seed=seed)
    side = t2i.pipeline.config.image_size
    seen, reals = set(), []
    for r in records:
        if r.label == REAL and r.caption and str(r.path) not in seen:
            seen.add(str(r.path))
            reals.append(r)
    fakes = t2i.many([r.caption for r in reals], progress)
    small = [Image.open(r.path).convert("RGB").resize((side, side), Image.Resampling.BICUBIC, reducing_gap=3.0)
             for r in reals]
    reference = float(np.median([texts.hf_energy(im) for im in small] or [1.0]))
    for i, (r, real, fake) in enumerate(zip(reals, small, fakes, strict=True)):
        for label, img, kind in ((REAL, real, "real"), (FAKE, fake, "fake")):
            path = out / "images" / r.split / f"{kind}-t2i" / f"{i:05d}.png"
            save_png(img, path)
            records.append(Record(path, label, t2i.name, r.split, caption=r.caption, source=r.source, group=r.group,
                                  explanation=texts.explanation(label, img, reference, t2i.how)))
    write_manifest(out, records)
    card = out / "DATACARD.md"
    note = (f"\n## Content-aligned pairs from {t2i.name}\n\n{len(reals)} real crops, each downscaled to {side} px "
            f"beside the image `{checkpoint}` generated from its caption ({t2i.steps} sampling steps), in "
            "`images/<split>/real-t2i` and `images/<split>/fake-t2i`.\n")
    card.write_text((card.read_text() if card.is_file() else "# Corpus\n") + note)
    return records


def _linked(r: Record, corpus: Path, out: Path) -> Record:
    target = out / Path(r.path).relative_to(corpus)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(r.path, target)
        except OSError:
            shutil.copy2(r.path, target)
    return dataclasses.replace(r, path=target)


def write_manifest(out: Path, records: list[Record]) -> None:
    """`captions.jsonl` (the reals, for text-to-image), then `manifest.csv`; each written whole or not at all."""
    with atomic_file(out / "captions.jsonl") as tmp, tmp.open("w", encoding="utf-8") as f:
        for r in records:
            if r.label == REAL:
                f.write(json.dumps({"image": r.to_row(out)["path"], "caption": r.caption, "split": r.split}) + "\n")
    write_manifest_csv(out, records, ["path", "label", "generator", "split", "caption", "explanation", "source",
                                      "group"])


def write_outputs(cfg: CorpusConfig, records: list[Record], photos: list[SourcePhoto], split_of: dict) -> None:
    out = Path(cfg.out)
    (out / "corpus.json").write_text(json.dumps(asdict(cfg), indent=2))
    (out / "DATACARD.md").write_text(datacard(cfg, records, photos, split_of))
    write_manifest(out, records)


def datacard(cfg: CorpusConfig, records: list[Record], photos: list[SourcePhoto], split_of: dict) -> str:
    by = Counter((r.split, r.generator, "real" if r.label == REAL else "fake") for r in records)
    gens = sorted({r.generator for r in records})
    lines = [
        "# Built-in corpus", "",
        f"Built by `unigendet data build` (seed {cfg.seed}): {len(records)} images of {cfg.size}x{cfg.size} px, "
        "RGB PNG without compression for both classes.", "",
        "Each real crop is paired with one fake made from that same crop by the generator named on both rows.",
        f"A share of {cfg.jpeg_history:.0%} of the pairs went through JPEG (quality {cfg.jpeg_quality[0]}-"
        f"{cfg.jpeg_quality[1]}), real and fake at the same quality." if cfg.jpeg_history else
        "No image went through JPEG.",
        "Splits are by source photo group (near-duplicate photos share a group), never by crop.", "",
        "## Counts (real / fake)", "",
        "| split | " + " | ".join(gens) + " | total |", "|---" * (len(gens) + 2) + "|",
    ]
    for s in SPLITS:
        cells = [f"{by[(s, g, 'real')]} / {by[(s, g, 'fake')]}" for g in gens]
        n = sum(by[(s, g, c)] for g in gens for c in ("real", "fake"))
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {n} |")
    lines += ["", "## Source photos", "", "| photo | split | package | licence |", "|---|---|---|---|"]
    lines += [f"| {p.id} | {split_of[p.group]} | {p.package} | {p.licence} |" for p in photos]
    lines += ["", "## Generators", ""]
    lines += [f"- `{g}`" for g in gens]
    return "\n".join(lines) + "\n"


def _progress(total: int, enabled: bool):
    return progress_bar(total=total, desc="corpus", unit="pair", enabled=enabled)
