"""The UniGenDet stages on the unified model: text-to-image pre-training, GDUF and DIGA.

T2I: caption -> latent samples only (flow MSE), so that the generator learns before GDUF.
GDUF: label-balanced detection samples in the SMSA layout (answer CE + cls-head CE)
mixed with text-to-image samples (flow MSE) in a fixed ratio; everything trains
but the codec. DIGA: text-to-image samples only; a frozen snapshot of the GDUF
detector (the teacher) turns the same real image into target features, and the
generator's hidden states after layer k are projected onto them; only the
generation side trains. A frozen understanding encoder reads only native crops, which the
captioned photos (kept at the generation size) are not: there the aligned samples are photo views
of the detection data, generated without a caption (the caption photos keep the flow loss alone).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from unigendet.data.generation import generation_split
from unigendet.data.readers import read_source
from unigendet.explain import CueScale, check
from unigendet.labels import FAKE, REAL
from unigendet.metrics import roc_auc
from unigendet.unified.checkpoint import load_meta, load_model
from unigendet.unified.flow import interpolate, sample_t, target_velocity
from unigendet.unified.inference import detect
from unigendet.unified.losses import packed_losses
from unigendet.unified.model import swap_understanding
from unigendet.unified.packing import CAUSAL, FULL, ImageTokens, PackedBatch, Sample, Split
from unigendet.unified.pipeline import UniGenDetPipeline, codec_for, tokenizer_for
from unigendet.unified.presets import create_model, get_config
from unigendet.unified.prompts import detection_answer, parse_verdict
from unigendet.unified.samples import SampleBuilder
from unigendet.weights import latest_checkpoint, resolve_checkpoint

from .card import unigendet_card
from .config import DIGAConfig, T2IConfig, TrainConfig
from .data import CropBank, ImageBank, load_bank, load_crops, records_of_split
from .dist import DistInfo, cleanup, init_distributed
from .loop import Trainer
from .sampler import StepSampler, sample_rng
from .stages import StageResult, register_stage
from .tokens import TokenBank, load_token_bank


def forensic_prompt(caption: str | None) -> str:
    """The DIGA teacher's question about a real image, built from its caption when it has one."""
    subject = f" of {caption}" if caption else ""
    return f"Inspect this image{subject} for signs of generation: are its textures and details authentic?"


