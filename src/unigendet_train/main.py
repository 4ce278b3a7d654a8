"""`unigendet train <stage> [--field value ...]`: run a training stage.

Each flag is a field of the stage's frozen config dataclass (see `stages.py`; the help text is
the field's comment); `--resume` continues the run in `--out` from its latest checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys

from unigendet.options import add_options, config_from_args

from .catalogue import load_stages


def _parser_for(name: str, config_cls: type) -> argparse.ArgumentParser:
    """The options of stage `name`: every field of its config."""
    p = argparse.ArgumentParser(prog=f"unigendet train {name}", description=config_cls.__doc__)
    add_options(p, config_cls)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stages = load_stages()
    if not argv or argv[0] not in stages:
        print(f"usage: unigendet train {{{','.join(stages)}}} [--field value ...]", file=sys.stderr)
        return 2
    name = argv.pop(0)
    config_cls, run = stages[name]
    args = _parser_for(name, config_cls).parse_args(argv)
    result = run(config_from_args(config_cls, args))
    print(json.dumps(result.to_dict(), indent=2, default=str))
    return 0
