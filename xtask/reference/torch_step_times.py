#!/usr/bin/env python3
"""Per-step times of the PyTorch peer's WAE-MMD training step.

Builds the exact model, loss and optimiser of `xtask/peers/torch_wae_mmd.py` (imported,
not copied) and times every step on its own: wall time (perf_counter) and the CPU time
of the whole process (process_time, all threads). `cargo xtask bench` uses the fastest
step as a measure that is less sensitive to other load on the machine than the peer's
own average over all steps.

Usage: python torch_step_times.py PEER_SCRIPT --width-div {1,4} --batch N --steps S
           [--warmup W] [--threads T]
Prints one JSON line.
"""

import argparse
import importlib.util
import json
import math
import resource
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("peer_script")
    ap.add_argument("--width-div", type=int, default=4)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    spec = importlib.util.spec_from_file_location("torch_wae_mmd", args.peer_script)
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    torch = peer.torch

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    enc, dec = peer.Encoder(args.width_div), peer.Decoder(args.width_div)
    params = list(enc.parameters()) + list(dec.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.5, 0.999))
    x = torch.rand(args.batch, 1, 28, 28)
    enc.train()
    dec.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = peer.wae_loss(enc, dec, x)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    walls, cpus = [], []
    t_all = time.perf_counter()
    for _ in range(args.steps):
        w0, c0 = time.perf_counter(), time.process_time()
        loss = step()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    total = time.perf_counter() - t_all
    assert math.isfinite(loss), loss
    print(json.dumps({
        "framework": "pytorch",
        "torch": torch.__version__,
        "width_div": args.width_div,
        "batch": args.batch,
        "steps": args.steps,
        "threads": args.threads,
        "images_per_s": args.batch * args.steps / total,
        "s_per_step": total / args.steps,
        "min_step_wall_s": min(walls),
        "min_step_cpu_s": min(cpus),
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }))


if __name__ == "__main__":
    main()
