"""The UniGenDet stages as tasks of the training loop: one class per stage.

A task supplies each rank's micro-batches, its loss weights, the parameters it trains and its
evaluation. `UnifiedTask` holds what all three share (samplers, text-to-image samples, the
evaluation on the validation split); each stage adds its own samples:
- T2I: caption -> latent samples only (flow MSE), so that the generator learns before GDUF.
- GDUF: label-balanced detection samples in the SMSA layout (answer CE + cls-head CE) mixed with
  text-to-image samples (flow MSE) in a fixed ratio; everything trains but the codec.
- DIGA: text-to-image samples only; a frozen snapshot of the GDUF detector (the teacher) turns the
  same real image into target features, and the generator's hidden states after layer k are
  projected onto them; only the generation side trains. A frozen understanding encoder reads only
  native crops, which the captioned photos (kept at the generation size) are not: there the aligned
  samples are photo views of the detection data, generated without a caption (the caption photos
  keep the flow loss alone).
Each stage also says which detection bank it trains on (`detection_bank`).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import torch
import torch.nn.functional as F

from unigendet.explain import CueScale, check, reasons_agree
from unigendet.labels import FAKE, LABEL_NAMES, REAL
from unigendet.metrics import roc_auc
from unigendet.rundir import read_meta
from unigendet.unified.flow import interpolate, sample_t, target_velocity
from unigendet.unified.inference import MAX_ANSWER, detect
from unigendet.unified.losses import packed_losses
from unigendet.unified.packing import CAUSAL, FULL, ImageTokens, PackedBatch, Sample, Split
from unigendet.unified.prompts import parse_verdict
from unigendet.unified.samples import SampleBuilder

from .config import UnifiedConfig
from .data import Banks, load_bank, load_crops
from .dist import DistInfo
from .sampler import StepSampler, sample_rng
from .tokens import load_token_bank


def forensic_prompt(caption: str | None) -> str:
    """The DIGA teacher's question about a real image, built from its caption when it has one."""
    subject = f" of {caption}" if caption else ""
    return f"Inspect this image{subject} for signs of generation: are its textures and details authentic?"


