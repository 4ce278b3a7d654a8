"""Latent codecs: images in [-1, 1] <-> normalised latents the flow runs on."""

from .base import Codec, build_codec, codec_from_entry, register_codec
from .conv_vae import ConvVAE
from .flux_ae import FluxAE
from .pixel import PixelCodec
from .taesd import TAEF2

__all__ = ["Codec", "ConvVAE", "FluxAE", "PixelCodec", "TAEF2", "build_codec", "codec_from_entry", "register_codec"]
