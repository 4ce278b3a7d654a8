"""The released BAGEL / UniGenDet checkpoint directories, loaded as they are.

Such a directory holds the model weights (`ema.safetensors`, or a sharded
`model.safetensors.index.json`), the FLUX autoencoder (`ae.safetensors`) and Qwen2's
`tokenizer.json`, but none of this project's `config.json`. The layout is the
`bagel-7b-mot` preset's; sizes that vary between releases are read from the file
headers (the vocabulary rows, the autoencoder's widths), never guessed.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import torch

from ..codecs.flux_ae import FluxAE
from .config import ModelConfig
from .loading import DeviceMap, SafetensorsFile, load_large, shard_files, stream_into
from .presets import get_config
from .tokenizer import get_tokenizer


def is_released(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and not (p / "config.json").is_file() and (p / "ae.safetensors").is_file()


def flux_ae_from_header(file: str | os.PathLike) -> FluxAE:
    """A meta-device FluxAE shaped like the file: widths, levels and blocks from its header."""
    sf = SafetensorsFile(file)
    names = sf.names()
    ch = sf.shape("encoder.conv_in.weight")[0]
    levels = 1 + max(int(m.group(1)) for k in names if (m := re.match(r"encoder\.down\.(\d+)\.", k)))
    mult = tuple(sf.shape(f"encoder.down.{i}.block.0.conv1.weight")[0] // ch for i in range(levels))
    blocks = len({k.split(".")[4] for k in names if k.startswith("encoder.down.0.block.")})
    channels = sf.shape("encoder.conv_out.weight")[0] // 2
    with torch.device("meta"):
        return FluxAE(channels, 2 ** (levels - 1), ch=ch, ch_mult=mult, num_res_blocks=blocks)


def released_config(path: str | os.PathLike, config: ModelConfig | None = None) -> ModelConfig:
    cfg = config or get_config("bagel-7b-mot")
    files = shard_files(path)
    embed = "language_model.model.embed_tokens.weight"
    if embed in files:
        rows = SafetensorsFile(files[embed]).shape(embed)[0]
        if rows != cfg.llm.vocab_size:
            cfg = cfg.replace(llm=dataclasses.replace(cfg.llm, vocab_size=rows))
    return cfg


def load_released(path: str | os.PathLike, config: ModelConfig | None = None, base: str | os.PathLike | None = None,
                  device: str | torch.device = "cpu", dtype: torch.dtype | None = torch.bfloat16,
                  device_map: DeviceMap | None = None):
    """(model, codec, tokenizer, LoadReport). `base`: a BAGEL directory whose weights fill the keys a
    fine-tuned checkpoint lacks (the public evaluation's behaviour, here explicit and reported)."""
    path = Path(path)
    cfg = released_config(path, config)
    model, report = load_large(cfg, path, dtype=dtype, device=device, device_map=device_map, fill_from=base)
    codec = flux_ae_from_header(path / "ae.safetensors")
    if (codec.channels, codec.downsample) != (cfg.latent.channels, cfg.latent.downsample):
        raise ValueError(f"ae.safetensors gives {codec.channels} channels x{codec.downsample}, the model expects "
                         f"{cfg.latent.channels} x{cfg.latent.downsample}")
    stream_into(codec, path / "ae.safetensors", dtype=dtype, device=device)
    return model, codec.eval(), get_tokenizer(cfg.tokenizer, path), report