class UnifiedTask:
    """What every unified stage shares; a stage is a subclass."""

    def __init__(self, cfg: UnifiedConfig, model, builder: SampleBuilder, codec, banks: Banks, dist: DistInfo):
        self.cfg, self.model, self.builder, self.codec, self.dist = cfg, model, builder, codec, dist
        self.det, self.t2i, self.val, self.val_gen = banks.det, banks.t2i, banks.val, banks.val_gen
        self.cue_scale: CueScale | None = banks.scale  # when answers state measured cues
        self.align_layer: int | None = None  # the layer whose states the loss aligns (None: no alignment)
        self.t2i_sampler = self.sampler(self.t2i, cfg.t2i_per_step, balanced=False)

    @property
    def weights(self) -> dict[str, float]:
        """Loss name -> weight; the loop sums the weighted per-token means."""
        return {"mse": 1.0}

    @classmethod
    def detection_bank(cls, cfg: UnifiedConfig, model, builder: SampleBuilder, codec, train, init, log):
        """(the bank detection samples are drawn from, or None; the cue scale its answers state).
        `log`: a progress callback for views a frozen encoder reads."""
        return None, None

    def trainable(self, model) -> list | None:
        """The parameters this stage trains (None: all of them)."""
        if self.cfg.freeze_vit:
            return [p for n, p in model.named_parameters() if not n.startswith("vit_model.")]
        return None

    def sampler(self, bank, n_global: int, balanced: bool) -> StepSampler | None:
        cfg, dist = self.cfg, self.dist
        if not n_global:
            return None
        if n_global % (dist.world * cfg.accum):
            raise ValueError(f"{n_global} samples per step do not split over {dist.world} ranks x {cfg.accum}")
        return StepSampler(bank.labels, len(bank), n_global // (dist.world * cfg.accum), cfg.seed,
                           dist.rank, dist.world, cfg.accum, balanced=balanced)

    # -- batches ----------------------------------------------------------------
    def batch(self, step: int, micro: int) -> PackedBatch:
        return self.builder.pack(self.samples(step, micro))

    def samples(self, step: int, micro: int) -> list[Sample]:
        return self.t2i_samples(step, micro)

    def t2i_samples(self, step: int, micro: int, aligned: bool = False) -> list[Sample]:
        """Noised caption -> latent samples; `aligned`: each with the teacher's reading of its image."""
        if self.t2i_sampler is None:
            return []
        idxs = self.t2i_sampler.indices(step, micro)
        targets = self.teacher_features([(self.t2i.latents[i], self.t2i.images[i], self.t2i.records[i].caption)
                                         for i in idxs]) if aligned else [None] * len(idxs)
        samples = []
        for j, (idx, tgt) in enumerate(zip(idxs, targets, strict=True)):
            g = sample_rng(self.cfg.seed, step, self.t2i_sampler.global_index(step, micro, j))
            x0 = self.t2i.latents[idx]
            t = float(sample_t(1, self.cfg.time_shift, g)[0])
            eps = torch.randn(x0.shape, generator=g)
            caption = None if torch.rand(1, generator=g).item() < self.cfg.caption_dropout else \
                self.t2i.records[idx].caption
            samples.append(self.builder.text_to_image(caption, interpolate(x0, eps, t), t,
                                                      target_velocity(x0, eps), tgt))
        return samples

    def teacher_features(self, items) -> list[torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} aligns nothing")

    # -- evaluation ---------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, model, explain: bool = False, max_eval: int = 256) -> dict[str, float]:
        """Detection accuracy on the validation split (cls head; and the written verdict when
        `explain`), and the flow loss on validation text-to-image samples at fixed times."""
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
            levels = [self.val.levels(i) for i in range(n)]
            if levels and all(lv is not None for lv in levels):  # the answers state measured cues: read them back
                readings = [check(r.text, lv) for r, lv in zip(res, levels, strict=True)]
                made = sum(x.made for x in readings)
                out["val_claims_consistent"] = sum(x.consistent for x in readings) / made if made else 0.0
                out["val_claims_per_answer"] = made / len(readings)
            teacher = getattr(self.val, "teacher", None)
            if teacher is not None:  # the answers state the explained detector's verdict and reasons
                said = [LABEL_NAMES[teacher.label(i)] for i in range(n)]
                out["val_text_agrees_teacher"] = float(np.mean([x is not None and LABEL_NAMES[x] == t
                                                                for x, t in zip(verdicts, said, strict=True)]))
                out["val_reasons_agree"] = float(np.mean([reasons_agree(r.text, teacher.of(i), said[i])
                                                          for i, r in enumerate(res)]))
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


class T2ITask(UnifiedTask):
    """Text-to-image pre-training: the flow loss only, measured on validation samples."""

    @torch.no_grad()
    def evaluate(self, model, explain: bool = False, max_eval: int = 256) -> dict[str, float]:
        return {"val_mse": self.val_flow_loss(model)}


