"""The in-the-wild detector: frozen forensic features of native-resolution crops, a calibrated
linear head, and several crops per image.

Each image is scored on up to `crops` native crops (never resized): the centre and, for larger
images, crops spread over it. Their calibrated logits are averaged into the verdict; the spread
of the crops' probabilities says how much the image's parts disagree ("uncertain" when large).
The head's Platt scaling and the decision threshold are fitted on held-out data by the trainer
and travel in the run directory. A tuned run (`tuned`) also carries its networks' weights
(`backbones.safetensors`, float16): they were fine-tuned end to end with the head, which stays a
linear head on the same named feature groups.

`runtime` says what runs the networks: "torch", or "onnx" (ONNX Runtime, several times faster on a
CPU; features agree to about 1e-5). A loaded run uses "auto" (onnx on a CPU where installed); one
being trained uses torch, whose weights change.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..backbones import Backbone, Preprocess, create_backbone
from ..backbones.runtime import ExportedBackbone, resolve_runtime
from ..models.novelty import Novelty, abstains, novelty_scores
from ..models.probes import CalibratedLinear
from ..weights import load_weights
from .attribution import Attribution
from .base import CropScores, Detector, register_detector

CROP_CHOICES = ("grid", "evidence")
UNCERTAIN_SPREAD = 0.2  # crops of one image whose p_fake spread (std) reaches this disagree: "uncertain"


def centred_box(cx: float, cy: float, side: int, width: int, height: int) -> tuple[int, int, int, int]:
    """The side x side box centred on (cx, cy), shifted inside the image (and cut to it when smaller)."""
    left = int(min(max(cx - side / 2, 0), max(width - side, 0)))
    top = int(min(max(cy - side / 2, 0), max(height - side, 0)))
    return left, top, left + min(side, width), top + min(side, height)


def crop_boxes(width: int, height: int, side: int, n: int) -> list[tuple[int, int, int, int]]:
    """Up to `n` side x side boxes: the centre first, then the centres of a 2x2 grid of quadrants
    (clipped to the image), skipping duplicates. An image smaller than `side` gives one box."""
    centres = [(width / 2, height / 2)] + [(width * fx, height * fy) for fy in (0.25, 0.75) for fx in (0.25, 0.75)]
    out: list[tuple[int, int, int, int]] = []
    for c in centres:
        b = centred_box(*c, side, width, height)
        if b not in out:
            out.append(b)
    return out[: max(1, n)]


def texture(grey: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Mean absolute Laplacian of a box of a grey image: how much fine detail (and so evidence of how
    the pixels were made) it holds; a clear sky, a blurred background or a flat wall hold little."""
    g = grey[box[1] : box[3], box[0] : box[2]]
    if min(g.shape) < 3:
        return 0.0
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(np.abs(lap).mean())


FLAT = 0.25  # a candidate crop with less texture than this share of the most textured one is passed over


def evidence_boxes(image: Image.Image, side: int, n: int) -> list[tuple[int, int, int, int]]:
    """Up to `n` boxes read for the verdict, chosen by evidence: of the centre and the centres of a 3x3
    grid, those with the most texture, passing over flat ones (under FLAT of the most textured)."""
    w, h = image.size
    cands = crop_boxes(w, h, side, 1) + tile_boxes(w, h, 3, side)
    cands = list(dict.fromkeys(cands))
    if len(cands) == 1:
        return cands
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    tex = np.array([texture(grey, b) for b in cands])
    order = [i for i in np.argsort(-tex, kind="stable") if tex[i] >= FLAT * tex.max()]
    return [cands[i] for i in order[: max(1, n)]]


def tile_boxes(width: int, height: int, grid: int, side: int) -> list[tuple[int, int, int, int]]:
    """grid x grid boxes, row by row: for each cell of the image, the native side x side window
    centred on it (windows overlap when cells are smaller than `side`; nothing is resized)."""
    return [centred_box((c + 0.5) * width / grid, (r + 0.5) * height / grid, side, width, height)
            for r in range(grid) for c in range(grid)]


class Crops(NamedTuple):
    """What the verdict reads of a batch of images: the features of every crop, (crops, D), the image
    each came from, its weight in that image's logit, and whether it is a native crop."""

    features: torch.Tensor
    owner: np.ndarray
    weight: np.ndarray
    native: np.ndarray


