"""Trained detectors read back from their run directories: GenDet, the baselines, the NPR
residual network, the one-class and reconstruction scores (`anomaly.py`), ensembles
(`ensemble.py`) and UniGenDet (`unified_detector.py`).

`load_detector(run_dir)` reads `run_dir/config.json`, picks the loader named by its "kind" in
`DETECTOR_LOADERS` (extend the dict to add a kind) and returns a `Detector`:

    detector.predict(paths, cache_root=None) -> np.ndarray of p_fake in [0, 1]
    detector.features(paths, cache_root=None) -> np.ndarray (N, K), the representation the verdict
        is read from (GenDet: the flattened teacher-student discrepancy), e.g. for t-SNE plots

Feature detectors (GenDet, linear probe) run a frozen backbone; with `cache_root` its features come
from (and go to) a `FeatureCache` there. The run directories are written by `unigendet_train`
(`artifacts.save_module_checkpoint`); this module never imports the trainer.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from .checkpoint import CheckpointError, load_weights, resolve_checkpoint
from .data.backbones import Backbone, Preprocess, create_backbone
from .data.features import FeatureCache
from .data.imageio import open_image
from .images import pil_to_tensor
from .models.gendet import GenDet, GenDetConfig

FORMAT_VERSION = 1
PathList = Sequence[str | os.PathLike]


# --- baseline networks (their trainers live in unigendet_train.baselines) ----------------------


class LinearProbe(nn.Module):
    """UnivFD (Ojha et al.): one linear layer on frozen backbone features; the output is the fake logit."""

    def __init__(self, feature_dim: int):
        super().__init__()
        self.fc = nn.Linear(feature_dim, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features).squeeze(-1)


class CNNDetector(nn.Module):
    """CNNDetection (Wang et al.): an ImageNet CNN fine-tuned end to end with a 1-logit head (fake logit).

    `net` is an EfficientNet-Lite (`extract_features` then global average pooling)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.head = nn.Linear(net._fc.in_features, 1)

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(images).mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(images)).squeeze(-1)


def cnn_from_backbone(name: str, path: str | None = None) -> tuple[CNNDetector, Preprocess]:
    """A trainable CNNDetector starting from a registered EfficientNet-Lite backbone's weights, and
    the backbone's preprocessing (its normalisation is what the weights expect)."""
    backbone, preprocess = create_backbone(name, path)
    if not hasattr(backbone, "net") or not hasattr(backbone.net, "extract_features"):
        raise ValueError(f"the cnn baseline needs an EfficientNet-Lite backbone, not {name!r}")
    net = backbone.net.requires_grad_(True)
    return CNNDetector(net).train(), preprocess


# --- detectors ----------------------------------------------------------------------------------


class Detector(ABC):
    """A trained real/fake detector. Subclasses set `kind` and implement `predict` and `features`."""

    kind = ""

    def __init__(self, name: str, device: str | torch.device = "cpu"):
        self.name, self.device = name, torch.device(device)

    @abstractmethod
    def predict(self, paths: PathList, cache_root: str | os.PathLike | None = None) -> np.ndarray:
        """p_fake (N,) float64 in [0, 1]."""

    @abstractmethod
    def features(self, paths: PathList, cache_root: str | os.PathLike | None = None) -> np.ndarray:
        """(N, K): the representation the verdict is read from."""

    @abstractmethod
    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """p_fake for decoded RGB images (what the CLI and the server hand over)."""


def _image_batches(paths: PathList, preprocess: Preprocess, batch_size: int):
    for s in range(0, len(paths), batch_size):
        yield torch.stack([preprocess(open_image(p)) for p in paths[s : s + batch_size]])


class FeatureDetector(Detector):
    """A head on frozen backbone features (the backbone is built on first use)."""

    def __init__(self, name: str, head: nn.Module, backbone: str, backbone_path: str | None, device="cpu"):
        super().__init__(name, device)
        self.head = head.to(self.device).eval()
        self.backbone_name, self.backbone_path = backbone, backbone_path
        self._backbone: tuple[Backbone, Preprocess] | None = None

    def backbone(self) -> tuple[Backbone, Preprocess]:
        if self._backbone is None:
            self._backbone = create_backbone(self.backbone_name, self.backbone_path, device=self.device)
        return self._backbone

    @torch.no_grad()
    def backbone_features(self, paths: PathList, cache_root=None, batch_size: int = 32) -> torch.Tensor:
        model, pre = self.backbone()
        if cache_root is not None:
            return FeatureCache(cache_root, model, pre).features(paths, batch_size=batch_size)
        if not paths:
            return torch.empty(0, model.feature_dim)
        return torch.cat([model(x.to(self.device)).float().cpu() for x in _image_batches(paths, pre, batch_size)])

    @abstractmethod
    def scores(self, features: torch.Tensor) -> np.ndarray:
        """p_fake for precomputed backbone features (N, D)."""

    def predict(self, paths: PathList, cache_root=None) -> np.ndarray:
        return self.scores(self.backbone_features(paths, cache_root))

    @torch.no_grad()
    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        model, pre = self.backbone()
        return self.scores(model(torch.stack([pre(im) for im in images]).to(self.device)).float().cpu())

    def features(self, paths: PathList, cache_root=None) -> np.ndarray:
        return self.backbone_features(paths, cache_root).numpy()


