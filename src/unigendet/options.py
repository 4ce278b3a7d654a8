"""Command-line options from a config dataclass: one `--field-name` flag per field.

The field's type hint says how its values are read (bool: `--x/--no-x`; tuple[X, ...]: several
values after one flag; list[X]: a repeatable flag; X | None: X), the field gives the default
(none: the option is required), and the help text sits beside the field: `metadata["help"]`,
else the field's trailing `# comment`. `metadata["choices"]` limits the values. A config class
is thus the one place an option is declared; `config_from_args` turns the parsed options back
into the config.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import io
import textwrap
import tokenize
import typing
from collections.abc import Collection, Mapping
from typing import Any


class _StoreTuple(argparse.Action):
    """Several values stored as the tuple the config field declares."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, tuple(values))


def add_options(parser: argparse.ArgumentParser, config_cls: type, *, exclude: Collection[str] = (),
                positional: Collection[str] = (), flags: Mapping[str, str | tuple[str, ...]] | None = None,
                ) -> dict[str, argparse.Action]:
    """Add one option per init field of `config_cls` (except `exclude`); `positional` fields become
    positional arguments, `flags` gives a field's option strings in place of `--field-name`.
    Returns field name -> its argparse action (whose dest is the field name)."""
    hints, comments, flags = typing.get_type_hints(config_cls), field_comments(config_cls), flags or {}
    actions = {}
    for f in dataclasses.fields(config_cls):
        if not f.init or f.name in exclude:
            continue
        kwargs, required = _keywords(f, hints[f.name], comments.get(f.name))
        if f.name in positional:
            if not required and "nargs" not in kwargs:
                kwargs["nargs"] = "?"
            actions[f.name] = parser.add_argument(f.name, **kwargs)
            continue
        names = flags.get(f.name, "--" + f.name.replace("_", "-"))
        names = (names,) if isinstance(names, str) else tuple(names)
        if f.name in flags and "choices" not in kwargs and kwargs.get("action") is not argparse.BooleanOptionalAction:
            kwargs["metavar"] = max(names, key=len).lstrip("-").replace("-", "_").upper()  # --photos PHOTOS
        actions[f.name] = parser.add_argument(*names, dest=f.name, required=required, **kwargs)
    return actions


def config_from_args(config_cls: type, namespace: argparse.Namespace, **overrides: Any) -> Any:
    """The config from parsed options: a field with an option takes its value, `overrides` win,
    the other fields keep their defaults. Other attributes of the namespace are ignored."""
    given = vars(namespace)
    values = {f.name: given[f.name] for f in dataclasses.fields(config_cls) if f.init and f.name in given}
    return config_cls(**(values | overrides))


def _keywords(f: dataclasses.Field, hint: Any, comment: str | None) -> tuple[dict[str, Any], bool]:
    """argparse keywords for field `f` (bar its names), and whether it is required (has no default)."""
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    required = default is dataclasses.MISSING
    kwargs = _reading(f.name, hint, default) | {"default": None if required else default}
    if "choices" in f.metadata:
        kwargs["choices"] = f.metadata["choices"]
    help_text = f.metadata.get("help", comment)
    if help_text:
        kwargs["help"] = help_text.replace("%", "%%")  # argparse expands %(...)s in help
    return kwargs, required


def _reading(name: str, hint: Any, default: Any) -> dict[str, Any]:
    """argparse keywords that read a value of type `hint`."""
    args = typing.get_args(hint)
    if type(None) in args and len(args) == 2:  # X | None: read as X (None only as the default)
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is list and len(args) == 1:
        return {"action": "append", "type": args[0]}
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:  # an empty default may be restated as no values
        return {"action": _StoreTuple, "type": args[0], "nargs": "*" if default in ((), None) else "+"}
    if origin is tuple and args and len(set(args)) == 1:  # tuple[float, float]: exactly two values
        return {"action": _StoreTuple, "type": args[0], "nargs": len(args)}
    if origin is None and callable(hint):
        return {"type": hint}
    raise TypeError(f"option {name!r}: no command-line reading for type {hint}")


def field_comments(config_cls: type) -> dict[str, str]:
    """Field name -> the trailing `# comment` on its line in the class body (base classes' too)."""
    comments: dict[str, str] = {}
    for cls in reversed(config_cls.__mro__):
        if dataclasses.is_dataclass(cls):
            with contextlib.suppress(OSError, TypeError):  # no source: defined in a REPL, a frozen application
                comments |= _trailing_comments(textwrap.dedent(inspect.getsource(cls)))
    return comments


def _trailing_comments(class_source: str) -> dict[str, str]:
    comments, line, depth = {}, [], 0
    for tok in tokenize.generate_tokens(io.StringIO(class_source).readline):
        if tok.type == tokenize.INDENT:
            depth += 1
        elif tok.type == tokenize.DEDENT:
            depth -= 1
        elif tok.type == tokenize.NL and all(t.type == tokenize.COMMENT for t in line):
            line = []  # a comment on a line of its own, or a blank line
        elif tok.type == tokenize.NEWLINE:  # the end of a statement: `name: type [= default]  # comment`?
            if depth == 1 and len(line) > 2 and line[0].type == tokenize.NAME and line[1].string == ":" \
                    and line[-1].type == tokenize.COMMENT:
                comments[line[0].string] = line[-1].string.lstrip("#").strip()
            line = []
        elif tok.type != tokenize.NL:
            line.append(tok)
    return comments
