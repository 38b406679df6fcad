#!/usr/bin/env python3
"""Reference numbers for wae-metrics: Laplace sharpness and the Frechet distance.

Run:  python3 xtask/reference/metrics_reference.py [--bench]
The printed numbers are pasted into crates/wae-metrics/tests/reference.rs;
--bench times pytorch-fid's Frechet distance at D = 2048 for docs/performance.md.

Every input comes from an integer formula that Rust reproduces bit for bit
(splitmix64 -> 53-bit uniform in [0, 1), or k / 1008 rounded to f32), so the
two sides see identical inputs and only the arithmetic differs.

The Frechet distance is computed exactly as pytorch-fid 0.3.0
(`calculate_frechet_distance`: scipy.linalg.sqrtm of sigma1 @ sigma2, eps * I
offsets when the result is not finite, real part with an imaginary-part check).
Beside it the script prints the eigenvalue form that the Rust code uses,
tr sqrtm(S1 S2) = sum sqrt(eig(sqrt(S1) S2 sqrt(S1))), to show that the two
agree, also when the covariances are singular (fewer samples than dimensions).
"""

import sys
import time

import numpy as np
from scipy import linalg
from scipy.signal import convolve2d

MASK = (1 << 64) - 1


def splitmix64(x):
    """One splitmix64 output for the 64-bit state x (Rust: wae_metrics::testing)."""
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def uniform(seed, index):
    """53-bit uniform in [0, 1) from (seed, index); exact in f64."""
    return (splitmix64(((seed & 0xFFFFFFFF) << 32) ^ index) >> 11) * (2.0 ** -53)


def features(seed, n, d, shift):
    """(n, d) features: correlated uniforms, x[i, j] = u[i, j] + 0.5 u[i, (j+1) % d] + shift * j / d."""
    u = np.array([[uniform(seed, i * d + j) for j in range(d)] for i in range(n)])
    x = np.empty((n, d))
    for j in range(d):
        x[:, j] = u[:, j] + 0.5 * u[:, (j + 1) % d] + shift * j / d
    return x


