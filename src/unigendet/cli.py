"""Command line: `unigendet <command>`. Each command is a small function."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

DEFAULT_DETECTOR = "runs/detector"  # written by `make demo` (relative to the working directory)
DETECTOR_ENV = "UNIGENDET_DETECTOR"  # a detector run to use when --checkpoint is not given


def default_detector() -> str:
    """The detector `detect` uses without --checkpoint: $UNIGENDET_DETECTOR, else ./runs/detector."""
    import os

    if os.environ.get(DETECTOR_ENV):
        return os.environ[DETECTOR_ENV]
    if Path(DEFAULT_DETECTOR).exists():
        return DEFAULT_DETECTOR
    raise FileNotFoundError(f"no detector given and none at ./{DEFAULT_DETECTOR}: pass --checkpoint RUN (a run "
                            f"`unigendet train` or `make demo` wrote), or set {DETECTOR_ENV}=RUN")


def cmd_models(args: argparse.Namespace) -> int:
    """List the registered presets with parameter counts (built on the meta device)."""
    from .registry import create_model, get_config, list_models

    rows = []
    for name in list_models():
        model = create_model(get_config(name), device="meta")
        llm = get_config(name).llm
        rows.append((name, model.num_parameters(), llm.hidden_size, llm.num_layers))
    if args.json:
        print(json.dumps([dict(name=n, parameters=p, hidden=h, layers=layer) for n, p, h, layer in rows]))
        return 0
    print(f"{'preset':<14}{'parameters':>16}{'hidden':>8}{'layers':>8}")
    for name, params, hidden, layers in rows:
        print(f"{name:<14}{params:>16,}{hidden:>8}{layers:>8}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The co-evolution loop end to end on the built-in corpus (tiny preset)."""
    from unigendet_train.demo import DemoConfig, run_demo

    run_demo(DemoConfig(out=args.out, gduf_steps=args.gduf_steps, diga_steps=args.diga_steps, seed=args.seed,
                        progress=not args.quiet, small_corpus=args.small_corpus))
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    """The library core end to end on an untrained tiny model: one step, save, reload, detect, generate."""
    from .checkpoint import load_model, save_checkpoint
    from .codecs import build_codec
    from .flow import Guidance, interpolate, sample_t, target_velocity
    from .images import save_image
    from .inference import detect, generate_latents
    from .losses import packed_losses
    from .prompts import FAKE, detection_answer
    from .registry import create_model, get_config
    from .samples import SampleBuilder
    from .tokenizer import get_tokenizer

    torch.manual_seed(args.seed)
    out = Path(args.out)
    cfg = get_config(args.preset)
    model = create_model(cfg)
    tok = get_tokenizer(cfg.tokenizer)
    builder = SampleBuilder(cfg, tok)
    lat = cfg.latent
    codec = build_codec(lat.codec, lat.channels, lat.downsample)
    print(f"[demo] preset {cfg.name}: {model.num_parameters():,} parameters (untrained; training comes with `train`)")

    images = torch.rand(2, 3, cfg.image_size, cfg.image_size) * 2 - 1
    z = codec.encode(images)
    eps, t = torch.randn_like(z[1]), float(sample_t(1)[0])
    samples = [
        builder.detection(z[0], images[0], answer=detection_answer(FAKE, "Uniform noise texture."), label=FAKE),
        builder.text_to_image("a noise texture", interpolate(z[1], eps, t), t, target_velocity(z[1], eps)),
    ]
    losses = packed_losses(model, builder.pack(samples))
    sum(losses.values()).backward()
    print("[demo] losses of one packed batch:", {k: round(v.item(), 4) for k, v in losses.items()})

    ckpt = save_checkpoint(out / "checkpoint", model, cfg, meta={"step": 0, "note": "untrained demo"})
    model = load_model(ckpt)
    print(f"[demo] checkpoint written and reloaded: {ckpt}")

    t0 = time.perf_counter()
    result = detect(model, builder, [z[0]], [images[0]], explain=True, max_new_tokens=16)[0]
    print(f"[demo] detect: p_fake={result.p_fake:.3f} answer={result.text!r} ({time.perf_counter() - t0:.2f}s)")

    side = cfg.image_size // lat.pixels_per_token
    t0 = time.perf_counter()
    gen = generate_latents(
        model, builder, ["a noise texture"], (side, side), steps=args.steps, guidance=Guidance(scale=4.0)
    )
    save_image(codec.decode(gen)[0], out / "generated.png")
    print(f"[demo] generated {out / 'generated.png'} in {time.perf_counter() - t0:.2f}s ({args.steps} steps)")
    return 0


