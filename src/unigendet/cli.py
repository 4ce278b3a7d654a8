"""Command line: `unigendet <command>` (its options: `unigendet <command> --help`).

Each command receives a config dataclass whose fields are its options (`options.add_options`:
flag, type, default and help come from the field). A command's options are added when it is
used, so that it imports only its own modules (`detect` and `serve` never import the training
package)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable, Sequence

from .options import add_options, config_from_args

Extra = Callable[[argparse.ArgumentParser, dict[str, argparse.Action]], None]


class _Command(argparse.ArgumentParser):
    """A command's parser whose options are added on first use: parsing, or showing its help."""

    def __init__(self, *args, options: Callable[[argparse.ArgumentParser], None] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._pending = options

    def build(self) -> _Command:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending(self)
        return self

    def parse_known_args(self, args=None, namespace=None):
        return super(_Command, self.build()).parse_known_args(args, namespace)

    def format_help(self) -> str:
        return super(_Command, self.build()).format_help()


def _options(target: str, extra: Sequence[Extra] = (), **kwargs) -> Callable[[argparse.ArgumentParser], None]:
    """The options of config class `target` ("module:Class", relative to this package), imported when
    the command is used; `extra` adds options beyond its fields. `kwargs` go to `add_options`."""
    def options(p: argparse.ArgumentParser) -> None:
        module, name = target.split(":")
        config_cls = getattr(importlib.import_module(module, __package__), name)
        p.description = config_cls.__doc__
        actions = add_options(p, config_cls, **kwargs)
        for add in extra:
            add(p, actions)
        p.set_defaults(config_cls=config_cls)

    return options


def _quiet(p: argparse.ArgumentParser, actions: dict[str, argparse.Action]) -> None:
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bars")


def _generator_set(p: argparse.ArgumentParser, actions: dict[str, argparse.Action]) -> None:
    """`--generator-set NAME` fills `generators` unless `--generators` names them."""
    from .corpus.build import GENERATOR_SETS

    p.add_argument("--generator-set", choices=sorted(GENERATOR_SETS), default="default",
                   help="default | rich (more upsamplers and autoencoder families) | heldout (used by neither)")
    actions["generators"].help = f"{actions['generators'].help} (default: --generator-set)"
    p.set_defaults(generators=None)


def _train_stages(p: argparse.ArgumentParser) -> None:
    from unigendet_train.catalogue import load_stages

    p.add_argument("stage", choices=list(load_stages()), help="a registered training stage")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="the stage's options: unigendet train STAGE --help")


def _config(args: argparse.Namespace, **overrides):
    return config_from_args(args.config_cls, args, **overrides)


def cmd_models(args: argparse.Namespace) -> int:
    """List the registered presets with parameter counts (built on the meta device)."""
    from .unified.presets import create_model, get_config, list_models

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
    from unigendet_train.demo import run_demo

    run_demo(_config(args))
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    """The library core end to end on an untrained tiny model: one step, save, reload, detect, generate."""
    from .apps.smoke import run_smoke

    run_smoke(_config(args))
    return 0


def cmd_data_build(args: argparse.Namespace) -> int:
    """Build the built-in real/fake corpus from installed photos and CPU generators."""
    from .corpus.build import GENERATOR_SETS, build_corpus
    from .corpus.sources import discover_photos, photo_report

    cfg = _config(args, generators=tuple(args.generators or GENERATOR_SETS[args.generator_set]))
    print(photo_report(discover_photos(cfg.extra_photo_dirs, cfg.photo_sources), cfg.photo_sources), flush=True)
    t0 = time.perf_counter()
    records = build_corpus(cfg, progress=args.progress)
    print(f"[data] {len(records)} images in {cfg.out} ({time.perf_counter() - t0:.0f}s); see {cfg.out}/DATACARD.md")
    return 0


def cmd_data_regenerate(args: argparse.Namespace) -> int:
    """Content-aligned fakes: every real image of a pool through a pretrained autoencoder."""
    from .corpus.regenerate import build_regenerated

    cfg = _config(args)
    t0 = time.perf_counter()
    records = build_regenerated(cfg, progress=args.progress)
    print(f"[data] {len(records)} regenerated images in {cfg.out} ({time.perf_counter() - t0:.0f}s); "
          f"see {cfg.out}/DATACARD.md")
    return 0


def cmd_data_audit(args: argparse.Namespace) -> int:
    """Fail (exit 1) when metadata alone separates real from fake."""
    from .data.audit import audit_source

    result = audit_source(_config(args))
    print(result.report())
    return 0 if result.passed else 1


def cmd_train(args: argparse.Namespace) -> int:
    """Hand over to the training package (imported only here: detect/serve never load it)."""
    from unigendet_train.main import main as train_main

    return train_main([args.stage, *args.rest])


def cmd_eval_detect(args: argparse.Namespace) -> int:
    """Score detectors side by side with the field's protocol; tables, plots and a report."""
    from .evaluation.run import eval_detect

    cfg = _config(args)
    eval_detect(cfg)
    print(f"[eval] wrote {cfg.out}/metrics.json, table.md, report.html")
    return 0


def cmd_eval_generate(args: argparse.Namespace) -> int:
    """Generation quality against held-out real images."""
    from .evaluation.run import eval_generate

    cfg = _config(args)
    eval_generate(cfg)
    print(f"[eval] wrote {cfg.out}/metrics.json, table.md, report.html and the sample grids")
    return 0


