"""`unigendet data regenerate`: content-aligned fakes made from a pool's own real photos.

Every real image is passed through a pretrained autoencoder (encode, then decode). The copy shows
the same scene at the same size as its real and differs from it by the decoder's traces only, so a
detector trained on the pair cannot separate them by content, scale or file history. With
`region`, a second copy keeps the real's pixels except in one feathered elliptical region, taken
from the regenerated image: a local, inpainting-style edit.

Each copy keeps its real's split and group (no split separates a pair) and its published size and
format (so the metadata audit sees the pair alike); `source` names the real it was made from. The
images are lossless WebP, written one by one and whole, so a killed run resumes where it stopped;
the folder is marked incomplete until the manifest is written.

JPEG history is matched: where a real's pixels still show an 8x8 block grid (the photo was a JPEG
before the pool re-encoded it), its copies are JPEG-compressed on that same grid (quality 50-80, at
which 85-100% of them show it again): decoding wipes the grid, which would otherwise mark the real.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..codecs.base import CODECS, codec_from_entry
from ..data.audit import GRID
from ..data.degrade import JPEG
from ..data.imageio import ImageError, open_image
from ..data.readers import read_source
from ..data.records import DataError, Record
from ..data.writing import atomic_file, building, write_manifest_csv
from ..images import pil_to_tensor, tensor_to_pil
from ..labels import FAKE, REAL
from ..progress import progress_bar

JPEG_QUALITY = (50, 80)  # the range a copy of a real with JPEG history is compressed at
COLUMNS = ["path", "label", "generator", "split", "source", "group", "original_format", "original_width",
           "original_height"]


@dataclass(frozen=True)
class RegenerateConfig:
    """`unigendet data regenerate`: a fake copy of every real image of a pool, through a pretrained autoencoder."""

    data: str  # the pool (any supported layout) whose real images are regenerated
    out: str = "runs/regenerated"
    codec: str = "taef2"  # a pretrained codec (unigendet.codecs); its weights are read from --codec-path
    codec_path: str = ""  # the folder (or file) holding the codec's weights
    region: bool = True  # also a copy with only one feathered region regenerated (inpainting-style)
    match_jpeg: bool = True  # copies of a real whose pixels show a JPEG block grid are JPEG-saved on that grid
    splits: str = ""  # comma-separated splits to regenerate (default: all)
    seed: int = 0  # draws of the regions
    device: str = "cpu"


def blend_region(real: Image.Image, regenerated: Image.Image, rng: random.Random) -> Image.Image:
    """`real` with an elliptical region (15-50% of its area, feathered edge) taken from `regenerated`:
    a local edit whose pixels elsewhere are the real ones (both the same size)."""
    w, h = real.size
    area = rng.uniform(0.15, 0.5) * w * h
    aspect = rng.uniform(0.6, 1.6)
    rx, ry = np.sqrt(area / np.pi * aspect), np.sqrt(area / np.pi / aspect)
    cx, cy = rng.uniform(rx, max(rx, w - rx)), rng.uniform(ry, max(ry, h - ry))
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    m = np.clip((1.1 - d) / 0.2, 0, 1)[..., None]  # 1 inside, a soft ring at the edge
    out = np.asarray(real, dtype=np.float64) * (1 - m) + np.asarray(regenerated, dtype=np.float64) * m
    return Image.fromarray(np.round(out).astype(np.uint8))


def grid_phase(img: Image.Image) -> tuple[int, int] | None:
    """The (column, row) offset of an 8x8 JPEG block grid the pixels show, or None. Each axis's
    jumps are compared across the 8 possible phases; the grid is where they are GRID times the rest."""
    grey = np.asarray(img.convert("L"), dtype=np.float64)
    phases = []
    for jumps in (np.abs(np.diff(grey, axis=1)).mean(0), np.abs(np.diff(grey, axis=0)).mean(1)):
        n = len(jumps) // 8 * 8
        if n < 16:
            return None
        per_phase = jumps[:n].reshape(-1, 8).mean(0)
        best = int(per_phase.argmax())
        if per_phase[best] < GRID * max(np.delete(per_phase, best).mean(), 1e-6):
            return None
        phases.append(best)
    return phases[0], phases[1]


def jpeg_on_grid(img: Image.Image, phase: tuple[int, int], quality: int) -> Image.Image:
    """`img` JPEG-compressed with its 8x8 blocks on the grid at `phase` (as `grid_phase` gives it):
    padded so the encoder's blocks fall there, compressed, cropped back."""
    sx, sy = (7 - phase[0]) % 8, (7 - phase[1]) % 8
    x = np.pad(np.asarray(img), ((sy, 0), (sx, 0), (0, 0)), mode="edge")
    out = np.asarray(JPEG(quality)(Image.fromarray(x)))
    return Image.fromarray(out[sy:, sx:])


@torch.no_grad()
def regenerate(codec, img: Image.Image) -> Image.Image:
    """decode(encode(img)) at the image's own size: reflected up to a multiple of the codec's
    downsampling, cropped back after."""
    x = pil_to_tensor(img)[None]
    f = codec.downsample
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % f, -w % f
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if min(h, w) > max(pad_h, pad_w) else "replicate")
    return tensor_to_pil(codec.reconstruct(x)[0, :, :h, :w].clamp(-1, 1))


