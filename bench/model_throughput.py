"""Forward throughput of the tiny/small presets on this machine, side by side.

Prints, measured in one run:
- the machine's fp32 matmul peak (GFLOP/s, a large square matmul);
- tokens/s of a packed forward (detection + text-to-image samples), the FLOPs the
  pass needs (counted from the shapes) and the fraction of that peak it reaches;
- packed vs padded: the same samples as one packed sequence and as a batch padded
  to the longest sample (the padded cost emulated by pad tokens no one attends to).

    python bench/model_throughput.py [--presets tiny small] [--samples 16] [--reps 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from unigendet import create_model, get_config
from unigendet.labels import FAKE, REAL
from unigendet.unified.flow import interpolate, target_velocity
from unigendet.unified.packing import CAUSAL, Sample, Split
from unigendet.unified.prompts import detection_answer
from unigendet.unified.samples import SampleBuilder
from unigendet.unified.tokenizer import ByteTokenizer


def timed(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@torch.no_grad()
def forward(model, batch) -> None:
    model(batch)


def matmul_peak(n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / timed(lambda: a @ b, reps) / 1e9


def make_samples(cfg, builder, n: int, gen: torch.Generator) -> list[Sample]:
    """Alternating detection and text-to-image samples with varied text lengths."""
    lat, side = cfg.latent, cfg.image_size
    out = []
    for i in range(n):
        image = torch.rand(3, side, side, generator=gen) * 2 - 1
        z = torch.randn(lat.channels, side // lat.downsample, side // lat.downsample, generator=gen)
        words = " ".join(["texture"] * (3 + 7 * (i % 5)))
        if i % 2 == 0:
            label = FAKE if i % 4 == 0 else REAL
            out.append(builder.detection(z, image, answer=detection_answer(label, words), label=label))
        else:
            eps = torch.randn(z.shape, generator=gen)
            out.append(builder.text_to_image(words, interpolate(z, eps, 0.5), 0.5, target_velocity(z, eps)))
    return out


def padded(samples: list[Sample], lengths: list[int], pad_id: int) -> list[Sample]:
    """Append a trailing pad split so every sample is as long as the longest one."""
    longest = max(lengths)
    return [
        Sample(s.splits + [Split(CAUSAL, text=[pad_id] * (longest - n))]) if n < longest else s
        for s, n in zip(samples, lengths)
    ]


def forward_flops(cfg, batch) -> float:
    """Matmul FLOPs of one forward (LLM layers, ViT, connector, latent in), heads excluded."""
    llm, vit = cfg.llm, cfg.vit
    d, hd = llm.hidden_size, llm.head_dim
    per_token_layer = d * (llm.num_heads + 2 * llm.num_kv_heads) * hd + llm.num_heads * hd * d
    per_token_layer += 3 * d * llm.intermediate_size
    flops = 2 * batch.length * per_token_layer * llm.num_layers
    flops += sum(4 * n * n * llm.num_heads * hd for n in batch.sample_lens) * llm.num_layers
    nv, dv = batch.vit_index.numel(), vit.hidden_size
    flops += 2 * nv * (4 * dv * dv + 2 * dv * vit.intermediate_size) * vit.num_layers
    flops += sum(4 * n * n * dv for n in batch.vit_lens) * vit.num_layers
    flops += 2 * nv * (3 * vit.patch_size**2 * dv + dv * d + d * d)
    flops += 2 * batch.latent_index.numel() * (cfg.latent.token_dim * d + 2 * d * d)
    return flops


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["tiny", "small"])
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    torch.manual_seed(0)

    peak = matmul_peak()
    print(f"threads={torch.get_num_threads()}  fp32 matmul peak: {peak:.1f} GFLOP/s (2048^3)")
    print(f"{'preset':<8}{'tokens':>8}{'tok/s':>10}{'GFLOP':>8}{'GFLOP/s':>9}{'of peak':>9}"
          f"{'padded tok':>12}{'padded/packed time':>20}")
    for name in args.presets:
        cfg = get_config(name)
        model = create_model(cfg).eval()
        builder = SampleBuilder(cfg, ByteTokenizer())
        samples = make_samples(cfg, builder, args.samples, torch.Generator().manual_seed(0))
        packed = builder.pack(samples)
        pad = builder.pack(padded(samples, packed.sample_lens, builder.tok.pad))

        t_packed = timed(lambda m=model, b=packed: forward(m, b), args.reps)
        t_padded = timed(lambda m=model, b=pad: forward(m, b), args.reps)
        gflop = forward_flops(cfg, packed) / 1e9
        achieved = gflop / t_packed
        print(f"{name:<8}{packed.length:>8}{packed.length / t_packed:>10.0f}{gflop:>8.2f}{achieved:>9.1f}"
              f"{achieved / peak:>9.1%}{pad.length:>12}{t_padded / t_packed:>20.2f}")


if __name__ == "__main__":
    main()