def pytorch_fid_frechet(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid 0.3.0's calculate_frechet_distance, verbatim in logic."""
    diff = mu1 - mu2
    covmean, _ = sqrtm_disp_false(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            m = np.max(np.abs(covmean.imag))
            raise ValueError("Imaginary component {}".format(m))
        covmean = covmean.real
    tr_covmean = np.trace(covmean)
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean


def sqrtm_disp_false(a):
    """scipy's sqrtm(a, disp=False) (the `disp` keyword is deprecated in scipy >= 1.16)."""
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return linalg.sqrtm(a, disp=False)
    except TypeError:
        return linalg.sqrtm(a), None


def eigen_frechet(mu1, sigma1, mu2, sigma2):
    """The Rust formula: eigenvalues of sqrt(S1) S2 sqrt(S1) on the range of S1, negatives clamped to 0."""
    lam, v = np.linalg.eigh(sigma1)
    keep = lam > lam.max() * len(lam) * np.finfo(np.float64).eps
    v, root = v[:, keep], np.sqrt(lam[keep])
    m = (root[:, None] * (v.T @ sigma2 @ v)) * root[None, :]
    mu = np.linalg.eigvalsh(m)
    tr_covmean = np.sqrt(np.clip(mu, 0.0, None)).sum()
    diff = mu1 - mu2
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean


def stats(x):
    return x.mean(axis=0), np.cov(x, rowvar=False)


def sharpness(images):
    """images (N, C, H, W) float32 in [0, 1] -> mean over images of var(laplace(grey))."""
    lap = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)
    x = images.astype(np.float64)
    if x.shape[1] == 3:
        grey = 0.2989 * x[:, 0] + 0.5870 * x[:, 1] + 0.1140 * x[:, 2]
    else:
        grey = x[:, 0]
    return float(np.mean([convolve2d(g, lap, mode="valid").var() for g in grey]))


def sharpness_images(n, c, h, w, mult, add):
    """Pixels ((k * mult + add) % 1009) / 1008 rounded to f32, k the flat index."""
    k = np.arange(n * c * h * w, dtype=np.int64)
    vals = ((k * mult + add) % 1009).astype(np.float32) / np.float32(1008.0)
    return vals.reshape(n, c, h, w)


def main():
    np.set_printoptions(precision=17)
    print("# sharpness")
    for n, c, h, w, mult, add in [(2, 1, 5, 7, 7919, 13), (3, 3, 8, 6, 104729, 7), (1, 3, 28, 28, 31, 0)]:
        imgs = sharpness_images(n, c, h, w, mult, add)
        print(f"sharpness n={n} c={c} h={h} w={w} mult={mult} add={add}: {sharpness(imgs)!r}")

    print("# gaussian stats (seed 1, n 5, d 3, shift 0)")
    mu, cov = stats(features(1, 5, 3, 0.0))
    print("mean", repr(mu.tolist()))
    print("cov", repr(cov.ravel().tolist()))

    print("# frechet distance")
    cases = [
        # (seed_a, n_a, seed_b, n_b, d, shift_b)
        (10, 40, 11, 50, 8, 0.7),  # full rank
        (20, 12, 21, 20, 32, 0.3),  # singular: n < d for both sets
        (30, 300, 31, 200, 64, 1.5),  # full rank, larger d
        (40, 30, 41, 500, 64, 0.0),  # one singular, one full rank
    ]
    for sa, na, sb, nb, d, shift in cases:
        m1, s1 = stats(features(sa, na, d, 0.0))
        m2, s2 = stats(features(sb, nb, d, shift))
        ref = float(pytorch_fid_frechet(m1, s1, m2, s2))
        eig = float(eigen_frechet(m1, s1, m2, s2))
        print(
            f"fid seeds=({sa},{sb}) n=({na},{nb}) d={d} shift={shift}: scipy {ref!r} "
            f"eigen {eig!r} rel {abs(ref - eig) / abs(ref):.2e}"
        )
    for n, d in [(100, 16), (10, 32)]:
        m1, s1 = stats(features(50, n, d, 0.0))
        print(
            f"fid identical seed=50 n={n} d={d}: scipy {float(pytorch_fid_frechet(m1, s1, m1, s1))!r} "
            f"eigen {float(eigen_frechet(m1, s1, m1, s1))!r} trace {float(np.trace(s1))!r}"
        )


def uniform_matrix(seed, n, d):
    """Vectorised `uniform(seed, i * d + j)` for the benchmark's (n, d) features."""
    idx = np.arange(n * d, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = ((np.uint64(seed) << np.uint64(32)) ^ idx) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)).reshape(n, d)


def bench():
    """pytorch-fid's Frechet distance at D = 2048 (same inputs as benches/metrics.rs)."""
    d = 2048
    stats_ = []
    for seed in (1, 2):
        u = uniform_matrix(seed, 4096, d)
        x = u + 0.5 * np.roll(u, -1, axis=1)
        t0 = time.perf_counter()
        stats_.append(stats(x))
        print(f"bench numpy mean+cov 4096x2048: {time.perf_counter() - t0:.3f} s")
    (m1, s1), (m2, s2) = stats_
    for _ in range(2):
        t0 = time.perf_counter()
        fid = pytorch_fid_frechet(m1, s1, m2, s2)
        print(f"bench pytorch-fid frechet distance D=2048: {time.perf_counter() - t0:.3f} s (fid {fid!r})")
    t0 = time.perf_counter()
    fid = eigen_frechet(m1, s1, m2, s2)
    print(f"bench eigenvalue formula in numpy D=2048: {time.perf_counter() - t0:.3f} s (fid {fid!r})")


if __name__ == "__main__":
    if "--bench" in sys.argv:
        bench()
    else:
        main()