def load_codec(cfg: RegenerateConfig):
    if cfg.codec not in CODECS:
        raise ValueError(f"unknown codec {cfg.codec!r}; available: {sorted(CODECS)}")
    if not CODECS[cfg.codec].pretrained:
        pretrained = sorted(n for n, c in CODECS.items() if c.pretrained)
        raise ValueError(f"codec {cfg.codec!r} is trained by the project, not loaded from weights: "
                         f"regenerate through a pretrained one ({pretrained})")
    if not cfg.codec_path:
        raise ValueError(f"give the folder with the {cfg.codec} weights (--codec-path)")
    return codec_from_entry({"name": cfg.codec, "path": cfg.codec_path}).eval().to(cfg.device)


def _relative(real: Record, root: Path) -> str:
    return str(real.path.relative_to(root)) if real.path.is_relative_to(root) else str(real.path)


def _name(real: Record, root: Path) -> str:
    """A file name unique within the pool and readable: the real's stem and a hash of its path."""
    return f"{real.path.stem}_{hashlib.sha1(_relative(real, root).encode()).hexdigest()[:8]}.webp"


def copy_record(real: Record, path: Path, generator: str, root: Path) -> Record:
    return Record(path=path, label=FAKE, generator=generator, split=real.split, source=_relative(real, root),
                  group=real.group_key, original_format=real.original_format,
                  original_width=real.original_width, original_height=real.original_height)


def check_settings(cfg: RegenerateConfig) -> None:
    """Record what the copies depend on in OUT/regenerate.json; a folder begun with other settings
    is refused, so a rerun never mixes copies made two ways."""
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("out", "device", "splits")}
    settings["data"] = str(Path(cfg.data).resolve())
    file = Path(cfg.out) / "regenerate.json"
    if file.is_file() and json.loads(file.read_text()) != settings:
        raise ValueError(f"{cfg.out} holds copies made with other settings ({file}): give a new --out")
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    with atomic_file(file) as tmp:
        tmp.write_text(json.dumps(settings, indent=2))


def pool_root(data: Path) -> Path:
    return data.parent if data.is_file() else data


def build_regenerated(cfg: RegenerateConfig, progress: bool = True) -> list[Record]:
    """Write the copies and their manifest into `cfg.out`; returns the manifest's records."""
    data, out = Path(cfg.data), Path(cfg.out)
    splits = {s.strip() for s in cfg.splits.split(",") if s.strip()}
    reals = [r for r in read_source(data) if r.label == REAL and (not splits or r.split in splits)]
    if not reals:
        raise DataError(data, "no real images to regenerate" + (f" in splits {sorted(splits)}" if splits else ""))
    if out.resolve() == pool_root(data).resolve():
        raise ValueError("--out must be a new folder, not the pool itself")
    codec = load_codec(cfg)
    check_settings(cfg)
    root = pool_root(data)
    kinds = [f"{cfg.codec}-regenerated"] + ([f"{cfg.codec}-region"] if cfg.region else [])
    records, skipped = [], []
    with building(out):
        for real in progress_bar(reals, desc="regenerate", unit="img", enabled=progress):
            paths = [out / "images" / "fake" / kind / _name(real, root) for kind in kinds]
            if not all(p.is_file() for p in paths):
                try:
                    img = open_image(real.path)
                except ImageError as e:
                    skipped.append(f"{real.path}: {e}")
                    continue
                copy = regenerate(codec, img)
                rng = random.Random(f"{cfg.seed}:{paths[0].name}")
                made = [copy] + ([blend_region(img, copy, rng)] if cfg.region else [])
                phase = grid_phase(img) if cfg.match_jpeg else None
                if phase is not None:  # else the grid alone would tell the real from its copy
                    quality = rng.randint(*JPEG_QUALITY)
                    made = [jpeg_on_grid(m, phase, quality) for m in made]
                for path, im in zip(paths, made, strict=True):
                    with atomic_file(path) as tmp:
                        im.save(tmp, format="WEBP", lossless=True)
            records += [copy_record(real, p, kind, root) for p, kind in zip(paths, kinds, strict=True)]
        write_manifest_csv(out, records, COLUMNS)
        (out / "DATACARD.md").write_text(datacard(cfg, records, reals, skipped))
    for line in skipped:
        print(f"[regenerate] skipped {line}")
    return records


def datacard(cfg: RegenerateConfig, records: list[Record], reals: list[Record], skipped: list[str]) -> str:
    by = {}
    for r in records:
        by[(r.generator, r.split)] = by.get((r.generator, r.split), 0) + 1
    rows = "\n".join(f"| {g} | {s or '-'} | {n} |" for (g, s), n in sorted(by.items()))
    return (f"# Regenerated copies of `{cfg.data}`\n\n"
            f"Built by `unigendet data regenerate` (codec `{cfg.codec}` from `{cfg.codec_path}`, seed {cfg.seed}): "
            f"each of {len(reals)} real images encoded and decoded at its own size"
            + (", and a second copy with one feathered region regenerated and the rest real" if cfg.region else "")
            + (". Copies of a real whose pixels show a JPEG block grid are JPEG-compressed (quality "
               f"{JPEG_QUALITY[0]}-{JPEG_QUALITY[1]}) on the same grid" if cfg.match_jpeg else "")
            + ". Every copy is labelled fake and keeps its real's split, group and published size and format; "
            "`source` names the real. Derived from the pool: it carries the pool's licences and must not leave "
            f"the machine the pool is on.\n\n| generator | split | images |\n|---|---|---|\n{rows}\n"
            + (f"\nSkipped (unreadable): {len(skipped)}\n" if skipped else ""))
