"""Latent codecs: images in [-1, 1] <-> normalised latents the flow runs on."""

from .base import Codec, build_codec, register_codec
from .conv_vae import ConvVAE
from .pixel import PixelCodec

__all__ = ["Codec", "ConvVAE", "PixelCodec", "build_codec", "register_codec"]
