#!/usr/bin/env python3
"""PyTorch side of the MMD benchmark (crates/wae-divergence/benches/mmd.rs).

Same computation as the Rust bench: MMD^2 U-statistic, inverse multiquadratic kernel
summed over scales [0.1, 0.2, 0.5, 1, 2, 5, 10], C_s = 2 * d * prior_variance * s,
prior_variance 1, f32 on the CPU, codes (n, d) ~ N(0, 2 I) requiring grad, prior
samples (n, d) ~ N(0, I); one step = forward + backward w.r.t. the codes.

Two PyTorch formulations:
  wae_style  the original WAE code's loop (per-scale kernels, diagonal removed by
             multiplying with (1 - eye)), translated to PyTorch;
  summed     a tighter version: distances clamped at 0, kernel summed over scales
             per matrix, diagonal removed by subtracting n * #scales.
Both are checked to agree before timing.

Usage: python mmd_bench_torch.py [--sizes 100,1000,10000] [--dims 8,64] [--reps N]
Prints one JSON line per (variant, n, d): best and median ms per forward+backward.
"""
import argparse
import json
import time

import torch

SCALES = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]


def sqdist(x, y):
    nx = (x * x).sum(1, keepdim=True)
    ny = (y * y).sum(1, keepdim=True)
    return nx + ny.t() - 2.0 * (x @ y.t())


def mmd_wae_style(qz, pz, prior_variance=1.0):
    n, d = qz.shape
    dist_q = sqdist(qz, qz)
    dist_p = sqdist(pz, pz)
    dist_qp = sqdist(qz, pz)
    off_diag = 1.0 - torch.eye(n, dtype=qz.dtype)
    stat = 0.0
    for s in SCALES:
        c = 2.0 * d * prior_variance * s
        res1 = c / (c + dist_q) + c / (c + dist_p)
        res1 = (res1 * off_diag).sum() / (n * n - n)
        res2 = (c / (c + dist_qp)).sum() * 2.0 / (n * n)
        stat = stat + res1 - res2
    return stat


def kernel_sum(dist, d, prior_variance):
    total = None
    for s in SCALES:
        c = 2.0 * d * prior_variance * s
        k = c / (c + dist)
        total = k if total is None else total + k
    return total.sum()


def mmd_summed(qz, pz, prior_variance=1.0):
    n, d = qz.shape
    m = pz.shape[0]
    s = len(SCALES)
    s_qq = kernel_sum(sqdist(qz, qz).clamp_min(0.0), d, prior_variance) - n * s
    s_pp = kernel_sum(sqdist(pz, pz).clamp_min(0.0), d, prior_variance) - m * s
    s_qp = kernel_sum(sqdist(qz, pz).clamp_min(0.0), d, prior_variance)
    return s_qq / (n * (n - 1)) + s_pp / (m * (m - 1)) - 2.0 * s_qp / (n * m)


VARIANTS = {"wae_style": mmd_wae_style, "summed": mmd_summed}


def step(fn, qz, pz):
    qz.grad = None
    loss = fn(qz, pz)
    loss.backward()
    return float(qz.grad[0, 0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--dims", default="8,64")
    ap.add_argument("--variants", default="summed,wae_style")
    ap.add_argument("--reps", type=int, default=0, help="timed steps (0: 30 / 10 / 3 by size)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for n in [int(v) for v in args.sizes.split(",")]:
        for d in [int(v) for v in args.dims.split(",")]:
            g = torch.Generator().manual_seed(0)
            qz = (2.0 ** 0.5 * torch.randn(n, d, generator=g)).requires_grad_(True)
            pz = torch.randn(n, d, generator=g)
            if n <= 1000:
                a = mmd_wae_style(qz.double(), pz.double()).item()
                b = mmd_summed(qz.double(), pz.double()).item()
                assert abs(a - b) <= 1e-9 * max(abs(a), 1e-6), (a, b)
            reps = args.reps or (30 if n <= 100 else 10 if n <= 1000 else 3)
            for name in args.variants.split(","):
                fn = VARIANTS[name]
                step(fn, qz, pz)  # warm-up
                times = []
                for _ in range(reps):
                    t0 = time.perf_counter()
                    step(fn, qz, pz)
                    times.append((time.perf_counter() - t0) * 1e3)
                times.sort()
                print(json.dumps({"impl": "torch-" + name, "n": n, "d": d, "reps": reps,
                                  "best_ms": round(times[0], 3), "median_ms": round(times[len(times) // 2], 3),
                                  "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