def cmd_data_build(args: argparse.Namespace) -> int:
    """Build the built-in real/fake corpus from installed photos and CPU generators."""
    from .data.corpus.build import GENERATOR_SETS, CorpusConfig, build_corpus
    from .data.corpus.sources import discover_photos, photo_report

    cfg = CorpusConfig(
        out=args.out, size=args.size, crops_per_photo=args.crops_per_photo, seed=args.seed,
        generators=tuple(args.generators or GENERATOR_SETS[args.generator_set]), taef2=args.taef2,
        generator_checkpoint=args.generator_checkpoint,
        extra_photo_dirs=tuple(args.photos), autoencoder_steps=args.autoencoder_steps,
        jpeg_history=args.jpeg_history, only_split=args.only_split, photo_sources=args.photo_sources,
        allow_small=args.small_corpus,
    )
    print(photo_report(discover_photos(cfg.extra_photo_dirs, cfg.photo_sources), cfg.photo_sources), flush=True)
    t0 = time.perf_counter()
    records = build_corpus(cfg, progress=not args.quiet)
    print(f"[data] {len(records)} images in {args.out} ({time.perf_counter() - t0:.0f}s); see {args.out}/DATACARD.md")
    return 0


def cmd_data_audit(args: argparse.Namespace) -> int:
    """Fail (exit 1) when metadata alone separates real from fake."""
    from .data.audit import audit
    from .data.readers import read_source

    records = read_source(args.source, strict=True)
    if args.split:
        records = [r for r in records if r.split == args.split]
    result = audit(records, threshold=args.threshold)
    print(result.report())
    return 0 if result.passed else 1


def cmd_train(args: argparse.Namespace) -> int:
    """Hand over to the training package (imported only here: detect/serve never load it)."""
    from unigendet_train.main import main as train_main

    return train_main([args.stage, *args.rest])


def cmd_eval_detect(args: argparse.Namespace) -> int:
    """Score detectors side by side with the field's protocol; tables, plots and a report."""
    from .evaluation.run import DetectArgs, eval_detect

    eval_detect(DetectArgs(checkpoints=args.checkpoint, data=args.data, out=args.out, split=args.split,
                           calibrate_on=args.calibrate_on, degrade=args.degrade, explain=args.explain,
                           cache=args.cache, tsne=args.tsne, device=args.device))
    print(f"[eval] wrote {args.out}/metrics.json, table.md, report.html")
    return 0


def cmd_eval_generate(args: argparse.Namespace) -> int:
    """Generation quality against held-out real images."""
    from .evaluation.run import GenerateArgs, eval_generate

    eval_generate(GenerateArgs(checkpoint=args.checkpoint, data=args.data, out=args.out, split=args.split,
                               per_prompt=args.per_prompt, max_prompts=args.max_prompts, steps=args.steps,
                               shift=args.shift, guidance=args.guidance, seed=args.seed, device=args.device))
    print(f"[eval] wrote {args.out}/metrics.json and samples.png")
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    """Verdicts for image files and folders; non-zero exit only when nothing could be read."""
    from .apps.detect import exit_code, run_detect, write_rows
    from .apps.predictor import Predictor

    checkpoint = args.checkpoint or default_detector()
    predictor = Predictor(checkpoint, device=args.device, threshold=args.threshold, verdict=args.verdict,
                          base=args.base)
    rows = run_detect(predictor, args.paths, explain=args.explain, batch=args.batch, max_pixels=args.max_pixels,
                      progress=not args.quiet)
    write_rows(rows, args.format)
    return exit_code(rows)


