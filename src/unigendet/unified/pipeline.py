"""A loaded UniGenDet: model, codec, tokenizer and sample builder, built once from a checkpoint,
a training run or a released directory, with the three things it does - detect, explain, generate.

Every user of a trained UniGenDet (the detector wrapper, the predictor behind the CLI and the
server, evaluation, the corpus builder's text-to-image fakes, the training stages, the benches)
goes through this class, so an image enters the model exactly as in training everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from ..codecs import build_codec
from ..images import detection_input
from ..weights import CheckpointError, load_weights, resolve_checkpoint
from .checkpoint import load_model, save_checkpoint
from .inference import DEFAULT_GUIDANCE, MAX_ANSWER, Detection, Guidance, detect, generate_latents
from .prompts import DETECTION_QUESTION
from .released import is_released, load_released
from .samples import SampleBuilder
from .tokenizer import get_tokenizer


class UniGenDetPipeline:
    def __init__(self, model, codec, tokenizer=None, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model, self.codec = model.to(self.device).eval(), codec.to(self.device).eval()
        self.tokenizer = tokenizer or get_tokenizer(model.config.tokenizer)
        self.builder = SampleBuilder(model.config, self.tokenizer)
        self.load_report = None  # a released directory's LoadReport (what was loaded, filled, cast)

    @property
    def config(self):
        return self.model.config

    @property
    def name(self) -> str:
        return f"unigendet-{self.config.name}"

    # --- loading and saving ----------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
                        base: str | os.PathLike | None = None, ema: bool = True, **released) -> UniGenDetPipeline:
        """A project checkpoint (EMA weights when present, the codec and a tokenizer.json next to
        them), a training run (its latest checkpoint), or a released BAGEL / UniGenDet directory
        (`base`: a BAGEL directory filling the keys a released fine-tune lacks; `released` options
        go to `load_released`)."""
        path = resolve_checkpoint(path)
        if is_released(path) or base is not None:
            model, codec, tokenizer, report = load_released(path, base=base, device=device, **released)
            pipeline = cls(model, codec, tokenizer, device)
            pipeline.load_report = report
            return pipeline
        model = load_model(path, ema=ema, device=device)
        return cls(model, codec_for(model.config, path), tokenizer_for(model.config, path), device)

    def save_pretrained(self, path: str | os.PathLike, meta: dict | None = None, train: dict | None = None,
                        json_files: dict | None = None, carry: tuple[str, ...] = ()) -> Path:
        """A checkpoint directory `from_pretrained` reads back (weights, config, codec); `train`,
        `json_files` and `carry` as every run directory takes them (`rundir.write_run`)."""
        return save_checkpoint(path, self.model, self.config, meta=meta, files={"codec": self.codec}, train=train,
                               json_files=json_files, carry=carry)

    # --- detection ---------------------------------------------------------------------------------

    def model_input(self, image: Image.Image) -> torch.Tensor:
        """A PIL image -> the (3, S, S) tensor the model looks at (`ModelConfig.detect_view`)."""
        return detection_input(image, self.config.detect_side, self.config.detect_view)

    @torch.no_grad()
    def detect(self, views: Sequence[torch.Tensor], explain: bool = False, batch_size: int = 16,
               max_new_tokens: int = MAX_ANSWER, questions: Sequence[str] | None = None) -> list[Detection]:
        """Clean codec latents (SMSA) and ViT tokens of each view, then the question (`questions`: one
        per view; default: the detection question): p_fake from the cls head, the written answer when
        `explain`."""
        if questions is not None and len(questions) != len(views):
            raise ValueError(f"{len(questions)} questions for {len(views)} images")
        out = []
        for s in range(0, len(views), batch_size):
            chunk = list(views[s:s + batch_size])
            dtype = next(self.codec.parameters(), torch.empty(0)).dtype
            small = torch.stack([self.builder.latent_view(v) for v in chunk])
            latents = list(self.codec.encode(small.to(self.device, dtype)).float().cpu())
            images = self.builder.encode_images(torch.stack(chunk)) if self.config.vit.frozen else chunk
            asked = DETECTION_QUESTION if questions is None else list(questions[s:s + batch_size])
            out += detect(self.model, self.builder, latents, images, explain=explain, question=asked,
                          max_new_tokens=max_new_tokens)
        return out

    def detect_images(self, images: Sequence[Image.Image], explain: bool = False, **kw) -> list[Detection]:
        """`detect` on the model's views of PIL images (`questions`: one each, else the detection question)."""
        return self.detect([self.model_input(im) for im in images], explain, **kw)

    def explain(self, images: Sequence[Image.Image], **kw) -> list[Detection]:
        return self.detect_images(images, explain=True, **kw)

    # --- generation --------------------------------------------------------------------------------

    def check_size(self, size: int) -> None:
        step = self.config.latent.pixels_per_token
        largest = step * self.config.latent.max_latent_side
        if size % step or not step <= size <= largest:
            raise ValueError(f"size must be a multiple of {step} between {step} and {largest}")

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], size: int | None = None, steps: int = 50, shift: float = 3.0,
                 guidance: Guidance | None = DEFAULT_GUIDANCE, seed: int = 0,
                 generator: torch.Generator | None = None, batch: int = 16) -> torch.Tensor:
        """(N, 3, S, S) images in [-1, 1], one per prompt. Prompt i uses noise seed (seed, i), so the
        same seed gives the same images; a `generator` given instead is drawn from in order."""
        size = size or self.config.image_size
        self.check_size(size)
        side = size // self.config.latent.pixels_per_token
        lat = self.config.latent
        shape = (lat.channels, side * lat.patch_size, side * lat.patch_size)
        out = []
        for start in range(0, len(prompts), batch):
            chunk = list(prompts[start:start + batch])
            noise = torch.stack([torch.randn(shape, generator=generator or torch.Generator().manual_seed(
                seed * 1_000_003 + start + j)) for j in range(len(chunk))])
            z = generate_latents(self.model, self.builder, chunk, (side, side), steps=steps, shift=shift,
                                 guidance=guidance, noise=noise)
            param = next(self.codec.parameters(), None)
            z = z.to(param.device, param.dtype) if param is not None else z.float().cpu()
            out.append(self.codec.decode(z).float().cpu())
        return torch.cat(out)


def codec_for(config, path: Path | None = None):
    """The model's latent codec: with no `path`, freshly built; else with its weights from
    `path/codec.safetensors`, which a codec with weights (one the project trains) requires - a
    checkpoint without it would decode through random weights."""
    lat = config.latent
    codec = build_codec(lat.codec, lat.channels, lat.downsample, lat.width)
    if path is None:
        return codec
    file = Path(path) / "codec.safetensors"
    if file.is_file():
        load_weights(codec, file)
    elif codec.learned:
        raise CheckpointError(f"{path}: no codec.safetensors, and the {config.name} preset's {lat.codec} codec is "
                              "trained, not given (`unigendet train codec`; training stages take it with --codec)")
    return codec


def tokenizer_for(config, path: Path | None = None):
    """A tokenizer.json beside the checkpoint when there is one, else the config's (or $UNIGENDET_TOKENIZER)."""
    local = path if path is not None and (path / "tokenizer.json").is_file() else None
    return get_tokenizer(config.tokenizer, local)
