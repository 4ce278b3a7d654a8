"""The FLUX.1 autoencoder BAGEL generates in: 16 latent channels, 8x down, latents
normalised as `0.3611 * (z - 0.1159)`. Parameter names follow the released `ae.safetensors`
(`encoder.down.{i}.block.{j}.conv1`, `decoder.up.{i}.upsample.conv`, `*.mid.attn_1.q`, ...),
so the official file loads with `load_weights` / `loading.stream_into` unchanged.

Shape of the network (written here from the published layout): GroupNorm(32) + SiLU
residual blocks, one single-head self-attention block in the middle, stride-2 convs with
right/bottom zero padding going down, nearest x2 + conv going up; the decoder has one
more residual block per level than the encoder, and `up[i]` is the level of width
`ch * ch_mult[i]` (run from the last index to the first).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Codec, register_codec

SCALE, SHIFT = 0.3611, 0.1159


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, c, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))
        skip = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return skip + h


class AttnBlock(nn.Module):
    """One head over all positions, 1x1 convs for q, k, v and the output."""

    def __init__(self, c: int):
        super().__init__()
        self.norm = _norm(c)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = self.norm(x)
        q, k, v = (m(n).flatten(2).transpose(1, 2)[:, None] for m in (self.q, self.k, self.v))  # (b, 1, hw, c)
        o = F.scaled_dot_product_attention(q, k, v)[:, 0].transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(o)


class Downsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _middle(c: int) -> nn.Module:
    mid = nn.Module()
    mid.block_1, mid.attn_1, mid.block_2 = ResnetBlock(c, c), AttnBlock(c), ResnetBlock(c, c)
    return mid


def _level(blocks: list[nn.Module], resample: nn.Module | None, name: str) -> nn.Module:
    level = nn.Module()
    level.block = nn.ModuleList(blocks)
    level.attn = nn.ModuleList()  # empty in FLUX; kept so the module tree matches
    if resample is not None:
        setattr(level, name, resample)
    return level


class Encoder(nn.Module):
    def __init__(self, ch: int, ch_mult: tuple[int, ...], num_res_blocks: int, z_channels: int):
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        self.down = nn.ModuleList()
        cin = ch
        for i, m in enumerate(ch_mult):
            blocks = []
            for _ in range(num_res_blocks):
                blocks.append(ResnetBlock(cin, ch * m))
                cin = ch * m
            last = i == len(ch_mult) - 1
            self.down.append(_level(blocks, None if last else Downsample(cin), "downsample"))
        self.mid = _middle(cin)
        self.norm_out = _norm(cin)
        self.conv_out = nn.Conv2d(cin, 2 * z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for block in level.block:
                h = block(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, ch: int, ch_mult: tuple[int, ...], num_res_blocks: int, z_channels: int):
        super().__init__()
        cin = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, cin, 3, padding=1)
        self.mid = _middle(cin)
        levels = {}
        for i in reversed(range(len(ch_mult))):
            blocks = []
            for _ in range(num_res_blocks + 1):
                blocks.append(ResnetBlock(cin, ch * ch_mult[i]))
                cin = ch * ch_mult[i]
            levels[i] = _level(blocks, Upsample(cin) if i else None, "upsample")
        self.up = nn.ModuleList(levels[i] for i in range(len(ch_mult)))
        self.norm_out = _norm(cin)
        self.conv_out = nn.Conv2d(cin, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z))))
        for level in reversed(self.up):
            for block in level.block:
                h = block(h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


@register_codec("flux-vae")
class FluxAE(Codec):
    """`encode` returns the posterior mean (deterministic; `sample=True` draws from it, as
    BAGEL's training does), scaled and shifted; `decode` inverts the normalisation."""

    def __init__(self, channels: int = 16, downsample: int = 8, ch: int = 128, ch_mult: tuple[int, ...] | None = None,
                 num_res_blocks: int = 2, sample: bool = False):
        super().__init__()
        levels = downsample.bit_length()  # 8 -> 4 levels, 3 of them downsampling
        if downsample < 1 or downsample & (downsample - 1):
            raise ValueError("downsample must be a power of two")
        ch_mult = tuple(ch_mult or (1, 2, 4, 4)[:levels] + (4,) * max(0, levels - 4))
        if 2 ** (len(ch_mult) - 1) != downsample:
            raise ValueError(f"{len(ch_mult)} levels give x{2 ** (len(ch_mult) - 1)}, not x{downsample}")
        self.channels, self.downsample, self.sample = channels, downsample, sample
        self.encoder = Encoder(ch, ch_mult, num_res_blocks, channels)
        self.decoder = Decoder(ch, ch_mult, num_res_blocks, channels)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self.check_images(images)
        mean, logvar = self.encoder(images).chunk(2, dim=1)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean) if self.sample else mean
        return SCALE * (z - SHIFT)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents / SCALE + SHIFT).clamp(-1, 1)
