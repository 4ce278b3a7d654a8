"""The `Detector` interface, the registry of detector kinds, and run directories.

A detector class owns its `kind`: `@register_detector` enters it in the registry, `state()`
says what rebuilds it, `save_pretrained(run_dir)` writes the run directory and
`load_detector(run_dir)` reads any kind back. The layout is every run directory's (`unigendet.rundir`):

    config.json          {"format_version", "kind", "name", ...the class's state, "train": ...}
    <name>.safetensors   one file per module the state names
    meta.json            anything JSON (seed, sizes, timings)
    metrics.json, ...    further JSON files a trainer adds; log.jsonl carried over

Scoring: a kind implements `predict_images(images) -> p_fake (N,)` and `image_features(images)`
(the representation the verdict is read from, e.g. for t-SNE plots); the base class reads files for
`predict(paths)` and `features(paths)`. Capabilities beyond scoring are protocols (`Explainer`,
`CropScorer`, `Generator`, `FeatureCaching`), checked with isinstance, never by kind.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..data.imageio import open_image
from ..rundir import read_run_config, run_config, write_run
from ..weights import CheckpointError, resolve_checkpoint, save_weights

PathList = Sequence[str | os.PathLike]
DECODE_CHUNK = 64  # images decoded at once when scoring files
DETECTORS: dict[str, type[Detector]] = {}


def register_detector(cls: type[Detector]) -> type[Detector]:
    """Class decorator: `cls.kind` becomes loadable from a run directory."""
    if not cls.kind or DETECTORS.get(cls.kind, cls) is not cls:
        raise ValueError(f"{cls.__name__}: kind {cls.kind!r} is empty or already registered")
    DETECTORS[cls.kind] = cls
    return cls


class Detector(ABC):
    """A trained real/fake detector."""

    kind: ClassVar[str] = ""
    load_options: ClassVar[tuple[str, ...]] = ()  # keyword options `load_detector` passes to `from_state`

    @classmethod
    def check_options(cls, options: dict[str, Any], device: str | torch.device) -> None:
        """Raise ValueError for `load_options` values this kind cannot take (before anything loads)."""
        return None

    def __init__(self, name: str, device: str | torch.device = "cpu"):
        self.name, self.device = name, torch.device(device)
        self.source: Path | None = None  # the run directory it was loaded from
        self.threshold = 0.5  # p_fake above this is called fake (calibrated kinds store their own)

    @abstractmethod
    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """p_fake (N,) float64 in [0, 1] for decoded RGB images (what the CLI and the server hand over)."""

    @abstractmethod
    def image_features(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, K): the representation the verdict is read from."""

    def predict(self, paths: PathList) -> np.ndarray:
        """p_fake for image files, decoded `DECODE_CHUNK` at a time so memory stays bounded."""
        return over_files(paths, self.predict_images)

    def features(self, paths: PathList) -> np.ndarray:
        return over_files(paths, self.image_features)

    # --- persistence ---------------------------------------------------------------------------

    def state(self, run_dir: Path) -> tuple[dict[str, Any], dict[str, nn.Module]]:
        """(JSON fields, modules saved as `<name>.safetensors`) that rebuild this detector in `run_dir`."""
        raise NotImplementedError(f"{type(self).__name__} cannot be saved as a run directory")

    @classmethod
    @abstractmethod
    def from_state(cls, run_dir: Path, config: dict[str, Any], device) -> Detector:
        """Rebuild from a run directory's config.json fields (weights loaded strictly)."""

    @classmethod
    def claims(cls, path: Path) -> bool:
        """Whether a directory without a config.json (a released model's own layout) is this kind's."""
        return False

    def save_pretrained(self, run_dir: str | os.PathLike, *, meta: dict | None = None,
                        json_files: dict[str, Any] | None = None, train: dict | None = None,
                        carry: tuple[str, ...] = ("log.jsonl",)) -> Path:
        """Write the run directory (`rundir`) atomically; files named in `carry` are kept from the one
        replaced."""
        fields, modules = self.state(Path(run_dir))

        def write(tmp: Path) -> None:
            for name, module in modules.items():
                save_weights({k: v.cpu() for k, v in module.state_dict().items()}, tmp / f"{name}.safetensors")

        return write_run(run_dir, run_config(self.kind, self.name, fields, train), meta, write, json_files, carry)


