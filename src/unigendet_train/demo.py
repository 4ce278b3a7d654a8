"""`unigendet demo`: the co-evolution loop end to end on the built-in corpus, tiny preset.

build data -> ViT pre-training (stage 0, small presets only) -> the generation latent space
(the project's autoencoder on the built-in photos) -> text-to-image pre-training -> GDUF with
the ViT frozen -> the trained generator's fakes join a second corpus -> DIGA -> GenDet and the
linear probe on that corpus -> the demo's own detector (`runs/detector`: the NPR network on
the built-in corpus) -> all five evaluated on the built-in test split beside the shipped
in-the-wild detector (`runs/eval/report.html`) -> the generator after each stage measured
against held-out crops, beside noise and codec references (`runs/eval-generate/report.html`)
-> a summary under `runs/`.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from unigendet.corpus.build import CorpusConfig, add_text_to_image_pairs, build_corpus, is_built
from unigendet.corpus.sources import MIN_PHOTOS, check_photo_count, discover_photos, photo_counts, photo_report
from unigendet.evaluation.run import EvalDetectConfig, EvalGenerateConfig, eval_detect, eval_generate
from unigendet.weights import CheckpointError, shipped_path

from .baselines import LinearProbeConfig, run_linear_probe
from .codec import CodecConfig, run_codec
from .config import DIGAConfig, GDUFConfig, T2IConfig
from .gendet import GenDetTrainConfig, run_gendet
from .npr import NPRTrainConfig, run_npr
from .stages import StageResult
from .unified import run_unified
from .vit_pretrain import ViTPretrainConfig, run_vit_pretrain

# The demo's detector (`unigendet detect --checkpoint runs/detector`): the NPR recipe of
# docs/results-history.md (blur and JPEG augmentation), on the built-in corpus.
DEMO_DETECTOR_OPTIONS = {"blur_prob": 0.1, "jpeg_prob": 0.1}
# GDUF after text-to-image pre-training: half the learning rate and twice the text-to-image share of
# the from-scratch defaults, so detection training does not undo the generator (docs/results-history.md)
GDUF_AFTER_T2I = {"lr": 5e-4, "t2i_per_step": 4}


@dataclass(frozen=True)
class DemoConfig:
    """The co-evolution loop on built-in data, tiny preset: about 15 minutes on 2 CPU cores."""

    out: str = "runs"  # every run, corpus and report of the demo goes here
    vit_steps: int = 600  # stage 0: ViT pre-training steps
    codec_steps: int = 600  # the generation latent space: autoencoder steps
    t2i_steps: int = 800  # text-to-image pre-training steps
    gduf_steps: int = 150  # stage 1: GDUF steps
    diga_steps: int = 100  # stage 2: DIGA steps
    size: int = 128  # corpus image side
    crops_per_photo: int = 8  # of the built-in corpus
    autoencoder_steps: int = 200  # training steps of each autoencoder generator
    detector_epochs: int = 6  # epochs of the demo's own detector
    tsne: int = 150  # images in the evaluation report's t-SNE plots
    generate_prompts: int = 40  # held-out captions the generators are measured on (2 images each)
    generate_steps: int = 30  # sampling steps of those images
    photo_sources: str = "all"  # all | python (only the photos pip installs)
    small_corpus: bool = False  # go on with fewer photos than the documented corpus needs (no Debian photo packages)
    seed: int = 0
    progress: bool = True  # progress bars of the corpus builds and the training (--quiet: none)


def run_demo(cfg: DemoConfig) -> dict:
    out, t0, summary = Path(cfg.out), time.perf_counter(), {}
    common = dict(seed=cfg.seed, progress=cfg.progress)

    def phase(name: str) -> None:
        print(f"[demo {time.perf_counter() - t0:6.0f}s] {name}", flush=True)

    def stage(key: str, run, config) -> StageResult:
        summary[key] = (result := run(config)).metrics
        return result

    # Data
    phase("building the built-in corpus")
    found = discover_photos(sources=cfg.photo_sources)
    print(photo_report(found, cfg.photo_sources), flush=True)
    check_photo_count(found, cfg.small_corpus)  # before any work: stop at once when packages are missing
    summary["photos"] = photo_counts(found, cfg.photo_sources)
    data = out / "data"
    if not is_built(data):
        build_corpus(CorpusConfig(out=str(data), seed=cfg.seed, size=cfg.size, crops_per_photo=cfg.crops_per_photo,
                                  autoencoder_steps=cfg.autoencoder_steps, photo_sources=cfg.photo_sources,
                                  allow_small=cfg.small_corpus), progress=cfg.progress)
    on_data = dict(data=str(data), **common)
    # Stage 0: a forensic ViT (full scale starts from SigLIP instead)
    phase("stage 0: pre-training the understanding ViT on detection crops")
    vit = stage("vit-pretrain", run_vit_pretrain, ViTPretrainConfig(out=str(out / "vit"), steps=cfg.vit_steps,
                                                                    **on_data))
    # The generator's latent space and its text-to-image pre-training
    phase("the generation latent space: the autoencoder on the built-in photos")
    codec = stage("codec", run_codec, CodecConfig(out=str(out / "codec"), steps=cfg.codec_steps, **on_data))
    phase("text-to-image pre-training")
    t2i = stage("t2i", run_unified, T2IConfig(out=str(out / "t2i"), init=str(vit.checkpoint), codec=str(codec.out),
                                              steps=cfg.t2i_steps, ckpt_every=cfg.t2i_steps,
                                              eval_every=cfg.t2i_steps, **on_data))
    # Stage 1: GDUF
    phase("stage 1: GDUF (detection + explanation + generation)")
    gduf = stage("gduf", run_unified, GDUFConfig(out=str(out / "gduf"), init=str(t2i.checkpoint),
                                                  freeze_vit=True, **GDUF_AFTER_T2I, steps=cfg.gduf_steps,
                                                  ckpt_every=cfg.gduf_steps, **on_data))
    # Co-evolution: the generator's own fakes join the corpus
    phase("co-evolution: the built-in corpus plus content-aligned pairs from the trained generator")
    coevo = out / "data-coevo"
    if not is_built(coevo):
        add_text_to_image_pairs(data, coevo, gduf.checkpoint, seed=cfg.seed, progress=cfg.progress)
    # Stage 2: DIGA
    phase("stage 2: DIGA (the frozen detector teaches the generator)")
    diga = stage("diga", run_unified, DIGAConfig(out=str(out / "diga"), init=str(gduf.checkpoint),
                                                 steps=cfg.diga_steps, **on_data))
    # Detectors on frozen features of the co-evolved corpus, then the demo's own on the built-in one
    features = dict(data=str(coevo), seed=cfg.seed, cache=str(out / "features"))
    phase("detector: gendet")
    stage("gendet", run_gendet, GenDetTrainConfig(out=str(out / "gendet"), **features))
    phase("detector: linear-probe")
    stage("linear-probe", run_linear_probe, LinearProbeConfig(out=str(out / "linear-probe"), **features))
    phase("the demo's detector: npr on the built-in corpus")
    detector = stage("detector", run_npr, NPRTrainConfig(data=str(data), out=str(out / "detector"),
                                                         epochs=cfg.detector_epochs, seed=cfg.seed,
                                                         **DEMO_DETECTOR_OPTIONS))
    # Evaluation: every detector the same way on the built-in test split
    phase("evaluation on the built-in test split")
    runs = [out / "gduf", out / "diga", out / "gendet", out / "linear-probe", detector.out]
    with contextlib.suppress(CheckpointError):  # the package's in-the-wild detector, beside the demo's own
        runs.append(shipped_path())
    evaluation = eval_detect(EvalDetectConfig(checkpoints=[str(r) for r in runs], data=str(data),
                                              out=str(out / "eval"), cache=str(out / "features"), tsne=cfg.tsne))
    summary["eval"] = {name: d["mean"] for name, d in evaluation["detectors"].items()}
    phase("generation after each stage, against held-out crops of the training photos")
    generation = eval_generate(EvalGenerateConfig(checkpoints=[str(t2i.checkpoint), str(gduf.checkpoint),
                                                               str(diga.out)],
                                                  data=str(data), out=str(out / "eval-generate"),
                                                  max_prompts=cfg.generate_prompts, steps=cfg.generate_steps,
                                                  seed=cfg.seed))
    summary["generation"] = generation["rows"]
    phase("done")
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    report(summary, out, len(found))
    return summary


def report(summary: dict, out: Path, photos: int) -> None:
    """The demo's closing lines: detection and generation results, and where the reports are."""
    print(f"built-in test split, means over generators (report: {out / 'eval' / 'report.html'}):")
    for name, m in summary["eval"].items():
        print(f"  {name:<28} AUC {100 * m['auc']:5.1f}  AP {100 * m['ap']:5.1f}  acc@0.5 {100 * m['acc']:5.1f}")
    if photos < MIN_PHOTOS:
        print(f"SMALL CORPUS: {photos} source photos (the documented corpus has at least {MIN_PHOTOS}); "
              "these numbers are not comparable with docs/results-history.md")
    print("generation against held-out crops (report: " f"{out / 'eval-generate' / 'report.html'}):")
    for name, m in summary["generation"].items():
        print(f"  {name:<34} Frechet {m['frechet_efficientnet-lite0']:6.1f}  adherence {100 * m['adherence']:5.1f}% "
              f"(chance {100 * m['chance']:.1f}%)")
    print(f"`unigendet detect PATH...` uses the shipped in-the-wild detector; this demo's (npr) with "
          f"--checkpoint {out / 'detector'}")
