"""The triage report at 10,000 images: how long it takes to build, how much it weighs on disk, and
how soon headless Chromium shows its first screen and answers a filter, a sort and a search.

The folder is synthetic and seeded: N JPEGs of mixed sizes cut from the built-in photos (those
Debian and PyPI packages install), plus a few files that are not images. The verdicts are synthetic
too (a seeded p_fake per image, labels at the shipped threshold, some `uncertain` with a reason):
the report's cost does not depend on the detector, whose speed `bench/folder_scan.py` measures. The
page is built by `unigendet report` from the rows (every image decoded again for its pictures), once
without explanations and once with an explanation, an attribution and a 4x4 heat map on every row
(the heaviest page `detect --explain --report` writes); the second build reuses the pictures.

    python bench/triage_report.py --n 10000 --out runs/triage-bench
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import statistics
import time
from pathlib import Path

from unigendet.apps.rows import Row
from unigendet.apps.triage import ReportConfig, pictures_folder, report_from_results
from unigendet.corpus.sources import discover_photos
from unigendet.data.imageio import open_image
from unigendet.rundir import read_run_config
from unigendet.shipped import default_detector
from unigendet.weights import resolve_checkpoint

BROKEN = 20  # files named like images that are not


def make_folder(out: Path, n: int, seed: int = 0) -> Path:
    """N JPEGs cut from the built-in photos (kept when already made), and BROKEN unreadable files."""
    folder = out / f"images-{n}-{seed}"
    if folder.is_dir() and len(list(folder.rglob("*.jpg"))) == n + BROKEN:
        return folder
    photos = [open_image(p.path) for p in discover_photos()]
    if not photos:
        raise SystemExit("no built-in photos installed (see `make system`)")
    photos = [p.resize((round(p.width * s), round(p.height * s))) if (s := 1024 / max(p.size)) < 1 else p
              for p in photos]
    rng = random.Random(seed)
    for i in range(n):
        img = photos[i % len(photos)]
        w, h = rng.randint(min(200, img.width), img.width), rng.randint(min(200, img.height), img.height)
        x, y = rng.randint(0, img.width - w), rng.randint(0, img.height - h)
        buf = io.BytesIO()
        img.crop((x, y, x + w, y + h)).save(buf, "JPEG", quality=rng.randint(75, 95))
        where = folder / f"part{i % 10}"
        where.mkdir(parents=True, exist_ok=True)
        (where / f"{i:05d}.jpg").write_bytes(buf.getvalue())
    for i in range(BROKEN):
        (folder / f"broken{i:02d}.jpg").write_bytes(b"\xff\xd8\xff not a JPEG" * (i + 1))
    return folder


def synthetic_rows(folder: Path, threshold: float, explained: bool, seed: int = 0) -> list[Row]:
    """A seeded verdict per file: p_fake from a mixture (most images read as photos), labelled at the
    threshold, 3% uncertain; with `explained`, the text, attribution and heat map `--explain` adds."""
    rng, words = random.Random(seed), random.Random(seed + 1)  # the verdicts do not depend on `explained`
    rows = []
    for path in sorted(folder.rglob("*.jpg")):
        if path.name.startswith("broken"):
            rows.append(Row(str(path), error="not a readable image (unknown format)"))
            continue
        p = min(1.0, max(0.0, rng.betavariate(2, 5) if rng.random() < 0.8 else rng.betavariate(5, 2)))
        row = Row(str(path), "fake" if p > threshold else "real", p, spread=rng.uniform(0, 0.2))
        if rng.random() < 0.03:
            row.label, row.uncertain = "uncertain", "its crops disagree: some read as generated, some as a photo"
        if explained:
            contributions = {k: round(words.gauss(0, 1), 3) for k in (
                "fine pixel traces", "mid-level texture", "content and colour", "noise-residual statistics")}
            row.attribution = {"method": "linear", "logit": round(sum(contributions.values()), 3), "base": -0.4,
                               "exact": True, "contributions": contributions}
            row.explanation = ("Most of the evidence for generated is in fine pixel traces (+1.9); the strongest "
                               "evidence for a photo is in content and colour (-0.6).")
            row.evidence = f"The centre reads most clearly as generated (its tile at p_fake {p:.2f})."
            row.heatmap = [[round(words.random(), 4) for _ in range(4)] for _ in range(4)]
        rows.append(row)
    return rows


def folder_bytes(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.iterdir() if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def in_chromium(page_path: Path, trials: int) -> dict:
    """Medians over fresh pages: ms from navigation to the first screen (the first cards drawn and
    every thumbnail in the viewport decoded), and the page's own ms for a filter, a sort, a search."""
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    first_screen = """() => {
        const grid = document.querySelectorAll('#grid .card');
        if (!grid.length) return null;
        const seen = Array.from(document.querySelectorAll('#grid img')).filter(i => {
            const r = i.getBoundingClientRect(); return r.top < innerHeight && r.bottom > 0; });
        return seen.length && seen.every(i => i.complete && i.naturalWidth > 0) ? performance.now() : null; }"""
    timed = """sel => { const t = performance.now(); sel(); return performance.now() - t; }"""
    found: dict[str, list[float]] = {"first_screen_ms": [], "filter_ms": [], "sort_ms": [], "search_ms": [],
                                     "js_heap_mb": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(**({"executable_path": exe} if exe else {}),
                                    args=["--no-sandbox", "--enable-precise-memory-info"])
        for _ in range(trials):
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(page_path.resolve().as_uri(), wait_until="commit")
            deadline = time.time() + 120
            while (at := page.evaluate(first_screen)) is None:
                if time.time() > deadline:
                    raise RuntimeError("the first screen did not appear within 120 s")
                time.sleep(0.01)
            found["first_screen_ms"].append(at)
            found["filter_ms"].append(page.evaluate(timed.replace(
                "sel()", "document.querySelector('#kinds [data-kind=fake]').click()")))
            found["sort_ms"].append(page.evaluate(timed.replace(
                "sel()", "(s => { s.value = 'path'; s.dispatchEvent(new Event('change')); })"
                "(document.getElementById('sort'))")))
            found["search_ms"].append(page.evaluate(timed.replace(
                "sel()", "(s => { s.value = 'part3/'; s.dispatchEvent(new Event('input')); })"
                "(document.getElementById('search'))")))
            found["js_heap_mb"].append(page.evaluate("performance.memory.usedJSHeapSize") / 2**20)
            page.close()
        browser.close()
    return {k: round(statistics.median(v), 1) for k, v in found.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="runs/triage-bench")
    args = ap.parse_args(argv)
    out = Path(args.out)
    t0 = time.perf_counter()
    folder = make_folder(out, args.n)
    print(f"[bench] folder of {args.n} images + {BROKEN} broken in {time.perf_counter() - t0:.0f} s", flush=True)
    threshold = read_run_config(resolve_checkpoint(default_detector()))["threshold"]
    shutil.rmtree(pictures_folder(out / "plain.html"), ignore_errors=True)
    results = []
    for name, explained in (("plain", False), ("explained", True)):
        rows_file = out / f"{name}.jsonl"
        rows_file.write_text("".join(json.dumps(r.to_json()) + "\n"
                                     for r in synthetic_rows(folder, threshold, explained)))
        page = out / f"{name}.html"
        if name == "explained":  # the same images: the pictures are reused, as a rebuilt report does
            shutil.rmtree(pictures_folder(page), ignore_errors=True)
            shutil.copytree(pictures_folder(out / "plain.html"), pictures_folder(page))
        t = time.perf_counter()
        report_from_results(ReportConfig(results=str(rows_file), out=str(page), workers=args.workers, quiet=True))
        built = time.perf_counter() - t
        pictures, files = folder_bytes(pictures_folder(page))
        row = {"page": name, "images": args.n + BROKEN, "build_s": round(built, 1),
               "html_mb": round(page.stat().st_size / 2**20, 2), "pictures_mb": round(pictures / 2**20, 1),
               "picture_files": files, **in_chromium(page, args.trials)}
        results.append(row)
        print(json.dumps(row), flush=True)
    (out / "triage_report.json").write_text(json.dumps(results, indent=1) + "\n")
    print("| page | images | build s | HTML MB | pictures MB (files) | first screen ms | filter ms | sort ms | "
          "search ms | JS heap MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['page']} | {r['images']:,} | {r['build_s']} | {r['html_mb']} | {r['pictures_mb']} "
              f"({r['picture_files']:,}) | {r['first_screen_ms']} | {r['filter_ms']} | {r['sort_ms']} | "
              f"{r['search_ms']} | {r['js_heap_mb']} |")


if __name__ == "__main__":
    main()
