#!/usr/bin/env python3
"""Reference PyTorch throughput benchmark for WAE-MMD on MNIST-shaped data (CPU or CUDA).

Model and loss follow Tolstikhin et al., "Wasserstein Auto-Encoders" (ICLR 2018),
MNIST setup (the "dcgan" architecture of the authors' TensorFlow code):

  encoder: 4 x [Conv 4x4 stride 2 'same' -> BatchNorm -> ReLU]
           channels 128, 256, 512, 1024 (spatial 28 -> 14 -> 7 -> 4 -> 2),
           flatten -> Linear -> d_z = 8           (deterministic encoder)
  decoder: Linear 8 -> 7*7*1024, ReLU,
           ConvTranspose 4x4 stride 2 -> 512 (14x14), BatchNorm, ReLU,
           ConvTranspose 4x4 stride 2 -> 256 (28x28), BatchNorm, ReLU,
           ConvTranspose 4x4 stride 1 'same' -> 1 channel, sigmoid
  loss:    0.05 * mean_batch(sum_pixels (x - x_hat)^2) + 10 * MMD_IMQ(z, z_prior)
  optim:   Adam, lr 1e-3, betas (0.5, 0.999)

--width-div 4 gives the reduced "cpu profile": every conv channel count divided by 4
(encoder 32, 64, 128, 256; decoder 7*7*256 -> 128 -> 64 -> 1).

Input is random data in [0, 1] (no dataset needed): this script only measures the
speed of a full training step (encoder fwd, decoder fwd, MMD penalty, backward, Adam
update). It prints one JSON line, e.g.

  {"framework": "pytorch", "width_div": 4, "batch": 100, "steps": 20,
   "images_per_s": 123.4, "torch": "2.x.y"}

Usage:
  python torch_wae_mmd.py --width-div 4 --batch 100 --steps 20 --threads 2
  python torch_wae_mmd.py --device cuda --width-div 1 --batch 400 --steps 50

With --device cuda the model, batch and prior draws live on the GPU, every timed step
ends with torch.cuda.synchronize() (through .item()), and the JSON line names the card
("device") and TF32's state (off: the comparison is f32 against f32).

`cargo xtask bench` runs this script (the copy in the repository, xtask/peers/); it was
first written beside the project as shared/peers/torch_wae_mmd.py.
"""

import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

Z_DIM = 8
RECON_WEIGHT = 0.05  # the authors' 'l2sq' cost: 0.05 * ||x - x_hat||^2
MMD_LAMBDA = 10.0
IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class SameConv2d(nn.Module):
    """Conv2d with TensorFlow 'SAME' padding: out = ceil(in / stride).

    For 7x7 inputs with k=4, s=2, TF pads asymmetrically (1 before, 2 after) to get
    4x4; symmetric cases use the conv's own padding so no extra op is inserted.
    """

    def __init__(self, cin, cout, k, stride, in_size):
        super().__init__()
        out_size = math.ceil(in_size / stride)
        total = max((out_size - 1) * stride + k - in_size, 0)
        self.before, self.after = total // 2, total - total // 2
        sym = self.before if self.before == self.after else 0
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=sym)
        self.explicit_pad = self.before != self.after

    def forward(self, x):
        if self.explicit_pad:
            p = (self.before, self.after, self.before, self.after)  # (left, right, top, bottom)
            x = F.pad(x, p)
        return self.conv(x)


