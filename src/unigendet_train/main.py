"""`unigendet train <stage> [--field value ...]`: run a training stage.

Each flag is a field of the stage's frozen config dataclass (see `stages.py`);
`--resume` continues the run in `--out` from its latest checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing

from .stages import load_stages


def _parser_for(name: str, config_cls: type) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"unigendet train {name}", description=config_cls.__doc__)
    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        if f.name == "stage":
            continue
        hint, flag = hints[f.name], "--" + f.name.replace("_", "-")
        if hint is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        elif typing.get_origin(hint) is tuple:
            p.add_argument(flag, type=typing.get_args(hint)[0], nargs="+", default=f.default)
        else:
            kinds = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
            p.add_argument(flag, type=kinds[0], default=f.default)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stages = load_stages()
    if not argv or argv[0] not in stages:
        print(f"usage: unigendet train {{{','.join(stages)}}} [--field value ...]", file=sys.stderr)
        return 2
    name = argv.pop(0)
    config_cls, run = stages[name]
    args = vars(_parser_for(name, config_cls).parse_args(argv))
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
    if "stage" in {f.name for f in dataclasses.fields(config_cls)}:
        args["stage"] = name
    result = run(config_cls(**args))
    print(json.dumps(result, indent=2, default=str))
    return 0
