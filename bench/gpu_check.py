"""GPU check of the library core (needs CUDA; never part of CI).

For each preset: one packed training step (forward + backward) in fp32 and in
bf16 autocast, printing the losses side by side, tokens/s of each and the bf16
speed-up, and peak memory; then cached vs uncached generation on the GPU.

    python bench/gpu_check.py [--presets tiny small base] [--samples 32]
"""

from __future__ import annotations

import argparse
import time

import torch

from model_throughput import make_samples  # bench/ is on sys.path when run as a script
from unigendet import create_model, get_config
from unigendet.unified.flow import Guidance
from unigendet.unified.inference import generate_latents
from unigendet.unified.losses import packed_losses
from unigendet.unified.samples import SampleBuilder
from unigendet.unified.tokenizer import ByteTokenizer


def train_step(model, batch, dtype, reps: int) -> tuple[dict[str, float], float]:
    def step():
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            losses = packed_losses(model, batch)
        sum(losses.values()).backward()
        return losses

    step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        losses = step()
    torch.cuda.synchronize()
    return {k: round(v.item(), 4) for k, v in losses.items()}, (time.perf_counter() - t0) / reps


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=["tiny", "small", "base"])
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    assert torch.cuda.is_available(), "this check needs a CUDA device"
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    for name in args.presets:
        torch.manual_seed(0)
        cfg = get_config(name)
        model = create_model(cfg).cuda().train()
        with torch.no_grad():
            model.llm2vae.weight.normal_(std=0.02)
        builder = SampleBuilder(cfg, ByteTokenizer())
        batch = builder.pack(make_samples(cfg, builder, args.samples, torch.Generator().manual_seed(0))).to("cuda")
        torch.cuda.reset_peak_memory_stats()
        l32, t32 = train_step(model, batch, torch.float32, args.reps)
        l16, t16 = train_step(model, batch, torch.bfloat16, args.reps)
        mem = torch.cuda.max_memory_allocated() / 2**30
        print(f"{name}: {model.num_parameters():,} params, {batch.length} tokens, peak {mem:.2f} GiB")
        print(f"  fp32 losses {l32}  {batch.length / t32:,.0f} tok/s (train step)")
        print(f"  bf16 losses {l16}  {batch.length / t16:,.0f} tok/s  bf16/fp32 speed-up {t32 / t16:.2f}x")

        model.eval()
        kw = dict(grid=(4, 4), steps=6, guidance=Guidance(scale=4.0, interval=(0.0, 1.0)))
        a = generate_latents(model, builder, ["a cat", "a dog"], generator=torch.Generator().manual_seed(0), **kw)
        b = generate_latents(model, builder, ["a cat", "a dog"], generator=torch.Generator().manual_seed(0),
                             use_cache=False, **kw)
        print(f"  cached vs uncached generation, max |diff| = {(a - b).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