class Encoder(nn.Module):
    def __init__(self, width_div=1):
        super().__init__()
        chans = [1] + [c // width_div for c in (128, 256, 512, 1024)]
        layers, size = [], 28
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [SameConv2d(cin, cout, 4, 2, size), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            size = math.ceil(size / 2)  # 28 -> 14 -> 7 -> 4 -> 2
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(chans[-1] * size * size, Z_DIM)

    def forward(self, x):
        return self.fc(torch.flatten(self.convs(x), 1))


class Decoder(nn.Module):
    def __init__(self, width_div=1):
        super().__init__()
        c0, c1, c2 = 1024 // width_div, 512 // width_div, 256 // width_div
        self.c0 = c0
        self.fc = nn.Linear(Z_DIM, 7 * 7 * c0)
        self.deconvs = nn.Sequential(
            # (in-1)*2 - 2*1 + 4 = 2*in: 7 -> 14 -> 28, i.e. TF 'SAME' with stride 2
            nn.ConvTranspose2d(c0, c1, 4, stride=2, padding=1), nn.BatchNorm2d(c1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c1, c2, 4, stride=2, padding=1), nn.BatchNorm2d(c2), nn.ReLU(inplace=True),
            # stride 1, k=4 'SAME' needs 1.5 px of padding per side: pad 1 (-> 29x29) and crop.
            nn.ConvTranspose2d(c2, 1, 4, stride=1, padding=1),
        )

    def forward(self, z):
        h = F.relu(self.fc(z)).view(-1, self.c0, 7, 7)
        logits = self.deconvs(h)[:, :, :28, :28]
        return torch.sigmoid(logits)


def sq_dists(a, b):
    """Pairwise squared Euclidean distances, ||a_i||^2 + ||b_j||^2 - 2 a_i.b_j."""
    return a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1).unsqueeze(0) - 2.0 * a @ b.t()


def mmd_imq(qz, pz, sigma2_p=1.0):
    """MMD U-statistic with the inverse multiquadratic kernel k = C / (C + ||x - y||^2),
    summed over C = 2 * d_z * sigma2_p * s for s in IMQ_SCALES (as in the authors' code).
    Within-sample terms exclude the diagonal; the cross term is a full mean."""
    n = qz.shape[0]
    d_qq, d_pp, d_qp = sq_dists(qz, qz), sq_dists(pz, pz), sq_dists(qz, pz)
    off_diag = 1.0 - torch.eye(n, dtype=qz.dtype, device=qz.device)
    c_base = 2.0 * qz.shape[1] * sigma2_p
    stat = qz.new_zeros(())
    for s in IMQ_SCALES:
        c = c_base * s
        within = (c / (c + d_qq) + c / (c + d_pp)) * off_diag
        stat = stat + within.sum() / (n * n - n) - 2.0 * (c / (c + d_qp)).sum() / (n * n)
    return stat


def wae_loss(enc, dec, x):
    z = enc(x)
    x_hat = dec(z)
    recon = (x - x_hat).pow(2).sum(dim=(1, 2, 3)).mean()
    z_prior = torch.randn_like(z)  # prior N(0, I)
    return RECON_WEIGHT * recon + MMD_LAMBDA * mmd_imq(z, z_prior)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width-div", type=int, choices=(1, 4), default=1)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=10, help="timed steps (after 3 warm-up steps)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels-last", action="store_true",
                    help="use NHWC memory format (sometimes faster for oneDNN convs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("error: --device cuda, but this PyTorch sees no CUDA device")
        # f32 against f32: candle's CUDA matmuls do not use TF32 unless asked to.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True

    enc, dec = Encoder(args.width_div).to(device), Decoder(args.width_div).to(device)
    params = list(enc.parameters()) + list(dec.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.5, 0.999))

    x = torch.rand(args.batch, 1, 28, 28, device=device)  # stand-in for an MNIST batch in [0, 1]
    if args.channels_last:
        enc, dec = enc.to(memory_format=torch.channels_last), dec.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    enc.train()
    dec.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = wae_loss(enc, dec, x)
        loss.backward()
        opt.step()
        return loss.item()  # .item() synchronises; keeps timing honest

    for _ in range(3):  # warm-up: oneDNN / cuDNN primitive choice, allocator, Adam state
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
        "width_div": args.width_div,
        "batch": args.batch,
        "steps": args.steps,
        "images_per_s": round(args.batch * args.steps / dt, 2),
        "s_per_step": round(dt / args.steps, 4),
        "threads": args.threads,
        "channels_last": args.channels_last,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "tf32": bool(device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32),
    }))


if __name__ == "__main__":
    main()
