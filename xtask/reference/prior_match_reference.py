#!/usr/bin/env python3
"""Float64 NumPy reference values for crates/wae-metrics/src/prior_match.rs (tests
`polynomial_mmd_matches_numpy` and `two_nn_matches_numpy`).

Inputs come from a deterministic formula the Rust tests implement too, so no data is
committed:

    X[i, j] = amp * sin(a * i + b * j + phase) + slope * j

KID's polynomial MMD follows Binkowski et al.'s `polynomial_mmd` (their repository
mbinkowski/MMD-GAN, gan/compute_scores.py): k(x, y) = (x . y / d + 1)^3, unbiased
within-set means over i != j, the cross mean over all pairs. TwoNN is written from
its definition with explicit loops over neighbours (maximum-likelihood form
d = N / sum ln(r2 / r1)).

Run (any Python with NumPy): python3 xtask/reference/prior_match_reference.py
"""
import numpy as np


def formula(n, d, a, b, amp, slope, phase):
    i = np.arange(n, dtype=np.float64)[:, None]
    j = np.arange(d, dtype=np.float64)[None, :]
    return amp * np.sin(a * i + b * j + phase) + slope * j


def polynomial_mmd(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1.0) ** 3
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = len(x), len(y)
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1))
            + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.sum() / (n * m))


def two_nn(points):
    n = len(points)
    logs = []
    for i in range(n):
        dist = sorted(np.sqrt(((points[i] - points[j]) ** 2).sum()) for j in range(n) if j != i)
        if dist[0] > 0:
            logs.append(np.log(dist[1] / dist[0]))
    return len(logs) / sum(logs)


x = formula(40, 6, 0.37, 1.3, 1.5, 0.1, 0.0)
y = formula(40, 6, 0.23, 0.7, 1.2, -0.05, 0.5)
print(f"const POLY_MMD_XY: f64 = {float(polynomial_mmd(x, y))!r};")
print(f"const POLY_MMD_XX: f64 = {float(polynomial_mmd(x, x[::-1].copy()))!r};")
print(f"const TWO_NN_X: f64 = {float(two_nn(formula(60, 5, 0.61, 0.9, 1.0, 0.2, 0.3)))!r};")
