#!/usr/bin/env python3
"""PyTorch's f32 matrix product rate, the peer of `cargo xtask bench`'s `sgemm_f32` row.

Times `a @ b` for two random n x n f32 matrices on the CPU (after one untimed product)
and keeps the fastest of `--reps`. The bench takes the better of this and our side (the
gemm crate through candle's `matmul`) as the machine's f32 GEMM rate, against which it
sets each training step's rate of products (docs/performance.md).

Prints one JSON line: "images_per_s" is products per second (an "image" of this row is
one n x n by n x n product), "gflops" the same in GFLOP/s (2 n^3 per product).

Usage:
  python torch_gemm.py --n 2048 --reps 5 --threads 2
"""

import argparse
import json
import time

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.n < 1 or args.reps < 1:
        ap.error("--n and --reps must be positive")
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(args.n, args.n, generator=gen)
    b = torch.randn(args.n, args.n, generator=gen)
    c = a @ b
    best = float("inf")
    for _ in range(args.reps):
        t0 = time.perf_counter()
        c = a @ b
        best = min(best, time.perf_counter() - t0)
    if not torch.isfinite(c).all():
        raise SystemExit("the product is not finite")
    print(json.dumps({
        "framework": "pytorch",
        "torch": torch.__version__,
        "n": args.n,
        "reps": args.reps,
        "best_s": best,
        "images_per_s": 1.0 / best,
        "gflops": 2.0 * args.n ** 3 / best / 1e9,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
