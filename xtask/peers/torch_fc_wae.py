#!/usr/bin/env python3
"""PyTorch throughput peer for the fully connected dSprites WAE of Rubenstein et al. (2018).

The model of the preset `dsprites-wae-mmd-random` (crates/wae-train/presets), as
`wae_train::bench::StepBench::from_preset` runs it, in PyTorch:

  encoder: Linear 4096 -> 1200, ReLU, Linear 1200 -> 1200, ReLU, Linear 1200 -> 2 x 16
           (mean through tanh, log-variance clipped to [-20, 5]); z = mean + exp(lv / 2) eps
  decoder: Linear 16 -> 1200, tanh, 2 x [Linear 1200 -> 1200, tanh], Linear 1200 -> 4096
           (Bernoulli logits)
  loss:    mean_batch(sum_pixels BCE-with-logits) + 20 * MMD_IMQ(z, z_prior)
           + 3 * mean_batch(sum |log-variance|)
           MMD: IMQ kernel C / (C + ||x - y||^2), C = 16 * s for the 10 scales below,
           paired U-statistic (within-sample terms off the diagonal, the cross term
           off the diagonal too: each pair (q_i, p_i) is one draw from Q x P)
  optim:   Adam, lr 1e-3, betas (0.9, 0.999); Glorot-uniform weights, zero biases

Input: a batch of random 64x64 images with values uniform in [0, 1] (ours draws the same
kind; the cost of a step does not depend on the values). Prints one JSON line like
torch_wae_mmd.py ("images_per_s", "s_per_step", ...).

Usage:
  python torch_fc_wae.py --batch 100 --steps 20 --threads 2 [--device cuda]
"""

import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

Z_DIM = 16
HIDDEN = 1200
PIXELS = 64 * 64
LAMBDA = 20.0
LOGVAR_L1 = 3.0
SCALES = (0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 0.8, 1.0, 2.0)


def glorot(layer):
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            glorot(nn.Linear(PIXELS, HIDDEN)), nn.ReLU(),
            glorot(nn.Linear(HIDDEN, HIDDEN)), nn.ReLU(),
            glorot(nn.Linear(HIDDEN, 2 * Z_DIM)),
        )

    def forward(self, x):
        h = self.net(x.flatten(1))
        return torch.tanh(h[:, :Z_DIM]), h[:, Z_DIM:].clamp(-20.0, 5.0)


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            glorot(nn.Linear(Z_DIM, HIDDEN)), nn.Tanh(),
            glorot(nn.Linear(HIDDEN, HIDDEN)), nn.Tanh(),
            glorot(nn.Linear(HIDDEN, HIDDEN)), nn.Tanh(),
            glorot(nn.Linear(HIDDEN, PIXELS)),
        )

    def forward(self, z):
        return self.net(z)


def sq_dists(a, b):
    return (a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1).unsqueeze(0) - 2.0 * a @ b.t()).clamp_min(0.0)


def mmd_imq_paired(qz, pz):
    n = qz.shape[0]
    off = 1.0 - torch.eye(n, dtype=qz.dtype, device=qz.device)
    d_qq, d_pp, d_qp = sq_dists(qz, qz), sq_dists(pz, pz), sq_dists(qz, pz)
    stat = qz.new_zeros(())
    for s in SCALES:
        c = Z_DIM * s
        within = (c / (c + d_qq) + c / (c + d_pp)) * off
        cross = (c / (c + d_qp)) * off
        stat = stat + (within.sum() - 2.0 * cross.sum()) / (n * n - n)
    return stat


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=20, help="timed steps (after 3 warm-up steps)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False

    enc, dec = Encoder().to(device), Decoder().to(device)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3, betas=(0.9, 0.999))
    x = torch.rand(args.batch, 1, 64, 64, device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        mean, logvar = enc(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        logits = dec(z)
        recon = F.binary_cross_entropy_with_logits(logits, x.flatten(1), reduction="sum") / args.batch
        loss = recon + LAMBDA * mmd_imq_paired(z, torch.randn_like(z)) + LOGVAR_L1 * logvar.abs().sum(1).mean()
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    dt = time.perf_counter() - t0
    assert math.isfinite(loss), loss
    print(json.dumps({
        "framework": "pytorch",
        "model": "dsprites_fc",
        "batch": args.batch,
        "steps": args.steps,
        "images_per_s": round(args.batch * args.steps / dt, 2),
        "s_per_step": round(dt / args.steps, 4),
        "threads": args.threads,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
    }))


if __name__ == "__main__":
    main()
