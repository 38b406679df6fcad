"""Reference MIG values for crates/wae-metrics/tests/disentanglement.rs.

MIG exactly as disentanglement_lib computes it (evaluation/metrics/mig.py and
utils.py): each code dimension discretised by
np.digitize(x, np.histogram(x, num_bins)[1][:-1]), mutual information with each
factor by scikit-learn's mutual_info_score formula (re-implemented here with numpy,
natural log), gap between the two largest MIs over the factor's entropy, mean over
factors.

Inputs are deterministic (no RNG shared between languages): the full factor grid of
sizes (3, 6, 40, 32, 4) in row-major order (last factor fastest), and codes built
from the factor classes and a splitmix64 hash of (row, dim).

Run: python3 xtask/reference/disentanglement_reference.py
It also writes the numpy-made dSprites npz fixture of crates/wae-data/tests/dsprites.rs:
  ... disentanglement_reference.py --write-dsprites-fixture \
      crates/wae-data/tests/data/dsprites_numpy_tiny.npz
"""
import numpy as np

SIZES = (3, 6, 40, 32, 4)
NUM_BINS = 20
MASK = (1 << 64) - 1


def grid(sizes):
    n = int(np.prod(sizes))
    rows = np.arange(n)
    classes = np.zeros((n, len(sizes)), dtype=np.int64)
    rest = rows.copy()
    for k in reversed(range(len(sizes))):
        classes[:, k] = rest % sizes[k]
        rest //= sizes[k]
    return classes


def splitmix_uniform(row, dim):
    """u in [0, 1) from splitmix64 of row * 1000 + dim (uint64 wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = row.astype(np.uint64) * np.uint64(1000) + np.uint64(dim)
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def histogram_discretize(target, num_bins):
    # target: (d, N) as in disentanglement_lib
    out = np.zeros_like(target, dtype=np.int64)
    for i in range(target.shape[0]):
        out[i, :] = np.digitize(target[i, :], np.histogram(target[i, :], num_bins)[1][:-1])
    return out


def mutual_info_score(a, b):
    # scikit-learn's formula on the contingency table
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    na, nb = ai.max() + 1, bi.max() + 1
    if na == 1 or nb == 1:
        return 0.0
    table = np.zeros((na, nb), dtype=np.int64)
    np.add.at(table, (ai, bi), 1)
    nzx, nzy = np.nonzero(table)
    nz_val = table[nzx, nzy]
    total = table.sum()
    pi = table.sum(axis=1)
    pj = table.sum(axis=0)
    log_c = np.log(nz_val)
    c_nm = nz_val / total
    outer = pi.take(nzx).astype(np.int64) * pj.take(nzy).astype(np.int64)
    log_outer = -np.log(outer) + np.log(pi.sum()) + np.log(pj.sum())
    mi = c_nm * (log_c - np.log(total)) + c_nm * log_outer
    mi = np.where(np.abs(mi) < np.finfo(mi.dtype).eps, 0.0, mi)
    return max(mi.sum(), 0.0)


def mig(codes, factors):
    mus = histogram_discretize(codes.T, NUM_BINS)
    ys = factors.T
    m = np.array([[mutual_info_score(ys[j], mus[i]) for j in range(ys.shape[0])]
                  for i in range(mus.shape[0])])
    h = np.array([mutual_info_score(ys[j], ys[j]) for j in range(ys.shape[0])])
    sorted_m = np.sort(m, axis=0)[::-1]
    gaps = (sorted_m[0] - sorted_m[1]) / h
    return gaps.mean(), gaps


def main():
    f = grid(SIZES)
    n = f.shape[0]
    rows = np.arange(n)
    c = f.astype(np.float64)
    cases = {
        "identity": c,
        # exp(3 c / size): strictly monotone but not affine, so bins change.
        "monotone": np.exp(3.0 * c / np.array(SIZES, dtype=np.float64)),
        "entangled": np.stack([
            c[:, 0] + c[:, 1],
            c[:, 1] - 0.5 * c[:, 2],
            c[:, 2],
            c[:, 3] + 4.0 * c[:, 4],
            c[:, 4] + splitmix_uniform(rows, 4),
            splitmix_uniform(rows, 5),
        ], axis=1),
        "random": np.stack([splitmix_uniform(rows, j) for j in range(6)], axis=1),
    }
    print(f"grid {SIZES}: {n} rows; first uniform values {splitmix_uniform(np.arange(3), 0)}")
    for name, codes in cases.items():
        score, gaps = mig(codes, f)
        print(f"{name}: mig = {score!r}")
        print(f"{name}: gaps = [{', '.join(repr(float(g)) for g in gaps)}]")




def write_dsprites_fixture(path):
    """A 3-image npz laid out like the official dSprites file, written by numpy itself
    (np.savez_compressed, with the pickled `metadata` entry the official file has), for
    crates/wae-data/tests/dsprites.rs. Rows: official indices 0, 1 and 737279."""
    sizes = np.array([1, 3, 6, 40, 32, 32])
    index = np.array([0, 1, 737279])
    classes = np.zeros((3, 6), dtype=np.int64)
    rest = index.copy()
    for k in reversed(range(6)):
        classes[:, k] = rest % sizes[k]
        rest //= sizes[k]
    grids = [np.array([1.0]), np.array([1.0, 2.0, 3.0]), np.linspace(0.5, 1, 6),
             np.linspace(0, 2 * np.pi, 40), np.linspace(0, 1, 32), np.linspace(0, 1, 32)]
    values = np.stack([grids[k][classes[:, k]] for k in range(6)], axis=1)
    imgs = np.zeros((3, 64, 64), dtype=np.uint8)
    imgs[0, 10:20, 30:40] = 1      # 100 pixels
    imgs[1, 0, :] = 1              # top row, 64 pixels
    imgs[2, 63, 63] = 1            # one corner pixel
    metadata = np.array({"latents_sizes": sizes, "note": "test fixture"}, dtype=object)
    np.savez_compressed(path, imgs=imgs, latents_values=values,
                        latents_classes=classes, metadata=metadata)
    print(f"wrote {path}: classes {classes.tolist()}")


if __name__ == "__main__":
    import sys
    if len(sys.argv) == 3 and sys.argv[1] == "--write-dsprites-fixture":
        write_dsprites_fixture(sys.argv[2])
    else:
        main()
