"""The generation latent space of the small presets: the project's convolutional autoencoder,
trained on the built-in photos' generation crops at the model's image size.

Full scale uses the FLUX VAE. The small presets learn their own: an L1 autoencoder on random
crops (with flips) of the crops `generation_split` gives to text-to-image training, checked on the
held-out crops. The run directory holds `codec.safetensors`, which `--codec` hands to the
unified stages (and their checkpoints carry on).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import torch

from unigendet.codecs import build_codec
from unigendet.codecs.fit import train_autoencoder
from unigendet.data.generation import generation_split
from unigendet.data.imageio import open_image
from unigendet.data.readers import read_source
from unigendet.images import detection_input
from unigendet.unified.presets import get_config
from unigendet.weights import atomic_directory, save_weights

from .stages import StageConfig, StageResult, register_stage


@dataclass(frozen=True)
class CodecConfig(StageConfig):
    stage: str = "codec"
    preset: str = "tiny"  # the model preset whose latent space (codec, channels, downsampling, size) is trained
    data: str = "runs/data"  # captioned reals: the train split's generation crops
    out: str = "runs/codec"
    steps: int = 600
    batch: int = 32
    crop: int = 32  # side of the random training crops
    lr: float = 2e-3
    progress: bool = True



def load_images(records, size: int) -> torch.Tensor:
    return torch.stack([detection_input(open_image(r.path), size, "resize") for r in records])


@torch.no_grad()
def reconstruction_error(codec, images: torch.Tensor) -> dict[str, float]:
    """L1 and PSNR (images in [-1, 1], so peak-to-peak 2) of decode(encode(x))."""
    codec.eval()
    y = codec.reconstruct(images)
    mse = (y - images).pow(2).mean().item()
    return {"l1": (y - images).abs().mean().item(), "psnr": 10 * math.log10(4.0 / max(mse, 1e-12))}


@register_stage("codec", CodecConfig)
def run_codec(cfg: CodecConfig) -> StageResult:
    lat, size = get_config(cfg.preset).latent, get_config(cfg.preset).image_size
    torch.manual_seed(cfg.seed)  # the codec's initial weights: the same run twice gives the same codec
    codec = build_codec(lat.codec, lat.channels, lat.downsample, lat.width)
    if not codec.learned:
        raise ValueError(f"the {cfg.preset} preset's codec ({lat.codec}) has no weights to train")
    train, held = generation_split(read_source(cfg.data, strict=True))
    if not train:
        raise ValueError(f"{cfg.data}: no captioned real images in the train split")
    images = load_images(train, size)
    images = torch.cat([images, images.flip(-1)])  # mirrored photos are photos too
    losses = train_autoencoder(codec, images, steps=cfg.steps, batch_size=cfg.batch, crop=min(cfg.crop, size),
                               lr=cfg.lr, seed=cfg.seed)
    metrics = {"train_l1": float(sum(losses[-50:]) / len(losses[-50:])), "n_train": len(train),
               "n_heldout": len(held)}
    if held:
        metrics.update({f"heldout_{k}": v for k, v in reconstruction_error(codec, load_images(held, size)).items()})
    with atomic_directory(cfg.out) as tmp:
        save_weights(codec, tmp / "codec.safetensors")
        (tmp / "codec.json").write_text(json.dumps({"codec": lat.codec, "channels": lat.channels,
                                                    "downsample": lat.downsample, "preset": cfg.preset,
                                                    "train_config": cfg.to_dict()}, indent=2))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return StageResult.of_run(cfg.out, metrics)
