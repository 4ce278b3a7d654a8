"""Fine-tuning the forensic detector's networks end to end (`unigendet train forensic --tune-epochs N`).

The frozen recipe fits a linear head on tap statistics of frozen ImageNet networks. Tuning starts
from that head and trains the EfficientNet taps together with it, on fresh augmented views every
epoch (drawn per image and epoch, the same way for both classes; circulation included when the
config asks for it). The head's standardisation stays fixed, so the tuned detector is still a
linear head on the same named feature groups and its attribution stays exact. Batch norm keeps its
ImageNet running statistics and drop-connect stays off: CPU batches are too small to re-estimate them.

Under torchrun every rank takes its share of each batch and the gradients are summed over the ranks
(each share's loss weighted by its size), so the step is the one-process step on the whole batch;
rank 0's state (resumed or fresh) is broadcast first, and rank 0 alone writes the epochs.

Decoded training images are held in memory. After every epoch the state is written to
`OUT/tune/epoch-N` (networks, head, optimizer, the best epoch so far), so a killed run resumes at
the last finished epoch; the epoch with the best validation AUC is kept. The kept networks are
rounded to float16 (as the run saves them) before the head is recalibrated on the val split.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from unigendet.data.augment import make_view
from unigendet.data.imageio import open_image
from unigendet.data.records import Record
from unigendet.detectors import ForensicDetector
from unigendet.labels import FAKE
from unigendet.metrics import roc_auc
from unigendet.models.linear_fit import balanced_weights
from unigendet.unified.checkpoint import read_optimizer, save_optimizer
from unigendet.weights import atomic_directory, load_weights, read_weights, save_weights

from .dist import all_reduce_sum, broadcast_object, rank_and_world, shared_out, sum_gradients
from .views import view_rng

TUNE_VIEW = 1000  # view streams of tuning epochs start here, apart from the frozen recipe's views


def trainable(detector: ForensicDetector) -> list[nn.Module]:
    """The detector's networks that have weights to tune (statistics-only backbones have none)."""
    return [m for m, _ in detector.backbones() if any(True for _ in m.parameters())]


def raw_logits(detector: ForensicDetector, images: list[Image.Image]) -> torch.Tensor:
    """The head's uncalibrated logits of images taken as one crop each (their centre), with gradients
    (the detector's own `feature_rows` is the same path without them)."""
    feats = torch.cat([model(torch.stack([pre(im) for im in images])) for model, pre in detector.backbones()], dim=1)
    return detector.head.raw(feats)


class Tuner:
    """The tuning state of one run: the detector, its optimizer and where epochs are written."""

    def __init__(self, detector: ForensicDetector, cfg, state: Path):
        self.detector, self.cfg, self.dir = detector, cfg, Path(state)
        self.nets = trainable(detector)
        if not self.nets:
            raise ValueError(f"tuning needs a backbone with weights (e.g. efficientnet-lite0-taps); "
                             f"{', '.join(detector.backbone_names)} have none")
        for net in self.nets:
            net.requires_grad_(True).eval()
        self.opt = torch.optim.AdamW([{"params": [p for n in self.nets for p in n.parameters()], "lr": cfg.tune_lr},
                                      {"params": detector.head.fc.parameters(), "lr": cfg.tune_lr * 10}],
                                     weight_decay=1e-4)
        self.module = nn.ModuleList([*self.nets, detector.head])  # what an epoch's state saves
        self.params = [p for group in self.opt.param_groups for p in group["params"]]

    def sync(self, start: int, best: dict) -> tuple[int, dict]:
        """Rank 0's weights, optimizer state and progress on every rank (as they are when alone)."""
        if rank_and_world()[1] == 1:
            return start, best
        state = broadcast_object((start, best, self.module.state_dict(), self.opt.state_dict()))
        self.module.load_state_dict(state[2])
        self.opt.load_state_dict(state[3])
        return state[0], state[1]

    def save(self, epoch: int, best: dict) -> None:
        if rank_and_world()[0]:
            return
        with atomic_directory(self.dir / f"epoch-{epoch}") as tmp:
            save_weights(self.module, tmp / "weights.safetensors")
            save_optimizer(tmp, self.opt)
            (tmp / "state.json").write_text(json.dumps({"epoch": epoch, "best_auc": best["auc"],
                                                        "best_epoch": best["best_epoch"]}))
            if best.get("weights") is not None:
                save_weights(best["weights"], tmp / "best.safetensors")
        for old in self.dir.glob("epoch-*"):  # only the newest is needed to resume
            if old.name != f"epoch-{epoch}":
                shutil.rmtree(old, ignore_errors=True)

    def resume(self) -> tuple[int, dict]:
        """(the next epoch, the best so far) from the newest saved epoch, or (0, empty)."""
        saved = sorted(self.dir.glob("epoch-*"), key=lambda p: int(p.name.split("-")[1]))
        if not saved:
            return 0, {"auc": -1.0, "best_epoch": -1, "weights": None}
        last = saved[-1]
        load_weights(self.module, last / "weights.safetensors")
        self.opt.load_state_dict(read_optimizer(last))
        state = json.loads((last / "state.json").read_text())
        kept = last / "best.safetensors"
        return state["epoch"] + 1, {"auc": state["best_auc"], "best_epoch": state["best_epoch"],
                                    "weights": read_weights(kept) if kept.is_file() else None}