def cmd_eval_folds(args: argparse.Namespace) -> int:
    """A forensic recipe on held-out folds (by source or by family): fitted without each, scored at its threshold."""
    from unigendet_train.folds import run_folds

    cfg = _config(args)
    result = run_folds(cfg)
    for view, s in result.summary.items():
        print(f"[eval] {view}: photos of held-out {cfg.by}s called fake {s['photo_fpr_mean'] or 0:.1%} on average "
              f"(worst {s['photo_fpr_worst'] or 0:.1%}), fake AUC {s['fake_auc_mean'] or float('nan'):.3f}")
    print(f"[eval] wrote {cfg.out}/folds.json, table.md, scores.csv")
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    """Verdicts for image files and folders; non-zero exit only when nothing could be read."""
    from .apps.detect import detect_paths

    return detect_paths(_config(args))


def cmd_scan(args: argparse.Namespace) -> int:
    """Verdicts for many images on a Ray cluster, written as shards; Ray is imported only here."""
    from .apps.scan import scan_paths

    return scan_paths(_config(args))


def cmd_report(args: argparse.Namespace) -> int:
    """The triage page for saved verdicts, without scoring again."""
    from .apps.triage import report_from_results

    report_from_results(_config(args))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Text-to-image with a UniGenDet checkpoint; the same seed gives the same image."""
    from .apps.generate import generate_images

    for path in generate_images(_config(args)):
        print(path)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """The web page and JSON API on uvicorn; the model is loaded once."""
    from .apps.server import run_server

    run_server(_config(args))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unigendet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Command)

    def command(group, name: str, func: Callable[[argparse.Namespace], int], help: str, **kwargs) -> _Command:
        p = group.add_parser(name, help=help, **kwargs)
        p.set_defaults(func=func)
        return p

    command(sub, "models", cmd_models, "list model presets").add_argument("--json", action="store_true")
    command(sub, "demo", cmd_demo, "the main job: the co-evolution loop on built-in data (how long: demo --help)",
            options=_options("unigendet_train.demo:DemoConfig", extra=[_quiet]))
    command(sub, "smoke", cmd_smoke, "exercise the library core on an untrained model (seconds)",
            options=_options(".apps.smoke:SmokeConfig"))
    command(sub, "train", cmd_train, "train a stage (unigendet train --help lists them)", options=_train_stages)

    data = sub.add_parser("data", help="build and audit data").add_subparsers(dest="data_command", required=True)
    command(data, "build", cmd_data_build, "build the built-in corpus (offline)", options=_options(
        ".corpus.build:CorpusConfig", extra=[_generator_set, _quiet],
        flags={"extra_photo_dirs": "--photos", "allow_small": "--small-corpus"}))
    command(data, "regenerate", cmd_data_regenerate, "content-aligned fakes: a pool's reals through an autoencoder",
            options=_options(".corpus.regenerate:RegenerateConfig", extra=[_quiet], positional=["data"]))
    command(data, "audit", cmd_data_audit, "metadata shortcut guard",
            options=_options(".data.audit:AuditConfig", positional=["source"]))

    command(sub, "detect", cmd_detect, "real/fake verdicts for image files and folders",
            options=_options(".apps.detect:DetectConfig", positional=["paths"]))
    command(sub, "scan", cmd_scan, "detect at scale: many images on a Ray cluster, sharded output",
            options=_options(".apps.scan:ScanConfig", positional=["paths"]))
    command(sub, "report", cmd_report, "a triage page (HTML) for saved verdicts: detect's JSON lines or a scan",
            options=_options(".apps.triage:ReportConfig", positional=["results"]))
    command(sub, "generate", cmd_generate, "text-to-image with a UniGenDet checkpoint",
            options=_options(".apps.generate:GenerateConfig", positional=["prompt"],
                             flags={"output": ("-o", "--output")}))
    command(sub, "serve", cmd_serve, "web page + JSON API (FastAPI on uvicorn)",
            options=_options(".apps.server:ServeConfig"))

    ev = sub.add_parser("eval", help="evaluate detectors or the generator").add_subparsers(
        dest="eval_command", required=True)
    command(ev, "detect", cmd_eval_detect, "detectors side by side: per-generator tables, plots, report.html",
            options=_options(".evaluation.run:EvalDetectConfig", flags={"checkpoints": "--checkpoint"}))
    command(ev, "folds", cmd_eval_folds, "a forensic recipe on leave-one-source-out (or -family-out) folds",
            options=_options("unigendet_train.folds:FoldsConfig"))
    command(ev, "generate", cmd_eval_generate, "distances, prompt adherence: held-out reals, noise, codec",
            options=_options(".evaluation.run:EvalGenerateConfig", flags={"checkpoints": "--checkpoint"}))
    return parser


def main(argv: list[str] | None = None) -> int:
    from .corpus.sources import TooFewPhotos
    from .weights import CheckpointError

    args = build_parser().parse_args(argv)
    expected = (CheckpointError, ValueError, FileNotFoundError, TooFewPhotos)
    if args.command not in ("detect", "scan", "report", "generate", "serve"):
        expected = (TooFewPhotos,)
    try:  # a wrong checkpoint, option or installation is answered with one line, not a traceback
        return args.func(args)
    except expected as e:
        print(f"unigendet {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