class UnifiedTask:
    def __init__(self, cfg: TrainConfig, model, builder: SampleBuilder, codec, det: ImageBank | CropBank | None,
                 t2i: ImageBank, val: ImageBank, val_gen: ImageBank, dist: DistInfo, teacher=None):
        self.cfg, self.model, self.builder, self.codec = cfg, model, builder, codec
        self.det, self.t2i, self.val, self.val_gen = det, t2i, val, val_gen
        self.diga = cfg.stage == "diga"
        self.diga_layer = (cfg.diga_layer or model.config.diga_layer) if self.diga else None
        self.weights = {"mse": 1.0, "align": cfg.align_weight} if self.diga else \
            {"ce": cfg.ce_weight, "mse": 1.0, "cls": cfg.cls_weight}
        self.teacher = teacher
        self.cue_scale: CueScale | None = None  # fitted on the detection photos when answers state cues

        def sampler(bank, n_global, balanced):
            if not n_global:
                return None
            if n_global % (dist.world * cfg.accum):
                raise ValueError(f"{n_global} samples per step do not split over {dist.world} ranks x {cfg.accum}")
            return StepSampler(bank.labels, len(bank), n_global // (dist.world * cfg.accum), cfg.seed,
                               dist.rank, dist.world, cfg.accum, balanced=balanced)

        # DIGA with a frozen encoder aligns photo views of the detection data (a TokenBank of photos)
        self.photos = det if self.diga and isinstance(det, TokenBank) else None
        self.photo_sampler = sampler(det, cfg.det_per_step, False) if self.photos is not None else None
        self.det_sampler = sampler(det, cfg.det_per_step, True) if det is not None and self.photos is None else None
        self.t2i_sampler = sampler(t2i, cfg.t2i_per_step, False)

    # -- batches ----------------------------------------------------------------
    def batch(self, step: int, micro: int) -> PackedBatch:
        samples = []
        if self.det_sampler is not None:
            for j, idx in enumerate(self.det_sampler.indices(step, micro)):
                r = self.det.records[idx]
                image, latent, answer = self.detection_image(idx, sample_rng(
                    self.cfg.seed, step, self.det_sampler.global_index(step, micro, j), 1))
                latent = latent if self.model.config.smsa else None
                samples.append(self.builder.detection(latent, image, answer=answer, label=r.label))
        if self.t2i_sampler is not None:
            idxs = self.t2i_sampler.indices(step, micro)
            aligned = self.diga and self.photos is None
            targets = self.teacher_features([(self.t2i.latents[i], self.t2i.images[i], self.t2i.records[i].caption)
                                             for i in idxs]) if aligned else [None] * len(idxs)
            for j, (idx, tgt) in enumerate(zip(idxs, targets, strict=True)):
                g = sample_rng(self.cfg.seed, step, self.t2i_sampler.global_index(step, micro, j))
                x0 = self.t2i.latents[idx]
                t = float(sample_t(1, self.cfg.time_shift, g)[0])
                eps = torch.randn(x0.shape, generator=g)
                caption = None if torch.rand(1, generator=g).item() < self.cfg.caption_dropout else \
                    self.t2i.records[idx].caption
                samples.append(self.builder.text_to_image(caption, interpolate(x0, eps, t), t,
                                                          target_velocity(x0, eps), tgt))
        if self.photos is not None:
            samples += self.photo_samples(step, micro)
        return self.builder.pack(samples)

    def photo_samples(self, step: int, micro: int) -> list[Sample]:
        """Uncaptioned text-to-image samples of photo views, each aligned to the teacher's reading
        of the same view's native crop."""
        views = []
        for j, idx in enumerate(self.photo_sampler.indices(step, micro)):
            g = sample_rng(self.cfg.seed, step, self.photo_sampler.global_index(step, micro, j), 2)
            view = int(torch.randint(self.photos.views, (1,), generator=g))
            views.append((g, self.photos.latents[idx, view], self.photos.image(idx, view)))
        targets = self.teacher_features([(x0, image, None) for _, x0, image in views])
        samples = []
        for (g, x0, _), tgt in zip(views, targets, strict=True):
            t = float(sample_t(1, self.cfg.time_shift, g)[0])
            eps = torch.randn(x0.shape, generator=g)
            samples.append(self.builder.text_to_image(None, interpolate(x0, eps, t), t, target_velocity(x0, eps), tgt))
        return samples

    @torch.no_grad()
    def detection_image(self, idx: int, g: torch.Generator) -> tuple[torch.Tensor | ImageTokens, torch.Tensor, str]:
        """The image under test (or its frozen encoder's tokens), its clean latents and the reference
        answer: a fresh native crop from a CropBank, a random prepared view from a TokenBank (whose
        answer states the cues measured on that view)."""
        if isinstance(self.det, TokenBank):
            view = int(torch.randint(self.det.views, (1,), generator=g))
            return self.det.image(idx, view), self.det.latents[idx, view], self.det.answer(idx, view)
        r = self.det.records[idx]
        answer = r.explanation or detection_answer(r.label)
        if isinstance(self.det, CropBank):
            image = self.det.crop(idx, g)
            return image, self.codec.encode(image[None])[0], answer
        return self.det.images[idx], self.det.latents[idx], answer

    @torch.no_grad()
    def teacher_features(self, items: list[tuple[torch.Tensor, torch.Tensor | ImageTokens, str | None]]
                         ) -> list[torch.Tensor]:
        """DIGA targets for (clean latents, image or its encoder tokens, caption) triples: the
        final-normed teacher states at the ViT positions after layer k, resized bilinearly from the
        ViT grid to the latent token grid."""
        teacher = self.teacher if not self.cfg.drifting_teacher else self.model
        b = self.builder
        samples = [Sample([
            Split(FULL, latent=b.latent_tokens(latent)),
            Split(CAUSAL, text=b.turn(forensic_prompt(caption))),
            Split(FULL, vit=image if isinstance(image, ImageTokens) else b.vit_tokens(image)),
        ]) for latent, image, caption in items]
        batch = b.pack(samples).to(teacher.device)
        out = teacher(batch, capture=(self.diga_layer - 1,))
        h = teacher.language_model.model.norm(out.layers[self.diga_layer - 1][batch.vit_index])
        lat_side = items[0][0].shape[-1] // self.model.config.latent.patch_size
        feats, start = [], 0
        for s in samples:
            gh, gw = s.splits[2].vit.grid
            grid = h[start:start + gh * gw].T.reshape(1, -1, gh, gw)
            start += gh * gw
            resized = F.interpolate(grid.float(), size=(lat_side, lat_side), mode="bilinear", align_corners=False)
            feats.append(resized[0].flatten(1).T.cpu())
        return feats

    # -- evaluation ---------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, model, explain: bool = False, max_eval: int = 256) -> dict[str, float]:
        """Detection accuracy on the validation split (cls head; and the written verdict when
        `explain`), and the flow loss on validation text-to-image samples at fixed times (alone for
        the text-to-image stage, which trains no detection)."""
        if self.cfg.stage == "t2i":
            return {"val_mse": self.val_flow_loss(model)}
        n = min(len(self.val), max_eval)
        labels = np.array(self.val.labels[:n])
        res = detect_bank(model, self.builder, self.val, n, explain)
        p_fake = [r.p_fake for r in res]
        verdicts = [parse_verdict(r.text) if r.text is not None else None for r in res]
        pred_fake = np.array(p_fake) > 0.5
        out = {"val_acc": float(np.mean(pred_fake == (labels == FAKE)))}
        if len(set(labels.tolist())) == 2:
            out["val_auc"] = roc_auc(np.array(p_fake), labels == FAKE)
        if explain:
            v = np.array([-1 if x is None else x for x in verdicts])
            out["val_text_acc"] = float(np.mean(v == labels))  # unparseable answers count as wrong
            out["val_unparsed"] = float(np.mean(v == -1))
            out["val_text_agrees_cls"] = float(np.mean(v == np.where(pred_fake, FAKE, REAL)))
            if isinstance(self.val, TokenBank) and self.val.scale is not None:
                readings = [check(r.text, self.val.levels(i, 0)) for i, r in enumerate(res)]
                made = sum(x.made for x in readings)
                out["val_claims_consistent"] = sum(x.consistent for x in readings) / made if made else 0.0
                out["val_claims_per_answer"] = made / len(readings)
        out["val_mse"] = self.val_flow_loss(model)
        return out

    def val_flow_loss(self, model, n: int = 32) -> float:
        samples = []
        for j in range(min(n, len(self.val_gen))):
            g = sample_rng(self.cfg.seed, 2**31 - 1, j)  # a stream of its own, apart from training
            x0, t = self.val_gen.latents[j], (j % 8 + 0.5) / 8
            eps = torch.randn(x0.shape, generator=g)
            samples.append(self.builder.text_to_image(self.val_gen.records[j].caption, interpolate(x0, eps, t), t,
                                                      target_velocity(x0, eps)))
        batch = self.builder.pack(samples).to(model.device)
        return float(packed_losses(model, batch)["mse"])


