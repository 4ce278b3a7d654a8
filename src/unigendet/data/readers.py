"""Readers for the field's dataset layouts. Each returns a list of `Record`.

- manifest CSV: `path,label,generator[,split,caption,explanation,source,group,original_format,
  original_width,original_height]`, paths relative to the CSV;
- GenImage: `<generator>/{train,val}/{ai,nature}/<files>`;
- UniversalFakeDetect / ForenSynths: `<generator>/[<class>/]{0_real,1_fake}/<files>`;
- FakeClue JSON: a list of `{image, label, conversations: [{from: human, value}, {from: gpt, value}]}`;
- captions JSONL: one `{image, caption}` per line (text-to-image data).

Malformed entries (missing file, bad label, unreadable image when `verify=True`) are
never dropped silently: with `strict=True` the first one raises `DataError` naming its
path; otherwise each is reported through `issues` (a list the caller inspects) and skipped.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

from .imageio import ImageError, is_image_file, open_image
from .records import DataError, Record, parse_label
from .writing import check_complete


class Issues(list):
    """Problems found while reading: (path, reason) pairs, in the order met."""

    def add(self, where: str, reason: str, strict: bool) -> None:
        if strict:
            raise DataError(where, reason)
        self.append((where, reason))


def _check_file(path: Path, where: str, verify: bool, issues: Issues, strict: bool) -> bool:
    if not path.is_file():
        issues.add(where, f"missing file {path}", strict)
        return False
    if verify:
        try:
            open_image(path)
        except ImageError as e:
            issues.add(where, str(e), strict)
            return False
    return True


def read_manifest(csv_path: str | Path, *, strict: bool = False, verify: bool = False,
                  issues: Issues | None = None) -> list[Record]:
    csv_path = Path(csv_path)
    issues = Issues() if issues is None else issues
    root = csv_path.parent
    check_complete(root)
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"path", "label", "generator"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(csv_path, f"missing columns {sorted(missing)}")
        records = []
        for line, row in enumerate(reader, start=2):
            where = f"{csv_path}:{line}"
            try:
                label = parse_label(row["label"], where)
            except DataError as e:
                issues.add(where, e.reason, strict)
                continue
            path = root / row["path"]
            if not _check_file(path, where, verify, issues, strict):
                continue
            records.append(Record(
                path=path, label=label, generator=row["generator"].strip(), split=(row.get("split") or "").strip(),
                caption=row.get("caption") or "", explanation=row.get("explanation") or "",
                source=row.get("source") or "", group=(row.get("group") or "").strip(),
                original_format=(row.get("original_format") or "").strip().lower(),
                original_width=_int(row.get("original_width")), original_height=_int(row.get("original_height")),
            ))
    return records


def _int(value: str | None) -> int:
    try:
        return int(float(value)) if value else 0
    except ValueError:
        return 0


def _walk_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))


def read_genimage(root: str | Path, *, strict: bool = False, verify: bool = False,
                  issues: Issues | None = None) -> list[Record]:
    root = Path(root)
    issues = Issues() if issues is None else issues
    records = []
    for gen_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for split in ("train", "val"):
            for cls in ("ai", "nature"):
                folder = gen_dir / split / cls
                if not folder.is_dir():
                    continue
                for path in _walk_images(folder):
                    if _check_file(path, str(path), verify, issues, strict):
                        records.append(Record(path, parse_label(cls), gen_dir.name, split))
    if not records:
        raise DataError(root, "no images in a GenImage layout (<generator>/{train,val}/{ai,nature}/)")
    return records


def read_ufd(root: str | Path, *, split: str = "", strict: bool = False, verify: bool = False,
             issues: Issues | None = None) -> list[Record]:
    """ForenSynths / UniversalFakeDetect: `0_real` and `1_fake` folders under each generator
    (directly, or under per-class subfolders such as `progan/car/0_real`)."""
    root = Path(root)
    issues = Issues() if issues is None else issues
    records = []
    for label_dir in sorted(root.rglob("*")):
        if not label_dir.is_dir() or label_dir.name not in ("0_real", "1_fake"):
            continue
        generator = label_dir.relative_to(root).parts[0]
        for path in _walk_images(label_dir):
            if _check_file(path, str(path), verify, issues, strict):
                records.append(Record(path, parse_label(label_dir.name), generator, split))
    if not records:
        raise DataError(root, "no 0_real / 1_fake folders found")
    return records


def read_fakeclue(json_path: str | Path, *, image_root: str | Path | None = None, split: str = "",
                  strict: bool = False, verify: bool = False, issues: Issues | None = None) -> list[Record]:
    """FakeClue: the question is the human turn, the explanation the model turn."""
    json_path = Path(json_path)
    issues = Issues() if issues is None else issues
    root = Path(image_root) if image_root else json_path.parent
    entries = json.loads(json_path.read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise DataError(json_path, "expected a JSON list of entries")
    records = []
    for i, e in enumerate(entries):
        where = f"{json_path}[{i}]"
        try:
            if not isinstance(e, dict) or "image" not in e or "label" not in e:
                raise DataError(where, "needs 'image' and 'label'")
            label = parse_label(e["label"], where)
            turns = e.get("conversations") or []
            answer = next((t.get("value", "") for t in turns if t.get("from") in ("gpt", "assistant")), "")
        except (DataError, AttributeError, TypeError) as err:
            issues.add(where, str(err).split(": ", 1)[-1], strict)
            continue
        path = root / e["image"]
        if _check_file(path, where, verify, issues, strict):
            records.append(Record(path, label, str(e.get("generator", e.get("cate", ""))), split,
                                  explanation=answer))
    return records


def read_captions(jsonl_path: str | Path, *, strict: bool = False, verify: bool = False,
                  issues: Issues | None = None) -> list[Record]:
    """Text-to-image pairs; every image is a real photo (label real, generator 'real')."""
    jsonl_path = Path(jsonl_path)
    issues = Issues() if issues is None else issues
    records = []
    for line_no, line in enumerate(jsonl_path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{jsonl_path}:{line_no}"
        try:
            e = json.loads(line)
            image, caption = e["image"], e["caption"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            issues.add(where, f"not an {{image, caption}} object ({err})", strict)
            continue
        path = jsonl_path.parent / image
        if _check_file(path, where, verify, issues, strict):
            records.append(Record(path, parse_label("real"), "real", str(e.get("split", "")), caption=str(caption)))
    return records


def detect_layout(source: str | Path) -> str:
    p = Path(source)
    if p.is_file():
        suffix = p.suffix.lower()
        if suffix == ".csv":
            return "manifest"
        if suffix == ".jsonl":
            return "captions"
        if suffix == ".json":
            return "fakeclue"
        raise DataError(p, f"unknown data file type {suffix!r} (expected .csv, .json or .jsonl)")
    if not p.is_dir():
        raise DataError(p, "no such file or directory")
    check_complete(p)
    if (p / "manifest.csv").is_file():
        return "manifest"
    if any(d.name in ("0_real", "1_fake") for d in p.rglob("*") if d.is_dir()):
        return "ufd"
    if any((d / s).is_dir() for d in p.iterdir() if d.is_dir() for s in ("train", "val")):
        return "genimage"
    raise DataError(p, "no known dataset layout (manifest.csv, GenImage or 0_real/1_fake folders)")


READERS: dict[str, Callable[..., list[Record]]] = {
    "manifest": read_manifest,
    "genimage": read_genimage,
    "ufd": read_ufd,
    "fakeclue": read_fakeclue,
    "captions": read_captions,
}


def read_source(source: str | Path, layout: str | None = None, **kw) -> list[Record]:
    """Read any supported layout; a directory holding `manifest.csv` reads that file."""
    layout = layout or detect_layout(source)
    p = Path(source)
    if layout == "manifest" and p.is_dir():
        p = p / "manifest.csv"
    return READERS[layout](p, **kw)