class GDUFTask(UnifiedTask):
    """Detection with explanation (SMSA samples) and generation together."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.det_sampler = self.sampler(self.det, self.cfg.det_per_step, balanced=True)

    @property
    def weights(self) -> dict[str, float]:
        return {"ce": self.cfg.ce_weight, "mse": 1.0, "cls": self.cfg.cls_weight}

    @classmethod
    def detection_bank(cls, cfg, model, builder, codec, train, init, log):
        mc = model.config
        if not mc.vit.frozen:
            bank = load_crops(train, mc.image_size) if mc.detect_view == "crop" else load_bank(train, mc.image_size,
                                                                                              codec)
            return bank, None
        bank = load_token_bank(train, builder, codec, cfg.views, cfg.seed, cfg.cache, progress=log)
        if not model.vit_norm.fitted:  # standardise the encoder's channels as the training views have them
            model.vit_norm.fit(bank.tokens)
        bank.scale = CueScale.fit(bank.photo_cues(), fitted_on=f"{cfg.det_data or cfg.data} train photos")
        return bank, bank.scale

    def samples(self, step: int, micro: int) -> list[Sample]:
        samples = []
        for j, idx in enumerate(self.det_sampler.indices(step, micro) if self.det_sampler else []):
            g = sample_rng(self.cfg.seed, step, self.det_sampler.global_index(step, micro, j), 1)
            image, latent, answer, question = self.det.training_view(idx, g, self.codec)
            latent = latent if self.model.config.smsa else None
            samples.append(self.builder.detection(latent, image, question, answer=answer,
                                                  label=self.det.records[idx].label))
        return samples + self.t2i_samples(step, micro)


class DIGATask(UnifiedTask):
    """The frozen GDUF detector (the teacher) teaches the generation side by feature alignment."""

    def __init__(self, cfg, model, builder, codec, banks, dist):
        super().__init__(cfg, model, builder, codec, banks, dist)
        if not cfg.init:
            raise ValueError("DIGA starts from a GDUF checkpoint: pass --init RUN/checkpoints/step-N")
        self.teacher = copy.deepcopy(model).eval().requires_grad_(False)  # frozen snapshot of the detector
        self.align_layer = cfg.diga_layer or model.config.diga_layer
        # with a frozen encoder the aligned samples are photo views of the detection data
        self.photo_sampler = self.sampler(self.det, cfg.det_per_step, balanced=False) if self.det else None

    @property
    def weights(self) -> dict[str, float]:
        return {"mse": 1.0, "align": self.cfg.align_weight}

    @classmethod
    def detection_bank(cls, cfg, model, builder, codec, train, init, log):
        if not model.config.vit.frozen:
            return None, None
        photos = [r for r in train if r.label == REAL]
        if not cfg.det_per_step or not photos:
            raise ValueError("DIGA with a frozen encoder aligns photo views of the detection data: pass "
                             "--det-data with real train images and --det-per-step N")
        bank = load_token_bank(photos, builder, codec, cfg.views, cfg.seed, cfg.cache, progress=log)
        saved = read_meta(init).get("cue_scale") if init else None
        return bank, CueScale.from_json(json.dumps(saved)) if saved else None

    def trainable(self, model) -> list:
        return model.generation_parameters()

    def samples(self, step: int, micro: int) -> list[Sample]:
        if self.photo_sampler is None:
            return self.t2i_samples(step, micro, aligned=True)
        return self.t2i_samples(step, micro) + self.photo_samples(step, micro)

    def photo_samples(self, step: int, micro: int) -> list[Sample]:
        """Uncaptioned text-to-image samples of photo views, each aligned to the teacher's reading
        of the same view's native crop."""
        views = []
        for j, idx in enumerate(self.photo_sampler.indices(step, micro)):
            g = sample_rng(self.cfg.seed, step, self.photo_sampler.global_index(step, micro, j), 2)
            view = int(torch.randint(self.det.views, (1,), generator=g))
            views.append((g, self.det.latents[idx, view], self.det.image(idx, view)))
        targets = self.teacher_features([(x0, image, None) for _, x0, image in views])
        samples = []
        for (g, x0, _), tgt in zip(views, targets, strict=True):
            t = float(sample_t(1, self.cfg.time_shift, g)[0])
            eps = torch.randn(x0.shape, generator=g)
            samples.append(self.builder.text_to_image(None, interpolate(x0, eps, t), t, target_velocity(x0, eps), tgt))
        return samples

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
        out = teacher(batch, capture=(self.align_layer - 1,))
        h = teacher.language_model.model.norm(out.layers[self.align_layer - 1][batch.vit_index])
        lat_side = items[0][0].shape[-1] // self.model.config.latent.patch_size
        feats, start = [], 0
        for s in samples:
            gh, gw = s.splits[2].vit.grid
            grid = h[start:start + gh * gw].T.reshape(1, -1, gh, gw)
            start += gh * gw
            resized = F.interpolate(grid.float(), size=(lat_side, lat_side), mode="bilinear", align_corners=False)
            feats.append(resized[0].flatten(1).T.cpu())
        return feats


@torch.no_grad()
def detect_bank(model, builder: SampleBuilder, bank, n: int | None = None, explain: bool = False, batch: int = 32):
    """`inference.detect` over the first n images of a bank (all by default; a view bank's plain views)."""
    model.eval()
    n = len(bank) if n is None else n
    out = []
    for i in range(0, n, batch):
        latents, images = bank.plain(i, min(n, i + batch))
        questions = [bank.question(k) for k in range(i, min(n, i + batch))]
        out += detect(model, builder, latents, images, explain=explain, question=questions, max_new_tokens=MAX_ANSWER)
    return out
