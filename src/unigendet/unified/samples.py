"""Turning images and text into samples of the two layouts the model knows.

- detection (SMSA): [clean latents t=0 | ViT | question | answer]
- text-to-image: [caption | noised latents]

Images are tensors (3, H, W) in [-1, 1]; latents come from a codec, (C, h, w).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..images import residual, resize_square
from .config import ModelConfig
from .encoders import FrozenEncoder, build_encoder
from .packing import CAUSAL, FULL, NOISE, ImageTokens, PackedBatch, Sample, Split, pack
from .patches import patchify
from .prompts import DETECTION_QUESTION
from .tokenizer import Tokenizer


class SampleBuilder:
    """Builds samples for one model config; with a frozen understanding encoder it holds that
    encoder (`encoder`, built on first use unless one is given)."""

    def __init__(self, cfg: ModelConfig, tokenizer: Tokenizer, encoder: FrozenEncoder | None = None):
        self.cfg = cfg
        self.tok = tokenizer
        self._encoder = encoder

    @property
    def encoder(self) -> FrozenEncoder:
        if not self.cfg.vit.frozen:
            raise ValueError(f"the {self.cfg.name} preset reads images with its trained ViT, not a frozen encoder")
        if self._encoder is None:
            self._encoder = build_encoder(self.cfg.vit.encoder)
        return self._encoder

    # -- token blocks ------------------------------------------------------
    def turn(self, text: str) -> list[int]:
        """One conversation turn: <|im_start|> text <|im_end|>."""
        return [self.tok.im_start, *self.tok.encode(text), self.tok.im_end]

    def vit_tokens(self, image: torch.Tensor, side: int | None = None) -> ImageTokens:
        """Resize so both sides are multiples of the patch (at most `side` px), apply the
        ViT's input filter and patchify; with a frozen encoder, its tokens of the image."""
        if self.cfg.vit.frozen:
            return self.encode_images(image[None])[0]
        p = self.cfg.vit.patch_size
        side = side or self.cfg.vit_image_size
        _, H, W = image.shape
        scale = min(1.0, side / max(H, W))
        h, w = max(p, round(H * scale / p) * p), max(p, round(W * scale / p) * p)
        if (h, w) != (H, W):
            image = F.interpolate(image[None], size=(h, w), mode="bilinear", antialias=True, align_corners=False)[0]
        if self.cfg.vit.input_filter == "residual":
            image = residual(image)
        rows, grid = patchify(image, p)
        return ImageTokens(rows, grid)

    def latent_view(self, view: torch.Tensor) -> torch.Tensor:
        """A detection view at the generation side, for the clean latents (SMSA)."""
        return view if view.shape[-1] == self.cfg.image_size else resize_square(view, self.cfg.image_size)

    def encode_images(self, images: torch.Tensor) -> list[ImageTokens]:
        """(B, 3, S, S) native crops -> the frozen encoder's tokens of each, in one batch."""
        enc = self.encoder
        rows = enc(images)
        if rows.shape[-1] != self.cfg.vit.token_dim:
            raise ValueError(f"encoder {self.cfg.vit.encoder!r} gives {rows.shape[-1]}-wide tokens; "
                             f"the model expects {self.cfg.vit.token_dim}")
        return [ImageTokens(r, (enc.grid, enc.grid)) for r in rows]

    def latent_tokens(
        self,
        latent: torch.Tensor,
        t: float = 0.0,
        target: torch.Tensor | None = None,
        align_target: torch.Tensor | None = None,
    ) -> ImageTokens:
        p = self.cfg.latent.patch_size
        rows, grid = patchify(latent, p)
        target_rows = patchify(target, p)[0] if target is not None else None
        return ImageTokens(rows, grid, t=t, target=target_rows, align_target=align_target)

    # -- sample layouts ----------------------------------------------------
    def detection(
        self,
        latent: torch.Tensor | None,
        image: torch.Tensor | ImageTokens,
        question: str = DETECTION_QUESTION,
        answer: str | None = None,
        label: int | None = None,
    ) -> Sample:
        """SMSA detection sample. Without an answer it ends at the open answer turn
        (<|im_start|>), whose state predicts the first answer word and feeds the cls head.
        `latent=None` leaves the clean latents out (the latent-free ablation only); `image` may come
        already encoded (`encode_images`)."""
        splits = [Split(FULL, latent=self.latent_tokens(latent))] if latent is not None else []
        splits += [
            Split(FULL, vit=image if isinstance(image, ImageTokens) else self.vit_tokens(image)),
            Split(CAUSAL, text=self.turn(question)),
        ]
        if answer is None:
            splits.append(Split(CAUSAL, text=[self.tok.im_start], cls=True, cls_label=label))
        else:
            splits.append(Split(CAUSAL, text=self.turn(answer), loss=True, cls=True, cls_label=label))
        return Sample(splits)

    def text_to_image(
        self,
        caption: str,
        noised: torch.Tensor,
        t: float,
        target: torch.Tensor | None = None,
        align_target: torch.Tensor | None = None,
    ) -> Sample:
        """[caption | noised latents]; an empty caption is the unconditional branch."""
        splits = [Split(CAUSAL, text=self.turn(caption))] if caption is not None else []
        splits.append(Split(NOISE, latent=self.latent_tokens(noised, t, target, align_target)))
        return Sample(splits)

    def pack(self, samples: list[Sample]) -> PackedBatch:
        return pack(
            samples,
            vision_start=self.tok.vision_start,
            vision_end=self.tok.vision_end,
            vit_side=self.cfg.vit.max_patches_per_side,
            latent_side=self.cfg.latent.max_latent_side,
            vit_dim=self.cfg.vit.token_dim,
            latent_dim=self.cfg.latent.token_dim,
        )