class GenDetDetector(FeatureDetector):
    kind = "gendet"

    @torch.no_grad()
    def scores(self, features: torch.Tensor) -> np.ndarray:
        return self.head.score(features.to(self.device)).double().cpu().numpy()

    @torch.no_grad()
    def discrepancies(self, features: torch.Tensor) -> torch.Tensor:
        """(N, T * dim) flattened (N_t(x) - N_s(x))^2 for precomputed backbone features."""
        d = self.head.discrepancy(self.head.standardise(features.to(self.device)))
        return d.reshape(d.shape[0], -1).cpu()

    def features(self, paths: PathList, cache_root=None) -> np.ndarray:
        return self.discrepancies(self.backbone_features(paths, cache_root)).numpy()


class LinearProbeDetector(FeatureDetector):
    kind = "linear-probe"

    @torch.no_grad()
    def scores(self, features: torch.Tensor) -> np.ndarray:
        return torch.sigmoid(self.head(features.to(self.device))).double().cpu().numpy()


class CNNImageDetector(Detector):
    kind = "cnn"

    def __init__(self, name: str, model: CNNDetector, preprocess: Preprocess, device="cpu", batch_size: int = 32):
        super().__init__(name, device)
        self.model, self.preprocess, self.batch_size = model.to(self.device).eval(), preprocess, batch_size

    @torch.no_grad()
    def _run(self, paths: PathList, fn) -> torch.Tensor:
        outs = [fn(x.to(self.device)).float().cpu() for x in _image_batches(paths, self.preprocess, self.batch_size)]
        return torch.cat(outs) if outs else torch.empty(0)

    def predict(self, paths: PathList, cache_root=None) -> np.ndarray:
        """`cache_root` is ignored: the whole network was fine-tuned, there is no frozen feature to cache."""
        return torch.sigmoid(self._run(paths, self.model)).double().numpy()

    @torch.no_grad()
    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        x = torch.stack([self.preprocess(im) for im in images]).to(self.device)
        return torch.sigmoid(self.model(x).float().cpu()).double().numpy()

    def features(self, paths: PathList, cache_root=None) -> np.ndarray:
        return self._run(paths, self.model.pooled).numpy()


class NPRDetector(Detector):
    """The NPR residual network on each image at native resolution (centre-cropped to at most
    `max_side` per side to bound memory; never resized). Images of one size share a batch."""

    kind = "npr"

    def __init__(self, name: str, model: nn.Module, max_side: int = 512, device="cpu", batch_size: int = 16):
        super().__init__(name, device)
        self.model, self.max_side, self.batch_size = model.to(self.device).eval(), max_side, batch_size

    def tensor(self, img: Image.Image) -> torch.Tensor:
        w, h = img.size
        cw, ch = min(w, self.max_side), min(h, self.max_side)
        return pil_to_tensor(img.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)))

    @torch.no_grad()
    def _run(self, images: Sequence[Image.Image], fn) -> torch.Tensor:
        xs = [self.tensor(im) for im in images]
        out: list[torch.Tensor | None] = [None] * len(xs)
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, x in enumerate(xs):
            by_size.setdefault(tuple(x.shape), []).append(i)
        for idx in by_size.values():
            for s in range(0, len(idx), self.batch_size):
                chunk = idx[s : s + self.batch_size]
                y = fn(torch.stack([xs[i] for i in chunk]).to(self.device)).float().cpu()
                for i, row in zip(chunk, y):
                    out[i] = row
        return torch.stack(out) if out else torch.empty(0)  # type: ignore[arg-type]

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return torch.sigmoid(self._run(images, self.model)).double().numpy()

    def predict(self, paths: PathList, cache_root=None) -> np.ndarray:
        """`cache_root` is ignored (no frozen backbone)."""
        return self.predict_images([open_image(p) for p in paths])

    def features(self, paths: PathList, cache_root=None) -> np.ndarray:
        return self._run([open_image(p) for p in paths], self.model.pooled).numpy()


