"""The layer contracts of `.importlinter` also hold for modules loaded by name at run time.

import-linter reads import statements only; `importlib.import_module("unigendet.backbones")` in a
low layer would be a cycle it cannot see. Every such call in the library must name a constant
module in its own layer or below; a computed name is allowed only in the top layer (the CLI).
"""

import ast
import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def layers() -> list[set[str]]:
    """The layers contract, top first: each a set of module names."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter")
    rows = cfg["importlinter:contract:layers"]["layers"].strip().splitlines()
    return [{m.strip() for m in row.split("|")} for row in rows]


def layer_of(module: str, order: list[set[str]]) -> int | None:
    for i, row in enumerate(order):
        if any(module == m or module.startswith(m + ".") for m in row):
            return i
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(name: str, package: str | None, importer: str, is_package: bool) -> str:
    if not name.startswith("."):
        return name
    base = (package or (importer if is_package else importer.rpartition(".")[0])).split(".")
    level = len(name) - len(name.lstrip("."))
    return ".".join(base[: len(base) - level + 1] + ([name.lstrip(".")] if name.lstrip(".") else []))


def dynamic_imports(source: str) -> list[tuple[int, str | None, str | None]]:
    """(line, target name or None when computed, package argument) of every run-time import."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
        if name not in ("import_module", "__import__") or not node.args:
            continue
        arg = node.args[0]
        target = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
        pkg = node.args[1] if len(node.args) > 1 else None
        package = pkg.value if isinstance(pkg, ast.Constant) else None
        found.append((node.lineno, target, package))
    return found


def violations(importer: str, source: str, is_package: bool = False) -> list[str]:
    order = layers()
    mine = layer_of(importer, order)
    out = []
    for line, target, package in dynamic_imports(source):
        if target is None:
            if mine != 0:
                out.append(f"{importer}:{line}: a module loaded by a computed name; the contracts cannot check it")
            continue
        theirs = layer_of(resolve(target, package, importer, is_package), order)
        if mine is not None and theirs is not None and theirs < mine:
            out.append(f"{importer}:{line}: loads {target} from a higher layer")
    return out


def test_no_module_loaded_by_name_breaks_the_layers():
    problems = []
    for path in sorted((SRC / "unigendet").rglob("*.py")):
        problems += violations(module_name(path), path.read_text(), path.name == "__init__.py")
    assert not problems, problems


def test_the_check_catches_a_lower_layer_loading_a_higher_one():
    hidden = 'import importlib\n\ndef f():\n    importlib.import_module("unigendet.backbones")\n'
    assert violations("unigendet.unified.encoders", hidden) == [
        "unigendet.unified.encoders:4: loads unigendet.backbones from a higher layer"]
    relative = 'from importlib import import_module\nimport_module("..apps", __package__)\n'
    assert violations("unigendet.detectors.base", relative.replace("__package__", '"unigendet.detectors"'))
    computed = 'import importlib\nimportlib.import_module(f"unigendet.{x}")\n'
    assert violations("unigendet.data.readers", computed) and not violations("unigendet.cli", computed)
    assert not violations("unigendet.backbones.base", 'import importlib\nimportlib.import_module("unigendet.images")\n')
