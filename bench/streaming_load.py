"""Peak memory of loading a sharded checkpoint: streaming vs the naive way, side by side.

Writes a random `base`-preset checkpoint (171 M parameters, fp32) as 4 safetensors shards
with an index, then loads it in two fresh processes:
  naive      build the model (random init), read every shard into a state dict, load_state_dict;
  streaming  `unigendet.unified.loading.load_large` (meta-device model, one tensor at a time).
Peak resident memory (VmRSS, sampled every millisecond, file pages of memory maps included)
above the process's baseline is compared with the model's size and its largest tensor.

    python bench/streaming_load.py [--preset base] [--shards 4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from unigendet.unified.loading import load_large, shard_files
from unigendet.unified.presets import create_model, get_config


def resident_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def measure(mode: str, path: str, preset: str) -> dict:
    """One load in this process: peak resident memory above the baseline, and seconds."""
    import threading
    import time

    from safetensors.torch import load_file

    cfg = get_config(preset)
    create_model(cfg, device="meta")  # imports and one-time torch set-up, outside the measurement
    base, peak, done = resident_bytes(), [0], [False]

    def sample():
        while not done[0]:
            peak[0] = max(peak[0], resident_bytes())
            time.sleep(0.001)

    t = threading.Thread(target=sample)
    t.start()
    t0 = time.perf_counter()
    if mode == "naive":
        model = create_model(cfg)
        state = {}
        for f in sorted(set(shard_files(path).values())):
            state.update(load_file(str(f)))
        model.load_state_dict(state)
        del state
    else:
        model, _ = load_large(cfg, path, dtype=None)
    secs = time.perf_counter() - t0
    done[0] = True
    t.join()
    peak[0] = max(peak[0], resident_bytes())
    return {"peak": peak[0] - base, "secs": secs}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="base")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:  # one measurement, in a fresh process
        print(json.dumps(measure(*args.child, args.preset)))
        return
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        state = create_model(get_config(args.preset)).state_dict()
        model_bytes = sum(v.numel() * v.element_size() for v in state.values())
        name, largest = max(((k, v.numel() * v.element_size()) for k, v in state.items()), key=lambda x: x[1])
        names, weight_map = sorted(state), {}
        for i in range(args.shards):
            f = f"model-{i + 1:05d}-of-{args.shards:05d}.safetensors"
            save_file({k: state[k].contiguous() for k in names[i::args.shards]}, str(root / f))
            weight_map.update({k: f for k in names[i::args.shards]})
        (root / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
        del state
        rows = {}
        for mode in ("naive", "streaming"):
            cmd = [sys.executable, __file__, "--child", mode, str(root), "--preset", args.preset]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            rows[mode] = json.loads(out.strip().splitlines()[-1])
    mib = 1 / 2**20
    print(f"# {' '.join(sys.argv)}")
    print(f"model {model_bytes * mib:.0f} MiB in {args.shards} shards; largest tensor {name} {largest * mib:.1f} MiB")
    print(f"{'mode':<10}{'peak MiB':>10}{'peak - model MiB':>18}{'x largest':>11}{'seconds':>9}")
    for mode, r in rows.items():
        extra = r["peak"] - model_bytes
        print(f"{mode:<10}{r['peak'] * mib:>10.0f}{extra * mib:>18.0f}{extra / largest:>11.1f}{r['secs']:>9.2f}")
    print(f"naive / streaming peak: {rows['naive']['peak'] / rows['streaming']['peak']:.2f}x")


if __name__ == "__main__":
    main()
