"""Reference numbers for crates/wae-metrics/tests/beta_vae_metric.rs.

The beta-VAE disentanglement metric as paruby/Wasserstein-Auto-Encoders computes it
(disentanglement_metric.py), on fixed codes instead of an encoder:

(a) the points: for each of B points, the mean over L pairs of |z1 - z2|
    (np.mean(np.abs(z1 - z2), axis=0), as generate_data does);
(b) the classifier: tf.layers.dense(d -> K) trained full-batch on the mean softmax
    cross-entropy with tf.train.AdagradOptimizer(1e-2) (initial_accumulator_value 0.1:
    accum += g^2; var -= lr * g / sqrt(accum), for kernel and bias), here written out in
    numpy float64 from a given initial kernel and a zero bias; printed: training accuracy
    (argmax of the logits, ties to the lowest class) and mean cross-entropy after a few
    step counts, and the trained kernel and bias after the last one.

Inputs are deterministic (no RNG shared between languages): everything comes from a
splitmix64 hash u(row, col) in [0, 1) of row * 1000 + col, as in
disentanglement_reference.py:
  label[b]        = floor(4 * u(b, 999))
  r               = b * L + l               (pair l of point b)
  z1[r, j]        = 3 u(r, j) - 1.5
  z2[r, j]        = 3 u(r, j + 100) - 1.5, except for j = 2 * label[b]:
                    z1[r, j] + 2.4 (u(r, j + 200) - 0.5)   (the shared factor moves the
                    code only a little)
  kernel0[j, k]   = (2 u(5000 + j, k) - 1) sqrt(6 / (d + K))   (Glorot-uniform range)
with B = 203 (not a multiple of 8), L = 30, d = 10, K = 4.

Run from the repository root (any Python 3 with numpy):
  python3 -m venv target/venv && target/venv/bin/pip install numpy
  target/venv/bin/python xtask/reference/beta_vae_metric_reference.py
"""
import numpy as np

B, L, D, K = 203, 30, 10, 4
STEPS = (1, 10, 300, 3000)
LR, ACCUM0 = 1e-2, 0.1


def splitmix_uniform(row, col):
    """u in [0, 1) from splitmix64 of row * 1000 + col (uint64 wrapping arithmetic)."""
    row = np.asarray(row, dtype=np.uint64)
    col = np.asarray(col, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = row * np.uint64(1000) + col
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def inputs():
    labels = np.floor(4 * splitmix_uniform(np.arange(B), 999)).astype(np.int64)
    rows = np.arange(B * L)[:, None]
    cols = np.arange(D)[None, :]
    z1 = 3 * splitmix_uniform(rows, cols) - 1.5
    z2 = 3 * splitmix_uniform(rows, cols + 100) - 1.5
    near = z1 + 2.4 * (splitmix_uniform(rows, cols + 200) - 0.5)
    shared = (cols == 2 * np.repeat(labels, L)[:, None])
    z2 = np.where(shared, near, z2)
    kernel0 = (2 * splitmix_uniform(5000 + np.arange(D)[:, None], np.arange(K)[None, :]) - 1) \
        * np.sqrt(6.0 / (D + K))
    return labels, z1.reshape(B, L, D), z2.reshape(B, L, D), kernel0


def points(z1, z2):
    return np.stack([np.mean(np.abs(z1[b] - z2[b]), axis=0) for b in range(B)])


def accuracy_and_loss(x, labels, w, b):
    logits = x @ w + b
    m = logits.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(logits - m).sum(axis=1))
    loss = np.mean(log_sum - (logits[np.arange(len(labels)), labels] - m[:, 0]))
    acc = np.mean(np.argmax(logits, axis=1) == labels)
    return acc, loss


def train(x, labels, kernel0, steps):
    onehot = np.eye(K)[labels]
    w, b = kernel0.copy(), np.zeros(K)
    acc_w, acc_b = np.full_like(w, ACCUM0), np.full_like(b, ACCUM0)
    n = len(labels)
    for _ in range(steps):
        logits = x @ w + b
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        g = (p - onehot) / n
        gw, gb = x.T @ g, g.sum(axis=0)
        acc_w += gw * gw
        acc_b += gb * gb
        w -= LR * gw / np.sqrt(acc_w)
        b -= LR * gb / np.sqrt(acc_b)
    return w, b


def main():
    labels, z1, z2, kernel0 = inputs()
    x = points(z1, z2)
    print("labels: first 8", labels[:8].tolist(), "counts", np.bincount(labels, minlength=K).tolist())
    print("z1[0, 0, :3]", repr(z1[0, 0, :3].tolist()))
    print("points: sum %r, weighted sum %r" % (float(x.sum()), float((x * (np.arange(B * D).reshape(B, D) % 7 + 1)).sum())))
    print("points[0]", repr(x[0].tolist()))
    print("points[202]", repr(x[202].tolist()))
    print("kernel0[0]", repr(kernel0[0].tolist()))
    acc, loss = accuracy_and_loss(x, labels, kernel0, np.zeros(K))
    print("steps 0: accuracy %r loss %r" % (float(acc), float(loss)))
    for steps in STEPS:
        w, b = train(x, labels, kernel0, steps)
        acc, loss = accuracy_and_loss(x, labels, w, b)
        print("steps %d: accuracy %r loss %r" % (steps, float(acc), float(loss)))
    print("kernel after %d steps (row-major)" % STEPS[-1], repr(w.ravel().tolist()))
    print("bias after %d steps" % STEPS[-1], repr(b.tolist()))


if __name__ == "__main__":
    main()
