"""Speed and memory of the shipped in-the-wild detector (its networks run by eager PyTorch and by
ONNX Runtime) against the NPR network, side by side.

Prints, measured in one run on this machine: the fp32 matmul peak; for each detector and image
size (256 and 1024 px), images/s of `predict_images`, the forward FLOPs per image (counted by
torch's FlopCounterMode on the torch path; the onnx path computes the same graph) and the fraction
of the matmul peak that reaches; and, each in a fresh process, the peak resident memory of scoring
one 4000x3000 photo. `--run DIR` adds a trained forensic run (on ONNX Runtime) to the same table,
e.g. a candidate for shipping. With `--agree DATA`, both runtimes also score DATA's val split and the largest
difference in p_fake is printed.

    python bench/detector_speed.py [--npr runs/detector] [--run runs/candidate] [--reps 3] [--images 16] \
        [--agree ../shared/data/wild-train]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode


def matmul_peak(n: int = 2048, reps: int = 7) -> float:
    """The best fp32 matmul rate of `reps` tries (a peak: the best this machine reached in the run)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = min(_time(lambda: a @ b) for _ in range(reps))
    return 2 * n**3 / t / 1e9


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def photo(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.RandomState(seed)
    base = rng.randint(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)
    noise = rng.normal(0, 3, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(img) + noise, 0, 255).astype(np.uint8))


DETECTORS = ("shipped-torch", "shipped-onnx", "npr")


def load(which: str, npr: str | None, runtime: str = "onnx"):
    from unigendet.detectors import NPRDetector, load_detector
    from unigendet.models.npr import NPRNet
    from unigendet.shipped import shipped_path

    if which.startswith("run:"):  # a candidate run: timed on ONNX Runtime, its FLOPs counted on torch
        return load_detector(which[len("run:"):], runtime=runtime)
    if which.startswith("shipped"):
        return load_detector(shipped_path(), runtime=which.split("-")[1])
    if npr:
        return load_detector(npr)
    return NPRDetector("npr (untrained, default size)", NPRNet())


def flops(detector, images) -> float:
    with FlopCounterMode(display=False) as counter:
        detector.predict_images(images)
    return counter.get_total_flops() / len(images)


def peak_memory(which: str, npr: str | None, path: str) -> tuple[float, float]:
    """(MiB of peak RSS after loading the detector, after also scoring the photo at `path`), in a fresh process."""
    # VmHWM, not ru_maxrss: Linux carries the parent's ru_maxrss across fork and exec
    hwm = "print(next(int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM')))"
    code = (f"import sys; sys.path[:0] = {sys.path[:1]!r}; from bench.detector_speed import load; "
            "from PIL import Image; from unigendet.data.imageio import open_image; "
            f"d = load({which!r}, {npr!r}); d.predict_images([Image.new('RGB', (64, 64))]); "
            f"{hwm}; d.predict_images([open_image({str(path)!r})]); {hwm}")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded, scored = (int(x) / 1024 for x in out.stdout.split()[-2:])
    return loaded, scored


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--npr", default=None, help="an NPR run (default: an untrained NPR network of the default size)")
    ap.add_argument("--run", action="append", default=[], help="a trained forensic run to time as well (ONNX Runtime)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--images", type=int, default=16, help="images per call (detect's default batch)")
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    ap.add_argument("--agree", default=None, help="a dataset whose val split both runtimes score (max |dp_fake|)")
    args = ap.parse_args(argv)
    peak = matmul_peak()
    print(f"threads={torch.get_num_threads()}  fp32 matmul peak {peak:.1f} GFLOP/s")
    rows, counted = [], {}
    detectors = DETECTORS + tuple(f"run:{r}" for r in args.run)
    for which in detectors:
        det = load(which, args.npr)
        counting = load(which, args.npr, runtime="torch") if which.startswith("run:") else det
        for side in (256, 1024):
            images = [photo(side, side, s) for s in range(args.images)]
            det.predict_images(images[:1])  # warm-up (and lazy backbone construction or export)
            t = statistics.median([_time(lambda d=det, x=images: d.predict_images(x)) for _ in range(args.reps)])
            # ONNX Runtime runs outside torch, uncounted: the same graph's FLOPs, counted on the torch path
            f = counted[side] if which == "shipped-onnx" else flops(counting, images[:1])
            if which == "shipped-torch":
                counted[side] = f
            rows.append({"detector": which, "side": side, "images_per_s": len(images) / t, "gflop": f / 1e9,
                         "of_peak": f * len(images) / t / 1e9 / peak})
            r = rows[-1]
            print(f"{which:<8} {side:>5}px  {r['images_per_s']:7.2f} img/s  {r['gflop']:6.2f} GFLOP/img  "
                  f"{r['of_peak']:6.1%} of peak", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "photo.jpg"
        photo(4000, 3000).save(big, quality=90)
        mem = {which: peak_memory(which, args.npr, str(big)) for which in detectors}
    for which, (loaded, scored) in mem.items():
        print(f"{which:<8} peak RSS: {loaded:.0f} MiB loaded (a 64-px image scored), {scored:.0f} MiB after "
              f"scoring a 4000x3000 JPEG (+{scored - loaded:.0f})")
    agree = runtimes_agree(args.agree) if args.agree else None
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"matmul_peak_gflops": peak, "rows": rows, "peak_rss_mib": mem, "agree": agree}, f, indent=2)


def runtimes_agree(data: str, split: str = "val") -> dict:
    """The largest |p_fake difference| between the torch and onnx paths over a dataset's split."""
    from unigendet.data.imageio import open_image
    from unigendet.data.readers import read_source

    records = [r for r in read_source(data, strict=True) if r.split == split]
    torch_det, onnx_det = load("shipped-torch", None), load("shipped-onnx", None)
    worst = 0.0
    for s in range(0, len(records), 16):
        images = [open_image(r.path) for r in records[s : s + 16]]
        worst = max(worst, float(np.abs(torch_det.predict_images(images) - onnx_det.predict_images(images)).max()))
    print(f"torch vs onnx on {data} ({split}, {len(records)} images): max |p_fake difference| {worst:.2e}")
    return {"data": data, "split": split, "images": len(records), "max_abs_diff_p_fake": worst}


if __name__ == "__main__":
    main()
