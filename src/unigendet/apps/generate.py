"""`unigendet generate`: text-to-image with a UniGenDet checkpoint into PNG files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..images import save_image
from .predictor import BASE_HELP, Predictor


@dataclass(frozen=True)
class GenerateConfig:
    """`unigendet generate`: the same seed gives the same image."""

    prompt: str  # the text to draw
    checkpoint: str  # a UniGenDet run or checkpoint directory
    output: str = "generated.png"  # the PNG written
    n: int = 1  # images (named OUT-0.png, OUT-1.png, ... when > 1)
    size: int | None = None  # pixels (default: the model's image size)
    steps: int = 50  # flow-matching sampling steps
    guidance: float = 4.0  # classifier-free guidance scale
    shift: float = 3.0  # timestep shift of the sampling schedule
    seed: int = 0
    device: str = "cpu"
    base: str | None = field(default=None, metadata={"help": BASE_HELP})


def generate_images(cfg: GenerateConfig) -> list[Path]:
    """Generate and save `cfg.n` images; returns their paths."""
    predictor = Predictor(cfg.checkpoint, device=cfg.device, base=cfg.base)
    images = predictor.generate(cfg.prompt, size=cfg.size, steps=cfg.steps, guidance=cfg.guidance, shift=cfg.shift,
                                seed=cfg.seed, n=cfg.n)
    out = Path(cfg.output)
    paths = [out] if cfg.n == 1 else [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(cfg.n)]
    for image, path in zip(images, paths, strict=True):
        save_image(image, path)
    return paths