class PhotoReference(nn.Module):
    """The mean features of the training photos: the typical photo an attribution is measured from."""

    def __init__(self, features: torch.Tensor):
        super().__init__()
        self.register_buffer("features", features.detach().float().clone())


class HalfWeights(nn.Module):
    """A module's floating-point weights as float16, for saving (a tuned run's networks: half the size;
    the trainer rounds them the same way before it calibrates, so the saved run scores as measured)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def state_dict(self, *args, **kwargs):
        return {k: v.half() if v.is_floating_point() else v for k, v in self.module.state_dict().items()}


@register_detector
class ForensicDetector(Detector):
    kind = "forensic"
    load_options = ("runtime",)

    def __init__(self, name: str, head: CalibratedLinear, backbones: Sequence[str], crops: int = 5,
                 threshold: float = 0.5, backbone_path: str | None = None, device="cpu", batch_size: int = 16,
                 reference: torch.Tensor | None = None, tuned: bool = False, runtime: str = "torch",
                 crop_choice: str = "grid", whole_weight: float = 0.0, novelty: Novelty | None = None,
                 novelty_threshold: float = float("inf")):
        super().__init__(name, device)
        self.runtime = resolve_runtime(runtime, self.device)
        self.head = head.to(self.device).eval()
        self.reference = reference  # (D,) mean features of the training photos, when the run has them
        self.backbone_names, self.backbone_path = tuple(backbones), backbone_path
        self.crops, self.threshold, self.batch_size = crops, float(threshold), batch_size
        self.tuned = tuned  # the networks' weights are the run's own (fine-tuned), not the pretrained ones
        if crop_choice not in CROP_CHOICES:
            raise ValueError(f"crop_choice must be one of {CROP_CHOICES}, not {crop_choice!r}")
        if not 0.0 <= whole_weight < 1.0:
            raise ValueError(f"whole_weight must be in [0, 1), not {whole_weight}")
        self.crop_choice, self.whole_weight = crop_choice, float(whole_weight)
        self.novelty, self.novelty_threshold = novelty, float(novelty_threshold)
        self._backbones: list[tuple[Backbone, Preprocess]] | None = None
        self._engines: list | None = None

    def backbones(self) -> list[tuple[Backbone, Preprocess]]:
        if self._backbones is None:
            self._backbones = [create_backbone(n, self.backbone_path if n.startswith("efficientnet") else None,
                                               device=self.device) for n in self.backbone_names]
        return self._backbones

    def engines(self) -> list:
        """What runs each backbone: the module, or its exported graph under the onnx runtime (made on
        first use, from the weights as they are then)."""
        if self._engines is None:
            self._engines = [ExportedBackbone(model, pre.crop) if self.runtime == "onnx" and model.exportable
                             else model for model, pre in self.backbones()]
        return self._engines

    def networks(self) -> nn.ModuleList:
        """The backbones as one module: what a tuned run saves and loads."""
        return nn.ModuleList([model for model, _ in self.backbones()])

    @property
    def side(self) -> int:
        return max(pre.crop or pre.size for _, pre in self.backbones())

    def image_features(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, D) features of images taken as they are (each one crop: its centre)."""
        return self.feature_rows(images).numpy()

    @torch.no_grad()
    def feature_rows(self, images: Sequence[Image.Image]) -> torch.Tensor:
        if not images:
            return torch.empty(0, sum(model.feature_dim for model, _ in self.backbones()))
        rows = []
        for s in range(0, len(images), self.batch_size):
            batch, inputs = images[s : s + self.batch_size], {}
            for _, pre in self.backbones():  # backbones with the same preprocessing share its output
                if pre not in inputs:
                    inputs[pre] = torch.stack([pre(im) for im in batch]).to(self.device)
            rows.append(torch.cat([engine(inputs[pre]).float().cpu()
                                   for engine, (_, pre) in zip(self.engines(), self.backbones(), strict=True)], dim=1))
        return torch.cat(rows)

    @torch.no_grad()
    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features.to(self.device)).float().cpu()

    def boxes(self, image: Image.Image) -> list[tuple[int, int, int, int]]:
        """The crops the verdict reads: chosen by evidence, or the centre and quadrants ("grid")."""
        if self.crop_choice == "evidence":
            return evidence_boxes(image, self.side, self.crops)
        return crop_boxes(*image.size, self.side, self.crops)

    def whole(self, image: Image.Image) -> Image.Image | None:
        """The whole image resized so its shorter side is the crop side (its centre is what the networks
        read): the coarse evidence a web-circulated copy keeps. None when the image fits in one crop."""
        w, h = image.size
        if not self.whole_weight or max(w, h) <= self.side:
            return None
        s = self.side / min(w, h)
        return image.resize((max(self.side, round(w * s)), max(self.side, round(h * s))), Image.BICUBIC)

    def crop_features(self, images: Sequence[Image.Image]) -> Crops:
        """Every crop the verdict reads, with the image each came from and its weight in that image's
        logit: the native crops share 1 - `whole_weight`, the resized whole image has `whole_weight`
        (native crops alone when it has none)."""
        crops, owner, weight, native = [], [], [], []
        for i, im in enumerate(images):
            boxes, whole = self.boxes(im), self.whole(im)
            share = 1.0 - self.whole_weight if whole is not None else 1.0
            for b in boxes:
                crops.append(im.crop(b))
                owner.append(i)
                weight.append(share / len(boxes))
                native.append(True)
            if whole is not None:
                crops.append(whole)
                owner.append(i)
                weight.append(self.whole_weight)
                native.append(False)
        return Crops(self.feature_rows(crops), np.array(owner, dtype=np.int64), np.array(weight),
                     np.array(native, dtype=bool))

    def crop_scores(self, images: Sequence[Image.Image]) -> list[CropScores]:
        c = self.crop_features(images)
        z = self.logits(c.features).numpy().astype(np.float64) if len(c.owner) else np.empty(0)
        nov = novelty_scores(self.novelty, c.features) if self.novelty is not None and len(c.owner) else None
        out = []
        for i in range(len(images)):
            mine, native = c.owner == i, (c.owner == i) & c.native
            p = 1.0 / (1.0 + np.exp(-z[native]))  # the native crops: do the image's parts agree?
            p_fake = float(1.0 / (1.0 + np.exp(-(c.weight[mine] * z[mine]).sum())))
            novelty = None if nov is None else float((c.weight[mine] * nov[mine]).sum())
            novel = novelty is not None and bool(abstains(p_fake, novelty, self.threshold, self.novelty_threshold))
            out.append(CropScores(p_fake, float(p.std()), tuple(p.tolist()), novelty,
                                  self.why_uncertain(p, novelty if novel else None), novel))
        return out

    def why_uncertain(self, crops: np.ndarray, novelty: float | None) -> str | None:
        """Why the image is not called what its p_fake says, or None: the detector abstains rather than
        accuse an image unlike anything it trained on (`novelty` given), and when the native crops it
        read disagree: they fall on both sides of the threshold and their p_fake spread reaches
        UNCERTAIN_SPREAD (crops that differ but all fall on one side agree on the verdict)."""
        if novelty is not None:
            return (f"it is unlike the images the detector was trained on (novelty {novelty:.1f}, beyond "
                    f"{self.novelty_threshold:.1f}): a camera, size or re-encoding it has not met. Check the "
                    "original file, as it left the camera or the generator")
        fake = crops > self.threshold
        if crops.std() >= UNCERTAIN_SPREAD and fake.any() and not fake.all():
            return (f"the parts of the image it read disagree ({int(fake.sum())} of {len(crops)} read as generated, "
                    f"spread of their p_fake {crops.std():.2f}): part of it may be generated or edited; see where "
                    "in the tile map")
        return None

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return np.array([c.p_fake for c in self.crop_scores(images)], dtype=np.float64)

    def evidence_groups(self) -> dict[str, np.ndarray]:
        """Kind of evidence -> indices into the concatenated features of all backbones."""
        groups: dict[str, list[int]] = {}
        start = 0
        for model, _ in self.backbones():
            for kind, idx in model.evidence_groups().items():
                groups.setdefault(kind, []).extend(start + i for i in idx)
            start += model.feature_dim
        return {k: np.asarray(v) for k, v in groups.items()}

    def attribution(self, images: Sequence[Image.Image]) -> list[Attribution]:
        """The calibrated logit of each image (the mean over its crops, as the verdict) split exactly
        into the linear head's sums over each kind of evidence, measured from a typical training photo
        (`reference`; the average training image for runs without one): a kind's contribution is how far
        the logit would fall if that kind of evidence read as in a typical photo."""
        c = self.crop_features(images)
        return self.attribute_features(c.features, c.owner, len(images), weight=c.weight)

    @torch.no_grad()
    def attribute_features(self, x: torch.Tensor, owner: np.ndarray, n: int, reference: torch.Tensor | None = None,
                           weight: np.ndarray | None = None) -> list[Attribution]:
        """`attribution` of n images from their crop features (`crop_features`; `weight`: each crop's
        weight in its image's logit, default equal), measured from `reference` features (default: the
        run's typical photo, else the training mean)."""
        h = self.head
        mean, std, w = h.mean.double().cpu(), h.std.double().cpu(), h.fc.weight.double().cpu()[0]
        given = reference if reference is not None else self.reference
        ref = mean if given is None else given.double().cpu()
        terms = (x.double() - ref) / std * w * float(h.scale)
        base = float(h.scale) * (float(((ref - mean) / std * w).sum()) + float(h.fc.bias)) + float(h.shift)
        groups = self.evidence_groups()
        named = "given reference" if reference is not None else \
            "training mean" if self.reference is None else "typical photo"
        out = []
        if weight is None:
            weight = 1.0 / np.bincount(owner, minlength=n)[owner]
        for i in range(n):
            mine = owner == i
            t = (terms[torch.from_numpy(mine)] * torch.from_numpy(weight[mine])[:, None]).sum(0).numpy()
            parts = {kind: float(t[idx].sum()) for kind, idx in groups.items()}
            out.append(Attribution(base + float(t.sum()), base, parts, exact=True, reference=named))
        return out

    def state(self, run_dir: Path) -> tuple[dict[str, Any], dict[str, nn.Module]]:
        fields = {"backbones": list(self.backbone_names), "feature_dim": self.head.fc.in_features,
                  "crops": self.crops, "threshold": self.threshold, "backbone_path": self.backbone_path,
                  "reference": self.reference is not None, "tuned": self.tuned, "crop_choice": self.crop_choice,
                  "whole_weight": self.whole_weight}
        modules = {"model": self.head}
        if self.novelty is not None:
            fields["novelty"] = {"dims": self.novelty.components.shape[1], "bank": self.novelty.bank.shape[0],
                                 "k": self.novelty.k, "threshold": self.novelty_threshold}
            modules["novelty"] = self.novelty
        if self.reference is not None:
            modules["reference"] = PhotoReference(self.reference)
        if self.tuned:
            modules["backbones"] = HalfWeights(self.networks())
        return fields, modules

    @classmethod
    def check_options(cls, options: dict[str, Any], device) -> None:
        resolve_runtime(options.get("runtime", "auto"), device)

    @classmethod
    def from_state(cls, run_dir: Path, config: dict[str, Any], device, runtime: str = "auto") -> ForensicDetector:
        head = CalibratedLinear(int(config["feature_dim"]))
        load_weights(head, run_dir / "model.safetensors")
        reference = None
        if config.get("reference"):
            holder = PhotoReference(torch.zeros(int(config["feature_dim"])))
            load_weights(holder, run_dir / "reference.safetensors")
            reference = holder.features
        novelty, novelty_threshold = None, float("inf")
        if nv := config.get("novelty"):
            novelty = Novelty(int(config["feature_dim"]), int(nv["dims"]), int(nv["bank"]), int(nv["k"]))
            load_weights(novelty, run_dir / "novelty.safetensors")
            novelty_threshold = float(nv["threshold"])
        det = cls(config.get("name", cls.kind), head, config["backbones"], int(config.get("crops", 5)),
                  float(config.get("threshold", 0.5)), config.get("backbone_path"), device, reference=reference,
                  tuned=bool(config.get("tuned", False)), runtime=runtime,
                  crop_choice=config.get("crop_choice", "grid"), whole_weight=float(config.get("whole_weight", 0.0)),
                  novelty=novelty,
                  novelty_threshold=novelty_threshold)
        if det.tuned:
            load_weights(det.networks(), run_dir / "backbones.safetensors")
        return det