def over_files(paths: PathList, fn, chunk: int | None = None) -> np.ndarray:
    """`fn` over the decoded images of `paths`, `chunk` (DECODE_CHUNK) at a time, results in order."""
    chunk = chunk or DECODE_CHUNK
    out = [np.asarray(fn([open_image(p) for p in paths[s : s + chunk]])) for s in range(0, len(paths), chunk)]
    return np.concatenate(out) if out else np.empty(0)


@runtime_checkable
class FeatureCaching(Protocol):
    """A detector whose frozen-backbone features of image files can be kept in a `FeatureCache`."""

    def use_cache(self, root: str | os.PathLike | None) -> None: ...


def use_feature_cache(detector: Detector, root: str | os.PathLike | None) -> Detector:
    """Keep `detector`'s backbone features under `root` where it has any; other kinds are unchanged."""
    if root is not None and isinstance(detector, FeatureCaching):
        detector.use_cache(root)
    return detector


@runtime_checkable
class Explainer(Protocol):
    """A detector that also writes why (UniGenDet): one result per image, with `.p_fake` and `.text`.
    One whose `reads_evidence` is true explains another detector from that detector's verdict and
    evidence, given as `questions` (`unified.prompts.evidence_question`)."""

    def explain(self, paths: PathList) -> list: ...

    def explain_images(self, images: Sequence[Image.Image], questions: Sequence[str] | None = None) -> list: ...


@dataclass(frozen=True)
class CropScores:
    """One image's verdict inputs: p_fake (from the mean logit of the crops read), the spread of those
    crops' p_fake, and why the detector declines to call it fake (`uncertain`: None when it does not)."""

    p_fake: float
    spread: float
    crops: tuple[float, ...]
    novelty: float | None = None  # how unlike the training images it is (detectors with a novelty score)
    uncertain: str | None = None
    novel: bool = False  # uncertain because it is unlike the training images (not because its parts disagree)


@runtime_checkable
class CropScorer(Protocol):
    """A detector that reads several native `side` x `side` crops of an image and reports how much
    they disagree (the forensic detector)."""

    @property
    def side(self) -> int: ...

    def crop_scores(self, images: Sequence[Image.Image]) -> list[CropScores]: ...


@runtime_checkable
class Generator(Protocol):
    """A detector that can also generate images from text (UniGenDet)."""

    def generate(self, prompts: Sequence[str], **options) -> torch.Tensor: ...


def load_detector(spec: str | os.PathLike, device: str | torch.device = "cpu", **options) -> Detector:
    """Rebuild the detector a checkpoint string names (`unigendet.weights.resolve_checkpoint`: a run
    directory, "shipped[:NAME]", a UniGenDet checkpoint or training run, a released UniGenDet
    directory); weights load strictly. `options` go to kinds that declare them (`load_options`)."""
    path = resolve_checkpoint(spec)
    claimed = [] if (path / "config.json").is_file() else [cls for cls in DETECTORS.values() if cls.claims(path)]
    cfg = {} if claimed else read_run_config(path)  # older layouts are read as today's there
    kind = claimed[0].kind if claimed else cfg.get("kind")
    if kind not in DETECTORS:
        raise CheckpointError(f"{path}/config.json: unknown detector kind {kind!r}; known: {sorted(DETECTORS)}")
    cls = DETECTORS[kind]
    unknown = sorted(set(options) - set(cls.load_options))
    if unknown:
        raise ValueError(f"{path}: a {kind} detector takes no {', '.join(unknown)} option")
    cls.check_options(options, device)
    try:
        detector = cls.from_state(path, cfg, device, **options)
    except (KeyError, TypeError, ValueError) as e:
        if claimed:
            raise
        raise CheckpointError(f"{path}/config.json: does not describe a {kind} detector ({e!r})") from e
    detector.source = path
    return detector
