#!/usr/bin/env python3
"""PyTorch reference for crates/wae-nets: the same networks, built in torch.

Prints (1) parameter counts at width_div 1 for every architecture / encoder
kind, and (2) forward outputs for weights set by a deterministic formula on a
deterministic input, in train and eval mode, as Rust constants to paste into
crates/wae-nets/tests/torch_reference.rs.

The networks follow the WAE reference code (tolstikhin/wae, models.py) with
TensorFlow 'SAME' padding:
  conv k, stride s, side n -> ceil(n/s), total pad max((out-1)*s + k - n, 0),
  total//2 before, rest after (explicit F.pad when asymmetric);
  transposed conv = gradient of that conv: ConvTranspose2d(padding=before),
  cropped to n*s.

Deterministic weights (variable k in name-sorted order within a network,
flat row-major index i, t = sin(0.731*i + 1.13*(k+1))):
  *.running_mean: 0.1*t;  *.running_var: 1 + 0.5*t;  bn*.weight: 1 + 0.2*t;
  *.bias: 0.1*t;  other weights: 2/sqrt(fan_in)*t with fan_in = numel/out
  (out = dim 1 for transposed convs `deconv*`, dim 0 otherwise).
Inputs: images x[i] = 0.5 + 0.5*sin(0.37*i + 0.1) (flat over (N,C,H,W)),
codes z[i] = 1.5*sin(0.53*i + 0.3), implicit-encoder noise eps[i] = sin(0.91*i + 0.2).

Usage: python3 xtask/reference/nets_reference.py > /tmp/nets_ref.rs
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)  # reference values in f64; Rust runs f32

# (kernel, filters, encoder layers, decoder upsamplings, decoder start size)
DCGAN = {
    "mnist_dcgan": (4, 1024, 4, 2, 7),
    "celeba_dcgan": (5, 1024, 4, 3, 8),
    "dsprites": (4, 256, 4, 3, 8),
}
# (units, encoder layers, decoder layers)
FC = {"mlp": (256, 3, 3), "fading_squares": (1200, 2, 3)}
IMAGE = {
    "mnist_dcgan": (1, 28, 28),
    "mlp": (1, 28, 28),
    "celeba_dcgan": (3, 64, 64),
    "fading_squares": (1, 32, 32),
    "dsprites": (1, 64, 64),
}
PAPER_DZ = {"mnist_dcgan": 8, "celeba_dcgan": 64, "mlp": 4, "fading_squares": 2, "dsprites": 12}


def same_pad(n, k, s):
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2, out


class Conv2dSame(nn.Conv2d):
    def __init__(self, cin, cout, k, s):
        super().__init__(cin, cout, k, stride=s, padding=0)

    def forward(self, x):
        k, s = self.kernel_size[0], self.stride[0]
        t, b, _ = same_pad(x.shape[2], k, s)
        l, r, _ = same_pad(x.shape[3], k, s)
        return F.conv2d(F.pad(x, (l, r, t, b)), self.weight, self.bias, s)


class ConvTranspose2dSame(nn.ConvTranspose2d):
    def __init__(self, cin, cout, k, s):
        super().__init__(cin, cout, k, stride=s, padding=0)

    def forward(self, x):
        k, s = self.kernel_size[0], self.stride[0]
        out = x.shape[2] * s
        before, _, _ = same_pad(out, k, s)
        y = F.conv_transpose2d(x, self.weight, self.bias, s, padding=before)
        return y[:, :, :out, :out]


def bn(c, dims):
    return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(c, eps=1e-5, momentum=0.1)


class Encoder(nn.Module):
    def __init__(self, arch, dz, wd, kind):
        super().__init__()
        self.arch, self.dz, self.kind = arch, dz, kind
        c, h, w = IMAGE[arch]
        self.body = []
        if arch in DCGAN:
            k, filt, layers, _, _ = DCGAN[arch]
            cin = c
            for i in range(layers):
                cout = (filt >> (layers - 1 - i)) // wd
                setattr(self, f"conv{i}", Conv2dSame(cin, cout, k, 2))
                setattr(self, f"bn{i}", bn(cout, 2))
                self.body.append((f"conv{i}", f"bn{i}"))
                cin, h, w = cout, -(-h // 2), -(-w // 2)
            feat = cin * h * w
        else:
            units, layers, _ = FC[arch]
            units //= wd
            din = c * h * w
            for i in range(layers):
                setattr(self, f"fc{i}", nn.Linear(din, units))
                if arch == "mlp":
                    setattr(self, f"bn{i}", bn(units, 1))
                self.body.append((f"fc{i}", f"bn{i}" if arch == "mlp" else None))
                din = units
            feat = din
        self.fc = nn.Linear(feat, dz)
        if kind == "gaussian":
            self.fc_logvar = nn.Linear(feat, dz)
        if kind == "implicit":
            din = dz
            for i in range(3):
                units = max(2 * (i + 1) * dz, 2)
                setattr(self, f"noise_fc{i}", nn.Linear(din, units))
                din = units
            self.noise_matrix = nn.Linear(din, dz * dz)

    def forward(self, x, noise=None):
        h = x if self.arch in DCGAN else torch.flatten(x, 1)
        for layer, norm in self.body:
            h = getattr(self, layer)(h)
            if norm is not None:
                h = getattr(self, norm)(h)
            h = F.relu(h)
        h = torch.flatten(h, 1)
        mean = self.fc(h)
        if self.kind == "gaussian":
            return mean, self.fc_logvar(h)
        if self.kind == "implicit":
            a = mean
            for i in range(3):
                a = torch.tanh(getattr(self, f"noise_fc{i}")(a))
            a = self.noise_matrix(a).view(-1, self.dz, self.dz)
            return mean + torch.bmm(noise.view(-1, 1, self.dz), a).view(-1, self.dz), None
        return mean, None


class Decoder(nn.Module):
    def __init__(self, arch, dz, wd):
        super().__init__()
        self.arch = arch
        c, h, w = IMAGE[arch]
        self.image = (c, h, w)
        if arch in DCGAN:
            k, filt, _, ups, s0 = DCGAN[arch]
            c0 = filt // wd
            self.start = (c0, s0, s0)
            self.fc = nn.Linear(dz, c0 * s0 * s0)
            cin = c0
            for i in range(ups):
                cout = (filt >> (i + 1)) // wd
                setattr(self, f"deconv{i}", ConvTranspose2dSame(cin, cout, k, 2))
                setattr(self, f"bn{i}", bn(cout, 2))
                cin = cout
            self.ups = ups
            setattr(self, f"deconv{ups}", ConvTranspose2dSame(cin, c, k, 1))
        else:
            units, _, layers = FC[arch]
            units //= wd
            din = dz
            for i in range(layers):
                setattr(self, f"fc{i}", nn.Linear(din, units))
                if arch == "mlp":
                    setattr(self, f"bn{i}", bn(units, 1))
                din = units
            self.layers = layers
            self.fc_out = nn.Linear(din, c * h * w)

    def forward(self, z):
        n = z.shape[0]
        if self.arch in DCGAN:
            x = F.relu(self.fc(z)).view(n, *self.start)
            for i in range(self.ups):
                x = F.relu(getattr(self, f"bn{i}")(getattr(self, f"deconv{i}")(x)))
            return getattr(self, f"deconv{self.ups}")(x)
        x = z
        for i in range(self.layers):
            x = getattr(self, f"fc{i}")(x)
            if self.arch == "mlp":
                x = getattr(self, f"bn{i}")(F.relu(x))  # the WAE code: ReLU, then BN
            else:
                x = torch.tanh(x)
        return self.fc_out(x).view(n, *self.image)


class Discriminator(nn.Module):
    def __init__(self, dz, units, layers, prior_var=None):
        super().__init__()
        self.layers, self.dz, self.prior_var = layers, dz, prior_var
        din = dz
        for i in range(layers):
            setattr(self, f"fc{i}", nn.Linear(din, units))
            din = units
        self.fc_out = nn.Linear(din, 1)

    def forward(self, z):
        h = z
        for i in range(self.layers):
            h = F.relu(getattr(self, f"fc{i}")(h))
        out = self.fc_out(h)
        if self.prior_var is not None:
            v = self.prior_var
            out = out - (z * z).sum(1, keepdim=True) / (2 * v) - 0.5 * self.dz * math.log(2 * math.pi * v)
        return out


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def set_weights(module, prefix):
    """Sets every state entry (but num_batches_tracked) by the formula in the docstring."""
    sd = {f"{prefix}.{k}": v for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    with torch.no_grad():
        for k, name in enumerate(sorted(sd)):
            t = sd[name]
            i = torch.arange(t.numel(), dtype=torch.float64)
            s = torch.sin(0.731 * i + 1.13 * (k + 1))
            leaf = name.split(".")[-2]
            if name.endswith(".running_mean"):
                v = 0.1 * s
            elif name.endswith(".running_var"):
                v = 1.0 + 0.5 * s
            elif name.endswith(".bias"):
                v = 0.1 * s
            elif leaf.startswith("bn"):
                v = 1.0 + 0.2 * s
            else:
                out = t.shape[1] if leaf.startswith("deconv") else t.shape[0]
                v = 2.0 / math.sqrt(t.numel() / out) * s
            t.copy_(v.view(t.shape))


def pattern(shape, a, b, scale=1.0, offset=0.0):
    n = math.prod(shape)
    i = torch.arange(n, dtype=torch.float64)
    return (offset + scale * torch.sin(a * i + b)).view(*shape)


def image_input(arch, n):
    return pattern((n, *IMAGE[arch]), 0.37, 0.1, 0.5, 0.5)


def code_input(n, dz):
    return pattern((n, dz), 0.53, 0.3, 1.5)


def noise_input(n, dz):
    return pattern((n, dz), 0.91, 0.2)


PROBES = 8


def stats(t):
    """sum, sum of squares and PROBES values at evenly spaced flat indices."""
    flat = t.detach().reshape(-1)
    idx = [(j * (flat.numel() - 1)) // (PROBES - 1) for j in range(PROBES)]
    return float(flat.sum()), float((flat * flat).sum()), [float(flat[j]) for j in idx]


def first_bn_running(module):
    for name, buf in sorted(module.named_buffers()):
        if name.endswith("running_mean"):
            rv = dict(module.named_buffers())[name.replace("running_mean", "running_var")]
            return float(buf.sum()), float(rv.sum()), name
    return None


def fmt(x):
    return f"{x:.9e}"


def emit_case(name, module, prefix, run, train):
    set_weights(module, prefix)
    module.train(train)
    out = run(module)
    outs = out if isinstance(out, tuple) else (out,)
    print(f"    RefCase {{")
    print(f"        name: \"{name}\",")
    print(f"        train: {str(train).lower()},")
    print(f"        outputs: &[")
    for o in outs:
        if o is None:
            continue
        s, sq, probes = stats(o)
        print(f"            RefStats {{ shape: &{list(o.shape)}, sum: {fmt(s)}, sum_sq: {fmt(sq)}, probes: [{', '.join(fmt(p) for p in probes)}] }},")
    print(f"        ],")
    bnr = first_bn_running(module) if train else None
    if bnr is None:
        print(f"        running: None,")
    else:
        rm, rv, bname = bnr
        print(f"        running: Some((\"{prefix}.{bname.rsplit('.', 1)[0]}\", {fmt(rm)}, {fmt(rv)})),")
    print(f"    }},")


def main():
    print("// Generated by xtask/reference/nets_reference.py (torch %s); do not edit by hand." % torch.__version__)
    print()
    print("/// Parameter counts at width_div 1 (paper widths, paper latent dims).")
    print("pub const PARAM_COUNTS: &[(&str, &str, usize)] = &[")
    for arch in ["mnist_dcgan", "celeba_dcgan", "mlp", "fading_squares", "dsprites"]:
        dz = PAPER_DZ[arch]
        for kind in ["deterministic", "gaussian", "implicit"]:
            print(f"    (\"{arch}\", \"encoder_{kind}\", {n_params(Encoder(arch, dz, 1, kind))}),")
        print(f"    (\"{arch}\", \"decoder\", {n_params(Decoder(arch, dz, 1))}),")
    print("];")
    print(f"/// Discriminator (d_z 8, 4 x 512) parameters.")
    print(f"pub const DISCRIMINATOR_MNIST_PARAMS: usize = {n_params(Discriminator(8, 512, 4))};")
    print(f"/// Discriminator (d_z 64, 4 x 1024) parameters (the code's CelebA config).")
    print(f"pub const DISCRIMINATOR_CELEBA_PARAMS: usize = {n_params(Discriminator(64, 1024, 4))};")
    print()

    # Small cases for forward parity: (arch, width_div, batch)
    cases = [("mnist_dcgan", 16, 3), ("celeba_dcgan", 32, 2), ("dsprites", 8, 3), ("mlp", 8, 3), ("fading_squares", 40, 3)]
    print("/// Forward references: (architecture, width_div, batch) and the cases.")
    print("pub const REF_SETUPS: &[(&str, usize, usize)] = &[")
    for arch, wd, n in cases:
        print(f"    (\"{arch}\", {wd}, {n}),")
    print("];")
    print()
    print("pub const REF_CASES: &[RefCase] = &[")
    for arch, wd, n in cases:
        dz = PAPER_DZ[arch]
        x = image_input(arch, n)
        z = code_input(n, dz)
        eps = noise_input(n, dz)
        for train in (True, False):
            for kind in ["deterministic", "gaussian", "implicit"]:
                enc = Encoder(arch, dz, wd, kind)
                emit_case(f"{arch}/encoder_{kind}", enc, "encoder",
                          lambda m: m(x, eps), train)
            dec = Decoder(arch, dz, wd)
            act = torch.tanh if arch == "celeba_dcgan" else torch.sigmoid
            # outputs: logits, then the paper activation of them
            emit_case(f"{arch}/decoder", dec, "decoder", lambda m: (lambda o: (o, act(o)))(m(z)), train)
    for prior in (None, 2.0):
        disc = Discriminator(8, 512 // 16, 4, prior)
        z = code_input(3, 8)
        emit_case(f"discriminator/prior_{prior}", disc, "discriminator", lambda m: m(z), False)
    print("];")


if __name__ == "__main__":
    main()
