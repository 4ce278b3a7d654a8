import argparse
import json
from dataclasses import dataclass, field, fields

import pytest

from unigendet.cli import build_parser, main
from unigendet.options import add_options, config_from_args, field_comments


def test_models_lists_every_preset(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["tiny", "tiny-forensic", "small", "base", "bagel-7b-mot"]
    sizes = [r["parameters"] for r in rows]
    assert sizes == sorted(sizes)


def test_smoke_runs_end_to_end(tmp_path, capsys):
    assert main(["smoke", "--out", str(tmp_path), "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "p_fake=" in out
    assert (tmp_path / "generated.png").stat().st_size > 0
    assert (tmp_path / "checkpoint" / "config.json").is_file()


# --- every command's options are the fields of the config it receives -----------------------------

CONFIGURED = {"demo", "smoke", "data build", "data regenerate", "data audit", "detect", "scan", "report", "generate",
              "serve",
              "eval detect", "eval folds", "eval generate"}


def commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(command words, its parser) for every command, its options added."""
    parser.format_help()  # a command's options are added on first use
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*prefix, name))
    if prefix:
        yield " ".join(prefix), parser


def test_every_field_of_a_command_config_is_one_of_its_options():
    configured = {}
    for name, parser in commands(build_parser()):
        config_cls = parser.get_default("config_cls")
        if config_cls is not None:
            configured[name] = config_cls
            dests = {a.dest for a in parser._actions}
            assert {f.name for f in fields(config_cls)} <= dests, name
            assert parser.description == config_cls.__doc__
    assert set(configured) == CONFIGURED


def test_every_training_stage_is_a_train_command():
    from unigendet_train.catalogue import load_stages
    from unigendet_train.main import _parser_for
    from unigendet_train.stages import StageConfig

    for name, (config_cls, _) in load_stages().items():
        assert issubclass(config_cls, StageConfig), name  # data, out and seed declared once
        args = build_parser().parse_args(["train", name, "--seed", "1", "--resume"])
        assert (args.stage, args.rest) == (name, ["--seed", "1", "--resume"])
        parser = _parser_for(name, config_cls)
        assert {f.name for f in fields(config_cls)} <= {a.dest for a in parser._actions}, name
        assert config_from_args(config_cls, parser.parse_args([])) == config_cls(), name


def parse(*argv: str):
    args = build_parser().parse_args(argv)
    return config_from_args(args.config_cls, args)


def test_the_flags_of_today_keep_their_meaning():
    cfg = parse("detect", "a.png", "dir", "--format", "csv", "--explain", "--verdict", "text", "--quiet")
    assert (cfg.paths, cfg.format, cfg.explain, cfg.verdict, cfg.quiet, cfg.checkpoint) == (
        ("a.png", "dir"), "csv", True, "text", True, None)
    cfg = parse("generate", "a cup", "--checkpoint", "c", "-o", "x.png", "--n", "2", "--size", "32")
    assert (cfg.prompt, cfg.output, cfg.n, cfg.size, cfg.steps) == ("a cup", "x.png", 2, 32, 50)
    cfg = parse("eval", "detect", "--checkpoint", "a", "--checkpoint", "b", "--data", "d", "--out", "o",
                "--degrade", "jpeg65", "blur3")
    assert (cfg.checkpoints, cfg.degrade, cfg.split, cfg.tsne) == (["a", "b"], ("jpeg65", "blur3"), None, 400)
    assert parse("eval", "detect", "--checkpoint", "a", "--data", "d", "--out", "o", "--degrade").degrade == ()
    cfg = parse("eval", "generate", "--checkpoint", "c", "--data", "d", "--out", "o", "--backbone", "b")
    assert (cfg.backbone, cfg.per_prompt) == ("b", 2)
    cfg = parse("serve", "--checkpoint", "c", "--port", "9", "--max-batch", "1")
    assert (cfg.port, cfg.max_batch, cfg.max_bytes, cfg.host) == (9, 1, 20 * 1024 * 1024, "127.0.0.1")
    cfg = parse("demo", "--out", "r", "--gduf-steps", "3", "--quiet", "--small-corpus")
    assert (cfg.out, cfg.gduf_steps, cfg.progress, cfg.small_corpus) == ("r", 3, False, True)
    assert parse("data", "audit", "m.csv", "--split", "test").split == "test"
    assert parse("smoke").out == "runs/smoke"
    for argv in (["detect"], ["generate", "p"], ["eval", "detect", "--data", "d", "--out", "o"],
                 ["detect", "x", "--format", "xml"]):
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(argv)
        assert e.value.code == 2


def test_data_build_maps_its_flags_to_the_corpus_config(monkeypatch, capsys):
    from unigendet.corpus import build, sources

    built = []
    monkeypatch.setattr(build, "build_corpus", lambda cfg, progress: built.append((cfg, progress)) or [])
    monkeypatch.setattr(sources, "discover_photos", lambda *a: [])
    assert main(["data", "build", "--out", "o", "--generator-set", "rich", "--photos", "p1", "p2", "--small-corpus",
                 "--quiet"]) == 0
    assert main(["data", "build", "--out", "o", "--generators", "conv-ae", "--generator-set", "rich"]) == 0
    (rich, quiet), (named, progress) = built
    assert rich.generators == build.RICH_GENERATORS and named.generators == ("conv-ae",)
    assert (rich.extra_photo_dirs, rich.allow_small, quiet, progress) == (("p1", "p2"), True, False, True)


def test_help_says_how_long_the_demo_takes():
    from unigendet_train.demo import DemoConfig

    (demo,) = (p for name, p in commands(build_parser()) if name == "demo")
    assert "about 15 minutes on 2 CPU cores" in DemoConfig.__doc__
    assert DemoConfig.__doc__ in " ".join(demo.format_help().split())


# --- options.py --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """A config for the tests."""

    name: str  # the name
    count: int = 3  # how many
    ratio: float = 0.5
    flag: bool = False  # a switch
    on: bool = True
    sizes: tuple[int, ...] = (1, 2)  # several sizes
    pair: tuple[float, float] = (0.9, 0.95)
    extra: tuple[str, ...] = ()
    limit: int | None = None  # at most 50% of them
    tags: list[str] = field(default_factory=list)
    # a comment on a line of its own is no field's help
    mode: str = field(default="a", metadata={"choices": ("a", "b"), "help": "the mode"})  # not this


@dataclass(frozen=True)
class Derived(Sample):
    depth: int = 1  # added by the subclass


def sample_parser(**kwargs) -> tuple[argparse.ArgumentParser, dict[str, argparse.Action]]:
    p = argparse.ArgumentParser(exit_on_error=False)
    return p, add_options(p, Sample, **kwargs)


def test_options_read_each_type_back_into_the_config():
    p, _ = sample_parser()
    assert config_from_args(Sample, p.parse_args(["--name", "x"])) == Sample(name="x")
    cfg = config_from_args(Sample, p.parse_args([
        "--name", "x", "--count", "5", "--ratio", "0.25", "--flag", "--no-on", "--sizes", "4", "5", "6", "--pair",
        "1", "2", "--extra", "--limit", "7", "--tags", "a", "--tags", "b", "--mode", "b"]))
    assert cfg == Sample(name="x", count=5, ratio=0.25, flag=True, on=False, sizes=(4, 5, 6), pair=(1.0, 2.0),
                         extra=(), limit=7, tags=["a", "b"], mode="b")
    for bad in (["--count", "2"], ["--name", "x", "--mode", "c"], ["--name", "x", "--pair", "1"],
                ["--name", "x", "--sizes"], ["--name", "x", "--count", "many"]):
        with pytest.raises((SystemExit, argparse.ArgumentError)):
            p.parse_args(bad)


def test_options_positional_renamed_and_excluded_fields():
    p, actions = sample_parser(positional=["name"], flags={"count": ("-c", "--number")}, exclude=["tags"])
    assert "tags" not in actions and actions["count"].option_strings == ["-c", "--number"]
    args = p.parse_args(["x", "-c", "2"])
    assert config_from_args(Sample, args, ratio=1.0) == Sample(name="x", count=2, ratio=1.0)
    args.unrelated = "ignored"
    assert config_from_args(Sample, args).count == 2


def test_option_help_comes_from_metadata_else_the_field_comment():
    assert field_comments(Sample) == {"name": "the name", "count": "how many", "flag": "a switch",
                                      "sizes": "several sizes", "limit": "at most 50% of them", "mode": "not this"}
    derived = field_comments(Derived)
    assert derived["depth"] == "added by the subclass" and derived["count"] == "how many"
    p, actions = sample_parser()
    assert (actions["name"].help, actions["mode"].help, actions["ratio"].help) == ("the name", "the mode", None)
    assert "at most 50% of them" in p.format_help()


def test_an_unreadable_type_is_refused():
    @dataclass
    class Odd:
        table: dict[str, int] = field(default_factory=dict)

    with pytest.raises(TypeError, match="table"):
        add_options(argparse.ArgumentParser(), Odd)