def image_loss(y: torch.Tensor, weight=None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """`loss(logits, share)`: the mean binary cross-entropy of the images `share` indexes (targets `y`),
    with the classes balanced by weighting the fakes (no `weight`), or by rescaling each image's
    `weight` per class (`balanced_weights`)."""
    if weight is None:
        balanced = nn.BCEWithLogitsLoss(pos_weight=(y == 0).sum() / (y == 1).sum().clamp(min=1))
        return lambda logits, share: balanced(logits, y[share])
    w = torch.as_tensor(balanced_weights(weight, (y == 1).numpy()), dtype=torch.float32)

    def weighted(logits: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
        per_image = nn.functional.binary_cross_entropy_with_logits(logits, y[share], reduction="none")
        return (per_image * w[share]).mean()

    return weighted


def tune(detector: ForensicDetector, cfg, train: list[Record], val: list[Record], state: Path, log=print,
         weight: np.ndarray | None = None) -> dict:
    """Fine-tune `detector` (its head fitted by the frozen recipe) for `cfg.tune_epochs`, its epochs
    saved under `state`; keep the epoch with the best val AUC. `weight`: per training image (None: unit
    weights); the classes are balanced either way. Returns the per-epoch curve."""
    tuner = Tuner(detector, cfg, state)
    images = [open_image(r.path) for r in train]
    val_images = [open_image(r.path) for r in val]
    y = torch.tensor([r.label == FAKE for r in train], dtype=torch.float32)
    val_fake = np.array([r.label == FAKE for r in val])
    loss_of = image_loss(y, weight)
    rank, world = rank_and_world()
    start, best = tuner.sync(*(tuner.resume() if rank == 0 else (0, {})))
    if start:
        log(f"tune: resuming at epoch {start}")
    curve = []
    for epoch in range(start, cfg.tune_epochs):
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))
        total = 0.0
        for idx in order.split(cfg.tune_batch):
            share = idx[rank::world]  # this rank's part of the batch (all of it when alone)
            tuner.opt.zero_grad(set_to_none=True)
            loss = torch.zeros(())
            if len(share):
                views = [make_view(images[i], cfg.view(), view_rng(cfg.seed, train[i].path, TUNE_VIEW + epoch))
                         for i in share.tolist()]
                loss = loss_of(raw_logits(detector, views), share) * (len(share) / len(idx))
                loss.backward()
            batch_loss = float(all_reduce_sum(loss.detach().reshape(1))[0])  # the whole batch's, on every rank
            if not np.isfinite(batch_loss):
                raise FloatingPointError(f"non-finite loss {batch_loss} while tuning the forensic networks")
            sum_gradients(tuner.params)
            tuner.opt.step()
            total += batch_loss * len(idx)
        with torch.no_grad():
            raw = shared_out(lambda ims: detector.head.raw(detector.feature_rows(ims)).numpy(), val_images)
            auc = roc_auc(raw, val_fake)
        curve.append({"epoch": epoch, "loss": total / len(train), "val_auc": auc})
        log(f"tune: epoch {epoch} loss {curve[-1]['loss']:.4f} val AUC {auc:.4f}")
        if auc > best["auc"]:
            best = {"auc": auc, "best_epoch": epoch,
                    "weights": {k: v.detach().clone() for k, v in tuner.module.state_dict().items()}}
        tuner.save(epoch, best)
    if best.get("weights") is not None:
        tuner.module.load_state_dict(best["weights"])
    for net in tuner.nets:  # as the run saves them
        with torch.no_grad():
            for t in net.state_dict().values():
                if t.is_floating_point():
                    t.copy_(t.half().float())
        net.requires_grad_(False)
    detector.tuned = True
    return {"tune_curve": curve, "tune_best_epoch": best.get("best_epoch", -1), "tune_best_val_auc": best["auc"]}