def cmd_generate(args: argparse.Namespace) -> int:
    """Text-to-image with a UniGenDet checkpoint; the same seed gives the same image."""
    from .apps.predictor import Predictor
    from .images import save_image

    predictor = Predictor(args.checkpoint, device=args.device, base=args.base)
    images = predictor.generate(args.prompt, size=args.size, steps=args.steps, guidance=args.guidance,
                                shift=args.shift, seed=args.seed, n=args.n)
    out = Path(args.output)
    paths = [out] if args.n == 1 else [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(args.n)]
    for image, path in zip(images, paths, strict=True):
        save_image(image, path)
        print(path)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """The web page and JSON API on uvicorn; the model is loaded once."""
    from .apps.predictor import Predictor
    from .apps.server import Limits, serve

    predictor = Predictor(args.checkpoint, device=args.device, threshold=args.threshold, base=args.base,
                          max_batch=args.max_batch)
    serve(predictor, args.host, args.port, Limits(max_bytes=args.max_bytes, max_pixels=args.max_pixels))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .data.corpus.sources import MIN_PHOTOS, PHOTO_SOURCES

    small_help = (f"build the corpus even with fewer than {MIN_PHOTOS} source photos installed "
                  "(without the Debian photo packages: a fraction of the documented corpus)")
    parser = argparse.ArgumentParser(prog="unigendet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list model presets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("demo", help="the main job: the co-evolution loop on built-in data (~20 min on 2 cores)")
    p.add_argument("--out", default="runs")
    p.add_argument("--gduf-steps", type=int, default=300)
    p.add_argument("--diga-steps", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--small-corpus", action="store_true", help=small_help)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("smoke", help="exercise the library core on an untrained model (seconds)")
    p.add_argument("--out", default="runs/smoke")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_smoke)

    p = sub.add_parser("train", help="train a stage: gduf, diga, gendet, linear-probe, cnn",
                       add_help=False)
    p.add_argument("stage")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_train)

    data = sub.add_parser("data", help="build and audit data").add_subparsers(dest="data_command", required=True)
    from .data.corpus.build import GENERATOR_SETS, GENERATORS

    p = data.add_parser("build", help="build the built-in corpus (offline)")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--crops-per-photo", type=int, default=8)
    p.add_argument("--generators", nargs="+", choices=GENERATORS, help="fake processes (default: --generator-set)")
    p.add_argument("--generator-set", choices=sorted(GENERATOR_SETS), default="default",
                   help="default | rich (more upsamplers and autoencoder families) | heldout (used by neither)")
    p.add_argument("--jpeg-history", type=float, default=0.0,
                   help="share of pairs JPEG-compressed, real and fake at the same quality")
    p.add_argument("--only-split", choices=["train", "val", "test"], help="keep one split's photos")
    p.add_argument("--taef2", help="folder with taef2_encoder.pth and taef2_decoder.pth")
    p.add_argument("--generator-checkpoint", help="a UniGenDet checkpoint whose generator adds fakes")
    p.add_argument("--photos", nargs="*", default=[], help="extra folders of real photos")
    p.add_argument("--photo-sources", choices=PHOTO_SOURCES, default="all",
                   help="all installed photo packages, or only the photos pip installs (the same on every machine)")
    p.add_argument("--small-corpus", action="store_true", help=small_help)
    p.add_argument("--autoencoder-steps", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_data_build)

    p = data.add_parser("audit", help="metadata shortcut guard")
    p.add_argument("source", help="manifest CSV or any supported layout")
    p.add_argument("--split", default="", help="audit one split only")
    p.add_argument("--threshold", type=float, default=0.6)
    p.set_defaults(func=cmd_data_audit)

    from .data.imageio import DEFAULT_MAX_PIXELS

    p = sub.add_parser("detect", help="real/fake verdicts for image files and folders")
    p.add_argument("paths", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument("--checkpoint", help="a detector run or checkpoint directory (any kind; default: "
                   f"${DETECTOR_ENV}, else ./{DEFAULT_DETECTOR}, the detector `make demo` trains)")
    p.add_argument("--format", choices=["table", "jsonl", "csv"], default="table")
    p.add_argument("--explain", action="store_true", help="UniGenDet: write an explanation for each image")
    p.add_argument("--verdict", choices=["cls", "text"], default="cls",
                   help="UniGenDet: label from the cls head (default) or from the written answer")
    p.add_argument("--threshold", type=float, default=0.5, help="p_fake above this is called fake")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--base", help="released checkpoints: a BAGEL directory supplying keys the checkpoint lacks")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("generate", help="text-to-image with a UniGenDet checkpoint")
    p.add_argument("prompt")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("-o", "--output", default="generated.png")
    p.add_argument("--n", type=int, default=1, help="images (named OUT-0.png, OUT-1.png, ... when > 1)")
    p.add_argument("--size", type=int, default=None, help="pixels (default: the model's image size)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--guidance", type=float, default=4.0)
    p.add_argument("--shift", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--base", help="released checkpoints: a BAGEL directory supplying keys the checkpoint lacks")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("serve", help="web page + JSON API (FastAPI on uvicorn)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--max-bytes", type=int, default=20 * 1024 * 1024, help="largest upload")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    p.add_argument("--device", default="cpu")
    p.add_argument("--base", help="released checkpoints: a BAGEL directory supplying keys the checkpoint lacks")
    p.add_argument("--max-batch", type=int, default=16, help="concurrent images scored in one forward pass")
    p.set_defaults(func=cmd_serve)

    ev = sub.add_parser("eval", help="evaluate detectors or the generator").add_subparsers(
        dest="eval_command", required=True)
    p = ev.add_parser("detect", help="detectors side by side: per-generator tables, plots, report.html")
    p.add_argument("--checkpoint", action="append", required=True,
                   help="a training run or checkpoint directory (any detector kind); repeatable")
    p.add_argument("--data", required=True, help="manifest CSV, GenImage/UFD folders or FakeClue JSON")
    p.add_argument("--out", required=True)
    p.add_argument("--split", default=None, help="default: the test split when the source has one, else all")
    p.add_argument("--calibrate-on", default=None,
                   help="SOURCE[:split] whose accuracy-maximising threshold is reported beside 0.5 "
                        "(default: the source's val split)")
    p.add_argument("--degrade", nargs="*", default=None, help="'all' or GenImage specs such as jpeg65 blur3 down64")
    p.add_argument("--explain", action="store_true", help="UniGenDet: also write and score text verdicts")
    p.add_argument("--cache", default=None, help="feature cache folder for frozen-backbone detectors")
    p.add_argument("--tsne", type=int, default=400, help="images in the t-SNE plots (0: none)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_eval_detect)

    p = ev.add_parser("generate", help="Frechet/kernel distance to held-out reals, diversity, a sample grid")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="real images with captions (reals of the chosen split)")
    p.add_argument("--out", required=True)
    p.add_argument("--split", default=None)
    p.add_argument("--per-prompt", type=int, default=2, help="images per prompt (diversity needs >= 2)")
    p.add_argument("--max-prompts", type=int, default=64)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--shift", type=float, default=3.0)
    p.add_argument("--guidance", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_eval_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .checkpoint import CheckpointError
    from .data.corpus.sources import TooFewPhotos

    args = build_parser().parse_args(argv)
    expected = (CheckpointError, ValueError, FileNotFoundError, TooFewPhotos)
    if args.command not in ("detect", "generate", "serve"):
        expected = (TooFewPhotos,)
    try:  # a wrong checkpoint, option or installation is answered with one line, not a traceback
        return args.func(args)
    except expected as e:
        print(f"unigendet {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