@torch.no_grad()
def detect_bank(model, builder: SampleBuilder, bank: ImageBank | TokenBank, n: int | None = None,
                explain: bool = False, batch: int = 32):
    """`inference.detect` over the first n images of a bank (all by default; a TokenBank's plain views)."""
    model.eval()
    n = len(bank) if n is None else n
    out = []
    for i in range(0, n, batch):
        j = min(n, i + batch)
        if isinstance(bank, TokenBank):
            latents, images = list(bank.latents[i:j, 0]), [bank.image(k, 0) for k in range(i, j)]
        else:
            latents, images = list(bank.latents[i:j]), list(bank.images[i:j])
        out += detect(model, builder, latents, images, explain=explain, max_new_tokens=256)
    return out


def score_bank(model, builder: SampleBuilder, bank: ImageBank) -> np.ndarray:
    """The cls head's p_fake for every image of a bank."""
    return np.array([r.p_fake for r in detect_bank(model, builder, bank)])


def build_run(cfg: TrainConfig, dist: DistInfo):
    """Model, codec, data banks and task for a unified stage."""
    init = resolve_checkpoint(cfg.init) if cfg.init else None  # a checkpoint, or a run (its latest)
    if init:
        model = load_model(init, ema=True, device=dist.device).train()
    else:
        model = create_model(get_config(cfg.preset, diga_layer=cfg.diga_layer or get_config(cfg.preset).diga_layer))
        model = model.to(dist.device)
    if cfg.understanding:
        model = swap_understanding(model, get_config(cfg.understanding)).train()
    if cfg.smsa is not None:  # a layout choice, not a weight: the same parameters serve both
        model.config = model.config.replace(smsa=cfg.smsa)
    mc = model.config
    codec = codec_for(mc, Path(cfg.codec) if cfg.codec else init)
    if not (cfg.codec or init) and codec.learned:
        raise ValueError(f"the {mc.name} preset generates through a {mc.latent.codec} codec that is trained, not "
                         "given: train it with `unigendet train codec --data DATA --out RUN` and pass --codec RUN")
    codec.eval().requires_grad_(False)
    builder = SampleBuilder(mc, tokenizer_for(mc, init))
    records = read_source(cfg.data, strict=True)
    det_records = read_source(cfg.det_data, strict=True) if cfg.det_data else records
    train, val = records_of_split(det_records, "train"), records_of_split(det_records, "val")
    det, valb, scale = None, None, None
    if mc.vit.frozen:  # prepared views: tokens, latents, measured cues (and answers stating them)
        log = (lambda done, n: print(f"views {done}/{n}", flush=True)) if cfg.progress and dist.main else None
        if cfg.stage == "gduf":
            det = load_token_bank(train, builder, codec, cfg.views, cfg.seed, cfg.cache, progress=log)
            if not model.vit_norm.fitted:  # standardise the encoder's channels as the training views have them
                model.vit_norm.fit(det.tokens)
            scale = CueScale.fit(det.photo_cues(), fitted_on=f"{cfg.det_data or cfg.data} train photos")
            det.scale = scale
        elif cfg.stage == "diga":
            photos = [r for r in train if r.label == REAL]
            if not cfg.det_per_step or not photos:
                raise ValueError("DIGA with a frozen encoder aligns photo views of the detection data: pass "
                                 "--det-data with real train images and --det-per-step N")
            det = load_token_bank(photos, builder, codec, cfg.views, cfg.seed, cfg.cache, progress=log)
            saved = load_meta(init).get("cue_scale") if init else None
            scale = CueScale.from_json(json.dumps(saved)) if saved else None
        valb = load_token_bank(val, builder, codec, 1, cfg.seed, cfg.cache, progress=log)
        valb.scale = scale
    elif cfg.stage == "gduf":
        det = load_crops(train, mc.image_size) if mc.detect_view == "crop" else load_bank(train, mc.image_size, codec)
    gen_train, gen_held = generation_split(records)
    if not gen_train:
        raise ValueError(f"{cfg.data}: no captioned real images in the train split for text-to-image samples")
    t2i = mirrored(load_bank(gen_train, mc.image_size, codec), codec)
    valb = valb or load_bank(val, mc.image_size, codec, view=mc.detect_view)
    val_gen = load_bank(gen_held or [r for r in val if r.label != FAKE], mc.image_size, codec)
    teacher = None
    if cfg.stage == "diga":
        if not cfg.init:
            raise ValueError("DIGA starts from a GDUF checkpoint: pass --init RUN/checkpoints/step-N")
        teacher = copy.deepcopy(model).eval().requires_grad_(False)  # frozen snapshot of the detector
    task = UnifiedTask(cfg, model, builder, codec, det, t2i, valb, val_gen, dist, teacher)
    task.cue_scale = scale
    return model, codec, task


