"""The screenshots of the triage report in docs/usage.md, made from a real run.

The folder: crops of the built-in photos as found (real), crops of other built-in photos enlarged
from a smaller copy by Real-ESRGAN or bicubic interpolation (generated), and one file that is not
an image. `unigendet detect --explain --report` scores it with the shipped detector; headless
Chromium then shows the page and the detail view of its most suspicious image.

    python bench/triage_screenshot.py --out runs/triage-example --images docs/images
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import time
from pathlib import Path

from unigendet.cli import main as cli
from unigendet.corpus.fakes import Interpolation, RealESRGAN
from unigendet.corpus.sources import discover_photos
from unigendet.data.imageio import open_image


def make_folder(folder: Path, n_real: int, n_fake: int, seed: int = 0) -> None:
    photos = [p.path for p in discover_photos()]
    rng = random.Random(seed)
    rng.shuffle(photos)
    upscalers = [RealESRGAN("realesrgan-x4plus"), Interpolation("bicubic-x2")]
    for kind, n, offset in (("photos", n_real, 0), ("generated", n_fake, n_real)):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = open_image(photos[(offset + i) % len(photos)])
            w, h = min(img.width, rng.randint(380, 640)), min(img.height, rng.randint(300, 480))
            x, y = rng.randint(0, img.width - w), rng.randint(0, img.height - h)
            crop = img.crop((x, y, x + w, y + h))
            if kind == "generated":
                crop = upscalers[i % len(upscalers)](crop)
            crop.save(folder / kind / f"{kind[:5]}{i:02d}.png")
    (folder / "notes.jpg").write_text("a text file named like an image\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/triage-example")
    ap.add_argument("--images", default="docs/images")
    ap.add_argument("--real", type=int, default=14)
    ap.add_argument("--fake", type=int, default=10)
    args = ap.parse_args(argv)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    make_folder(out / "folder", args.real, args.fake)
    page = out / "report.html"
    with open(out / "rows.jsonl", "w") as f, contextlib.redirect_stdout(f):
        assert cli(["detect", str(out / "folder"), "--explain", "--quiet", "--format", "jsonl",
                    "--report", str(page)]) == 0

    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(**({"executable_path": exe} if exe else {}), args=["--no-sandbox"])
        view = browser.new_page(viewport={"width": 1200, "height": 820})
        view.goto(page.resolve().as_uri())
        view.wait_for_function("Array.from(document.querySelectorAll('#grid img')).every(i => i.complete)")
        view.screenshot(path=str(Path(args.images) / "triage-report.jpg"), type="jpeg", quality=85)
        view.locator("#grid .card").first.click()
        view.wait_for_function("document.getElementById('d-image').complete")
        time.sleep(0.3)
        view.screenshot(path=str(Path(args.images) / "triage-detail.jpg"), type="jpeg", quality=85)
        browser.close()


if __name__ == "__main__":
    main()