# --- loading ------------------------------------------------------------------------------------


def _load_gendet(run_dir: Path, cfg: dict[str, Any], device) -> Detector:
    model = GenDet(GenDetConfig.from_dict(cfg["model"]))
    load_weights(model, run_dir / "model.safetensors")
    return GenDetDetector(cfg.get("name", f"gendet-{model.cfg.variant}"), model, cfg["backbone"],
                          cfg.get("backbone_path"), device)


def _load_linear_probe(run_dir: Path, cfg: dict[str, Any], device) -> Detector:
    model = LinearProbe(int(cfg["feature_dim"]))
    load_weights(model, run_dir / "model.safetensors")
    return LinearProbeDetector(cfg.get("name", "linear-probe"), model, cfg["backbone"], cfg.get("backbone_path"),
                               device)


def _load_cnn(run_dir: Path, cfg: dict[str, Any], device) -> Detector:
    from efficientnet_lite_pytorch import EfficientNet

    model = CNNDetector(EfficientNet.from_name(cfg["backbone"]))
    load_weights(model, run_dir / "model.safetensors")
    fields = {k: v for k, v in cfg["preprocess"].items() if k != "library"}
    fields["mean"], fields["std"] = tuple(fields["mean"]), tuple(fields["std"])
    return CNNImageDetector(cfg.get("name", "cnn"), model, Preprocess(**fields), device)


def _load_npr(run_dir: Path, cfg: dict[str, Any], device) -> Detector:
    from .models.npr import NPRConfig, NPRNet

    model = NPRNet(NPRConfig.from_dict(cfg["model"]))
    load_weights(model, run_dir / "model.safetensors")
    return NPRDetector(cfg.get("name", "npr"), model, int(cfg.get("max_side", 512)), device)


def _load_oneclass(run_dir: Path, cfg: dict[str, Any], device) -> Detector:
    from .anomaly import load_oneclass

    return load_oneclass(run_dir, cfg, device)


def _load_recon(run_dir: Path, cfg: dict[str, Any], device) -> Detector:
    from .anomaly import load_recon

    return load_recon(run_dir, cfg, device)


def _load_ensemble(run_dir: Path, cfg: dict[str, Any], device) -> Detector:
    from .ensemble import load_ensemble

    return load_ensemble(run_dir, cfg, device)


DetectorLoader = Callable[[Path, dict[str, Any], Any], Detector]
DETECTOR_LOADERS: dict[str, DetectorLoader] = {
    "gendet": _load_gendet,
    "linear-probe": _load_linear_probe,
    "cnn": _load_cnn,
    "npr": _load_npr,
    "oneclass": _load_oneclass,
    "recon": _load_recon,
    "ensemble": _load_ensemble,
}
"""kind (config.json "kind") -> loader(run_dir, config dict, device). Add a kind by adding an entry."""


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    f = Path(run_dir) / "config.json"
    if not f.is_file():
        raise CheckpointError(f"{run_dir}: no config.json; is this a detector run directory?")
    try:
        cfg = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{f}: not valid JSON ({e})") from e
    if cfg.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise CheckpointError(f"{f}: format version {cfg['format_version']} is newer than this code")
    return cfg


def load_detector(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> Detector:
    """Rebuild the detector a training run wrote to `run_dir` (weights loaded strictly). A
    UniGenDet run directory (or one of its checkpoints) loads as the unified model."""
    run_dir = resolve_checkpoint(run_dir)
    from .official import is_official, load_official

    if is_official(run_dir):  # a released BAGEL / UniGenDet directory
        return load_official(run_dir, device=device)[0]
    cfg = read_run_config(run_dir)
    kind = cfg.get("kind")
    if kind is None and "llm" in cfg:  # a model checkpoint's ModelConfig
        from .unified_detector import load_unigendet

        return load_unigendet(run_dir, device)
    if kind not in DETECTOR_LOADERS:
        known = sorted(DETECTOR_LOADERS)
        raise CheckpointError(f"{run_dir}/config.json: unknown detector kind {kind!r}; known: {known}")
    try:
        return DETECTOR_LOADERS[kind](run_dir, cfg, device)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{run_dir}/config.json: does not describe a {kind} detector ({e!r})") from e
