#!/usr/bin/env python3
"""Reference features of pytorch-fid's FID Inception-v3, for wae-metrics' tests.

Run:  python3 xtask/reference/inception_reference.py [--bench]
Writes crates/wae-metrics/tests/data/inception_reference_features.txt and
prints the small op references pasted into crates/wae-metrics/tests/inception.rs.

The network is pytorch-fid 0.3.0's `fid_inception_v3` wrapped by its
`InceptionV3(output_blocks=[3])` (resize to 299x299 bilinear,
align_corners=False; scale [0,1] -> [-1,1]; pool3 features). The architecture
is copied below from torchvision's `inception.py` (BasicConv2d, InceptionB,
InceptionD and the A/C/E layer layout) and pytorch-fid's `FIDInceptionA/C/E_1/E_2`
(count_include_pad=False average pools, max pool in Mixed_7c), because
torchvision is not installed here; when `pytorch_fid` and `torchvision` are
importable the script also builds pytorch-fid's own modules and checks that
they give identical features.

Weights come from a deterministic formula that Rust implements too
(`wae_metrics::testing::inception_formula_weights`): the state_dict keys except
`fc.*` and `*.num_batches_tracked`, sorted; key number k, element e (row-major)
gets u = splitmix64((k << 32) ^ e) >> 11 * 2^-53 and
  *.conv.weight      (2u - 1) * sqrt(6 / fan_in)   (He-uniform)
  *.bn.weight        0.5 + u
  *.bn.bias          0.2 (u - 0.5)
  *.bn.running_mean  0.2 (u - 0.5)
  *.bn.running_var   0.5 + u
computed in f64 and rounded to f32.

--bench times pytorch-fid's network on CPU (images/s, 299x299 inputs, batch 8)
for docs/performance.md.

--bench-json [--batch B] [--reps R] [--threads T] only times the network (no
reference outputs, nothing written) and prints one JSON line; `cargo xtask bench`
runs it as the Inception peer.
"""

import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(REPO, "crates", "wae-metrics", "tests", "data", "inception_reference_features.txt")


# --- torchvision.models.inception (the parts fid_inception_v3 keeps) ---------
class BasicConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)


class InceptionA(nn.Module):
    def __init__(self, in_channels, pool_features):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)


class InceptionB(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        branch3x3 = self.branch3x3(x)
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, branch3x3dbl, branch_pool], 1)


class InceptionC(nn.Module):
    def __init__(self, in_channels, channels_7x7):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        c7 = channels_7x7
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)


class InceptionD(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_1(x)
        b = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(b)))
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, b, branch_pool], 1)


class InceptionE(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)


# --- pytorch-fid's patched blocks -------------------------------------------
class FIDInceptionA(InceptionA):
    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)


class FIDInceptionC(InceptionC):
    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        bd = self.branch7x7dbl_3(self.branch7x7dbl_2(bd))
        bd = self.branch7x7dbl_5(self.branch7x7dbl_4(bd))
        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, b7, bd, branch_pool], 1)


class _FIDInceptionE(InceptionE):
    max_pool = False

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.max_pool:
            branch_pool = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, b3, bd, branch_pool], 1)


class FIDInceptionE_1(_FIDInceptionE):
    max_pool = False


class FIDInceptionE_2(_FIDInceptionE):
    max_pool = True


