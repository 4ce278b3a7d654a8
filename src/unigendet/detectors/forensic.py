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
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..backbones import Backbone, Preprocess, create_backbone
from ..backbones.runtime import ExportedBackbone, resolve_runtime
from ..models.probes import CalibratedLinear
from ..weights import load_weights
from .attribution import Attribution
from .base import CropScores, Detector, register_detector


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


def tile_boxes(width: int, height: int, grid: int, side: int) -> list[tuple[int, int, int, int]]:
    """grid x grid boxes, row by row: for each cell of the image, the native side x side window
    centred on it (windows overlap when cells are smaller than `side`; nothing is resized)."""
    return [centred_box((c + 0.5) * width / grid, (r + 0.5) * height / grid, side, width, height)
            for r in range(grid) for c in range(grid)]


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
                 reference: torch.Tensor | None = None, tuned: bool = False, runtime: str = "torch"):
        super().__init__(name, device)
        self.runtime = resolve_runtime(runtime, self.device)
        self.head = head.to(self.device).eval()
        self.reference = reference  # (D,) mean features of the training photos, when the run has them
        self.backbone_names, self.backbone_path = tuple(backbones), backbone_path
        self.crops, self.threshold, self.batch_size = crops, float(threshold), batch_size
        self.tuned = tuned  # the networks' weights are the run's own (fine-tuned), not the pretrained ones
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

    def crop_features(self, images: Sequence[Image.Image]) -> tuple[torch.Tensor, np.ndarray]:
        """(features of every crop the verdict reads, (crops, D); the index of the image each came from)."""
        crops, owner = [], []
        for i, im in enumerate(images):
            for b in crop_boxes(*im.size, self.side, self.crops):
                crops.append(im.crop(b))
                owner.append(i)
        return self.feature_rows(crops), np.array(owner, dtype=np.int64)

    def crop_scores(self, images: Sequence[Image.Image]) -> list[CropScores]:
        x, owner = self.crop_features(images)
        z = self.logits(x).numpy() if len(owner) else np.empty(0)
        out = []
        for i in range(len(images)):
            zi = z[owner == i].astype(np.float64)
            p = 1.0 / (1.0 + np.exp(-zi))
            out.append(CropScores(float(1.0 / (1.0 + np.exp(-zi.mean()))), float(p.std()), tuple(p.tolist())))
        return out

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
        return self.attribute_features(*self.crop_features(images), len(images))

    @torch.no_grad()
    def attribute_features(self, x: torch.Tensor, owner: np.ndarray, n: int,
                           reference: torch.Tensor | None = None) -> list[Attribution]:
        """`attribution` of n images from their crop features (`crop_features`), measured from
        `reference` features (default: the run's typical photo, else the training mean)."""
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
        for i in range(n):
            t = terms[torch.from_numpy(owner == i)].mean(0).numpy()
            parts = {kind: float(t[idx].sum()) for kind, idx in groups.items()}
            out.append(Attribution(base + float(t.sum()), base, parts, exact=True, reference=named))
        return out

    def state(self, run_dir: Path) -> tuple[dict[str, Any], dict[str, nn.Module]]:
        fields = {"backbones": list(self.backbone_names), "feature_dim": self.head.fc.in_features,
                  "crops": self.crops, "threshold": self.threshold, "backbone_path": self.backbone_path,
                  "reference": self.reference is not None, "tuned": self.tuned}
        modules = {"model": self.head}
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
        det = cls(config.get("name", cls.kind), head, config["backbones"], int(config.get("crops", 5)),
                  float(config.get("threshold", 0.5)), config.get("backbone_path"), device, reference=reference,
                  tuned=bool(config.get("tuned", False)), runtime=runtime)
        if det.tuned:
            load_weights(det.networks(), run_dir / "backbones.safetensors")
        return det