@torch.no_grad()
def mirrored(bank: ImageBank, codec) -> ImageBank:
    """The bank and its left-right mirror images (a mirrored photo is a photo too)."""
    flipped = bank.images.flip(-1)
    latents = torch.cat([codec.encode(flipped[i:i + 64]) for i in range(0, len(flipped), 64)])
    return ImageBank(bank.records * 2, torch.cat([bank.images, flipped]), torch.cat([bank.latents, latents]))


@register_stage("diga", DIGAConfig)
@register_stage("gduf", TrainConfig)
@register_stage("t2i", T2IConfig)
def run_unified(cfg: TrainConfig) -> StageResult:
    # Setup
    dist = init_distributed()
    torch.manual_seed(cfg.seed)
    model, codec, task = build_run(cfg, dist)
    # Train
    params = model.generation_parameters() if cfg.stage == "diga" else None
    if cfg.freeze_vit and params is None:
        params = [p for n, p in model.named_parameters() if not n.startswith("vit_model.")]
    meta = {"cue_scale": json.loads(task.cue_scale.to_json())} if task.cue_scale else {}
    trainer = Trainer(model, task, cfg, dist, params=params, extra_files=lambda: {"codec": codec},
                      extra_meta=lambda: meta)
    history = trainer.fit()
    # Report
    metrics = {}
    ema = trainer.eval_model()
    if dist.main:
        metrics = task.evaluate(ema, explain=True) if cfg.report else {}
        metrics.update(first_loss=history[0]["loss"] if history else None,
                       last_loss=history[-1]["loss"] if history else None, steps=cfg.steps)
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        (Path(cfg.out) / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if cfg.ship:
            ship(cfg, ema, codec, task, metrics)
    cleanup()
    return StageResult(Path(cfg.out), latest_checkpoint(cfg.out) or Path(cfg.out), metrics)


def ship(cfg: TrainConfig, ema, codec, task: UnifiedTask, metrics: dict) -> Path:
    """The final EMA model as a shippable directory: weights, codec, config, cue scale, model card."""
    meta = {"cue_scale": json.loads(task.cue_scale.to_json())} if task.cue_scale else {}
    out = UniGenDetPipeline(ema, codec).save_pretrained(cfg.ship, meta={"metrics": metrics, **meta})
    det = task.det if task.det is not None else task.val
    (out / "MODEL_CARD.md").write_text(unigendet_card(cfg, ema.config, det.records, task.val.records, metrics))
    out.chmod(0o755)  # readable by every user of an installed package
    for f in out.iterdir():
        f.chmod(0o644)
    return out