class FIDInceptionV3Pool3(nn.Module):
    """fid_inception_v3 (1008 classes, no aux logits) as used by pytorch-fid's InceptionV3([3])."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE_1(1280)
        self.Mixed_7c = FIDInceptionE_2(2048)
        self.fc = nn.Linear(2048, 1008)

    def forward(self, x):
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ["5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"]:
            x = getattr(self, "Mixed_" + name)(x)
        return F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)


# --- the weight formula (Rust: wae_metrics::testing) -------------------------
M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64_array(x):
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform_array(seed, n):
    e = np.arange(n, dtype=np.uint64)
    z = splitmix64_array((np.uint64(seed) << np.uint64(32)) ^ e)
    return (z >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)


def formula_keys(state_dict):
    return sorted(k for k in state_dict if not k.startswith("fc.") and not k.endswith("num_batches_tracked"))


def formula_tensor(index, key, shape):
    n = int(np.prod(shape))
    u = uniform_array(index, n)
    if key.endswith("conv.weight"):
        fan_in = int(np.prod(shape[1:]))
        v = (2.0 * u - 1.0) * math.sqrt(6.0 / fan_in)
    elif key.endswith("bn.weight") or key.endswith("bn.running_var"):
        v = 0.5 + u
    elif key.endswith("bn.bias") or key.endswith("bn.running_mean"):
        v = 0.2 * (u - 0.5)
    else:
        raise ValueError(key)
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def load_formula_weights(model):
    sd = model.state_dict()
    keys = formula_keys(sd)
    new = {k: formula_tensor(i, k, tuple(sd[k].shape)) for i, k in enumerate(keys)}
    model.load_state_dict(new, strict=False)
    return keys


# --- deterministic inputs (Rust: tests/inception.rs) -------------------------
def input_images(n, c, h, w, mult, add):
    k = np.arange(n * c * h * w, dtype=np.int64)
    vals = ((k * mult + add) % 1009).astype(np.float32) / np.float32(1008.0)
    return torch.from_numpy(vals.reshape(n, c, h, w))


def op_references():
    x = input_images(1, 1, 5, 7, 7919, 13)
    print("# resize 1x1x5x7 -> 3x11 (bilinear, align_corners=False), row-major")
    print(F.interpolate(x, size=(3, 11), mode="bilinear", align_corners=False).flatten().tolist())
    print("# resize 1x1x5x7 -> 8x4")
    print(F.interpolate(x, size=(8, 4), mode="bilinear", align_corners=False).flatten().tolist())
    print("# avg_pool2d 3x3 s1 p1 count_include_pad=False on 1x1x5x7")
    print(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False).flatten().tolist())
    y = x * 2 - 1
    print("# max_pool2d 3x3 s1 p1 on 2x - 1 (negative values) of 1x1x5x7")
    print(F.max_pool2d(y, 3, stride=1, padding=1).flatten().tolist())


def maybe_check_pytorch_fid(model, inputs):
    try:
        import pytorch_fid.inception as pfi  # noqa: F401
    except Exception as exc:  # torchvision missing, or pytorch-fid not installed
        print(f"# pytorch_fid not importable ({type(exc).__name__}: {exc}); used the copied architecture only")
        return
    inc = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    inc.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    inc.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    inc.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    inc.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    inc.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    inc.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    inc.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    inc.Mixed_7b = pfi.FIDInceptionE_1(1280)
    inc.Mixed_7c = pfi.FIDInceptionE_2(2048)
    inc.load_state_dict(model.state_dict())
    original = pfi.fid_inception_v3
    pfi.fid_inception_v3 = lambda: inc
    wrapper = pfi.InceptionV3([3]).eval()
    pfi.fid_inception_v3 = original
    for x in inputs:
        a = model(x)
        b = wrapper(x)[0].flatten(1)
        print("# pytorch_fid max abs difference", float((a - b).abs().max()))


def bench(model):
    for threads in (1, 2):
        torch.set_num_threads(threads)
        x = torch.rand(8, 3, 299, 299)
        with torch.no_grad():
            model(x[:2])
            t0 = time.perf_counter()
            reps = 2
            for _ in range(reps):
                model(x)
            dt = time.perf_counter() - t0
        print(f"bench pytorch-fid CPU threads={threads} batch=8 299x299: {reps * 8 / dt:.2f} images/s")


def bench_json():
    def opt(name, default):
        return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default

    batch, reps, threads = opt("--batch", 8), opt("--reps", 2), opt("--threads", 2)
    torch.set_num_threads(threads)
    model = FIDInceptionV3Pool3().eval()
    load_formula_weights(model)
    x = torch.rand(batch, 3, 299, 299, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model(x)  # one warm-up batch, as the Rust worker
        t0 = time.perf_counter()
        for _ in range(reps):
            model(x)
        dt = time.perf_counter() - t0
    print(json.dumps({"framework": "pytorch-fid network", "batch": batch, "reps": reps,
                      "images_per_s": reps * batch / dt, "torch": torch.__version__,
                      "threads": torch.get_num_threads()}), flush=True)


def main():
    if "--bench-json" in sys.argv:
        bench_json()
        return
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = FIDInceptionV3Pool3().eval()
    keys = load_formula_weights(model)
    n_params = sum(model.state_dict()[k].numel() for k in keys)
    print(f"# formula keys {len(keys)}, parameters {n_params}, first {keys[0]}, last {keys[-1]}")
    op_references()
    inputs = [input_images(1, 1, 28, 28, 7919, 13).repeat(1, 3, 1, 1), input_images(1, 3, 331, 307, 104729, 7)]
    rows = []
    with torch.no_grad():
        for x in inputs:
            f = model(x)[0].double().numpy()
            print(
                f"# input {tuple(x.shape)}: sum {f.sum():.9e} sumsq {(f * f).sum():.9e} "
                f"min {f.min():.6e} max {f.max():.6e} f[0] {f[0]:.9e} f[2047] {f[2047]:.9e}"
            )
            rows.append(f)
        maybe_check_pytorch_fid(model, inputs)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as fh:
        fh.write("# xtask/reference/inception_reference.py: pool3 features, one line per input\n")
        fh.write("# line 1: grey 1x1x28x28 (mult 7919, add 13) repeated to RGB; line 2: 1x3x331x307 (mult 104729, add 7)\n")
        for f in rows:
            fh.write(" ".join(f"{v:.8e}" for v in f) + "\n")
    print("# wrote", OUT)
    if "--bench" in sys.argv:
        bench(model)


if __name__ == "__main__":
    main()
