"""`unigendet smoke`: the library core end to end on an untrained tiny model, in seconds:
one training step on a packed batch, save, reload, detect, generate."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..codecs import build_codec
from ..images import save_image
from ..labels import FAKE
from ..unified.checkpoint import load_model, save_checkpoint
from ..unified.flow import Guidance, interpolate, sample_t, target_velocity
from ..unified.inference import detect, generate_latents
from ..unified.losses import packed_losses
from ..unified.presets import create_model, get_config
from ..unified.prompts import detection_answer
from ..unified.samples import SampleBuilder
from ..unified.tokenizer import get_tokenizer


@dataclass(frozen=True)
class SmokeConfig:
    """`unigendet smoke`: exercise the library core on an untrained model."""

    out: str = "runs/smoke"  # the checkpoint and generated.png go here
    preset: str = "tiny"  # model preset (`unigendet models`)
    steps: int = 10  # sampling steps of the generated image
    seed: int = 0


def run_smoke(cfg: SmokeConfig) -> Path:
    """Print each stage's result; returns the generated image's path."""
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    config = get_config(cfg.preset)
    model = create_model(config)
    builder = SampleBuilder(config, get_tokenizer(config.tokenizer))
    lat = config.latent
    codec = build_codec(lat.codec, lat.channels, lat.downsample, lat.width)
    print(f"[demo] preset {config.name}: {model.num_parameters():,} parameters (untrained; training comes with "
          "`train`)")

    images = torch.rand(2, 3, config.image_size, config.image_size) * 2 - 1
    z = codec.encode(images)
    eps, t = torch.randn_like(z[1]), float(sample_t(1)[0])
    samples = [
        builder.detection(z[0], images[0], answer=detection_answer(FAKE, "Uniform noise texture."), label=FAKE),
        builder.text_to_image("a noise texture", interpolate(z[1], eps, t), t, target_velocity(z[1], eps)),
    ]
    losses = packed_losses(model, builder.pack(samples))
    sum(losses.values()).backward()
    print("[demo] losses of one packed batch:", {k: round(v.item(), 4) for k, v in losses.items()})

    ckpt = save_checkpoint(out / "checkpoint", model, config, meta={"step": 0, "note": "untrained demo"},
                           files={"codec": codec})
    model = load_model(ckpt)
    print(f"[demo] checkpoint written and reloaded: {ckpt}")

    t0 = time.perf_counter()
    result = detect(model, builder, [z[0]], [images[0]], explain=True, max_new_tokens=16)[0]
    print(f"[demo] detect: p_fake={result.p_fake:.3f} answer={result.text!r} ({time.perf_counter() - t0:.2f}s)")

    side = config.image_size // lat.pixels_per_token
    t0 = time.perf_counter()
    gen = generate_latents(model, builder, ["a noise texture"], (side, side), steps=cfg.steps,
                           guidance=Guidance(scale=4.0))
    save_image(codec.decode(gen)[0], out / "generated.png")
    print(f"[demo] generated {out / 'generated.png'} in {time.perf_counter() - t0:.2f}s ({cfg.steps} steps)")
    return out / "generated.png"
