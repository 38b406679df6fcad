#!/usr/bin/env python3
"""Per-layer CPU time of the PyTorch peer's WAE-MMD training step (torch.profiler).

Runs the model of torch_wae_mmd.py (same folder) for a few warm-up steps, then profiles
--steps training steps and prints the convolution and BatchNorm operators grouped by
input shape, in milliseconds per step, forward and backward separately. Used to set our
per-layer times (`cargo run --release -p wae-kernels --example layer_timing`) beside
PyTorch's (docs/performance.md).

  python xtask/peers/torch_layer_profile.py --width-div 4 --batch 100

The profiler adds some overhead of its own, so the total is a little above the
benchmark's step time.
"""

import argparse
import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_wae_mmd as peer  # noqa: E402

OPS = ("aten::_convolution", "aten::convolution_backward", "aten::native_batch_norm",
       "aten::native_batch_norm_backward", "aten::mkldnn_convolution")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width-div", type=int, choices=(1, 4), default=4)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    enc, dec = peer.Encoder(args.width_div), peer.Decoder(args.width_div)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3,
                           betas=(0.5, 0.999))
    x = torch.rand(args.batch, 1, 28, 28)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = peer.wae_loss(enc, dec, x)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(5):
        step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(args.steps):
            step()
    rows = []
    for ev in prof.key_averages(group_by_input_shape=True):
        if ev.key in OPS:
            shapes = [s for s in ev.input_shapes if s][:3]
            rows.append((ev.self_cpu_time_total / 1e3 / args.steps, ev.key, shapes))
    total = sum(ev.self_cpu_time_total for ev in prof.key_averages()) / 1e3 / args.steps
    # The profiler's CPU time of an operator is its wall time on the calling thread
    # (oneDNN's worker threads run inside it), so these add up to the step time.
    print(f"width_div {args.width_div}, batch {args.batch}, {args.steps} steps, "
          f"torch {torch.__version__}: ms per step (profiler self CPU time)")
    for ms, key, shapes in sorted(rows, reverse=True):
        print(f"{ms:9.2f}  {key:36s} {shapes}")
    print(f"{total:9.2f}  all operators")


if __name__ == "__main__":
    main()
