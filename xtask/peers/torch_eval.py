#!/usr/bin/env python3
"""PyTorch + scikit-learn peer of `wae eval`'s sample scores, for `cargo xtask bench`.

What `cargo xtask bench --eval-n N` times on our side (`wae_train::evaluate::
{batched_features, feature_scores}` and `wae_divergence::mmd_blockwise`), done the usual
Python way on the same sizes:

  features:  the FID-MNIST classifier (conv 3x3 1 -> 16, ReLU, max-pool 2; conv 3x3
             16 -> 32, ReLU, max-pool 2; linear 1568 -> 128, ReLU), random weights,
             batches of 250, for N real and N generated 28x28 images (uniform noise)
  FID:       NumPy mean / covariance, scipy.linalg.sqrtm (as pytorch-fid)
  precision / recall (Kynkaanniemi et al. 2019, k = 3): the k-th neighbour radii by
             scikit-learn's NearestNeighbors, membership by blocks of torch.cdist
  KID:       unbiased polynomial-kernel MMD^2, 100 subsets of 1,000 (as torch-fidelity)
  MMD:       N 8-d codes against N prior draws, IMQ over 7 scales, U-statistic, blocks
             of 1,000 rows

Prints one JSON line with images_per_s = N / seconds (everything after the data exist).

Usage: python torch_eval.py --n 10000 --threads 2
"""

import argparse
import json
import time

import numpy as np
import scipy.linalg
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.neighbors import NearestNeighbors

SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc1(x.flatten(1)))


@torch.no_grad()
def features(net, images, batch=250):
    return torch.cat([net(images[i:i + batch]) for i in range(0, len(images), batch)]).double()


def fid(a, b):
    a, b = a.numpy(), b.numpy()
    mu1, mu2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = scipy.linalg.sqrtm(c1 @ c2, disp=False)
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.trace(covmean))


def radii(x, k=3):
    # k + 1 neighbours: the first is the point itself.
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(x.numpy()).kneighbors(x.numpy())
    return torch.from_numpy(dist[:, k] ** 2)


def inside(manifold, r2, queries, block=1000):
    hits = []
    for i in range(0, len(queries), block):
        d2 = torch.cdist(queries[i:i + block], manifold).pow(2)
        hits.append((d2 <= r2.unsqueeze(0)).any(1))
    return torch.cat(hits).double().mean().item()


def kid(a, b, subsets=100, size=1000, seed=0):
    rng = np.random.default_rng(seed)
    a, b = a.numpy(), b.numpy()
    d = a.shape[1]
    m = min(size, len(a), len(b))
    vals = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        vals.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
    return float(np.mean(vals))


def mmd_imq(q, p, block=1000):
    n, d = q.shape
    within_q = within_p = cross = 0.0
    for i in range(0, n, block):
        dqq = torch.cdist(q[i:i + block], q).pow(2)
        dpp = torch.cdist(p[i:i + block], p).pow(2)
        dqp = torch.cdist(q[i:i + block], p).pow(2)
        rows = torch.arange(i, min(i + block, n))
        for s in SCALES:
            c = 2.0 * d * s
            kqq, kpp = c / (c + dqq), c / (c + dpp)
            kqq[rows - i, rows] = 0.0
            kpp[rows - i, rows] = 0.0
            within_q += kqq.sum().item()
            within_p += kpp.sum().item()
            cross += (c / (c + dqp)).sum().item()
    return (within_q + within_p) / (n * (n - 1)) - 2.0 * cross / (n * n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=1, help="ignored (one evaluation)")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    net = Classifier().eval()
    real, generated = torch.rand(args.n, 1, 28, 28), torch.rand(args.n, 1, 28, 28)
    codes, draws = 1.2 * torch.randn(args.n, 8), torch.randn(args.n, 8)

    t0 = time.perf_counter()
    fr, fg = features(net, real), features(net, generated)
    score_fid = fid(fr, fg)
    rr, rg = radii(fr), radii(fg)
    precision, recall = inside(fr, rr, fg), inside(fg, rg, fr)
    score_kid = kid(fr, fg)
    mmd = mmd_imq(codes, draws)
    dt = time.perf_counter() - t0
    print(json.dumps({
        "framework": "PyTorch + scikit-learn + SciPy",
        "n": args.n,
        "images_per_s": round(args.n / dt, 2),
        "seconds": round(dt, 3),
        "fid": score_fid,
        "precision": precision,
        "recall": recall,
        "kid": score_kid,
        "mmd": mmd,
        "threads": args.threads,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
