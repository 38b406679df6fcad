//! BatchNorm over the channel dimension (dimension 1), optionally followed by a ReLU, as
//! fused multithreaded candle custom ops with fused backward passes.

use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::conv::{cpu_slice, dispatch3};
use crate::cpu::{Elem, par_build, sum_f64};
use crate::profile::{OpKind, Pass, timed};
use crate::simd::multiversion;
use crate::{Error, Result};

/// The activation applied right after the normalisation, inside the same op.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activation {
    /// No activation: the op is a plain BatchNorm.
    #[default]
    Identity,
    /// `max(0, .)` after the affine transform (its gradient is taken as 0 where the output is 0).
    Relu,
}

/// The result of a training-mode BatchNorm.
#[derive(Clone, Debug)]
pub struct BatchNormOutput {
    /// The normalised (and activated) tensor, the shape of the input `(N, C, ...)`.
    pub output: Tensor,
    /// The per-channel mean of the batch, `(C)`, without gradient.
    pub batch_mean: Tensor,
    /// The per-channel biased variance of the batch (divided by the count `N * H * W`),
    /// `(C)`, without gradient. Multiply by `count / (count - 1)` for the unbiased
    /// estimate that running statistics usually track.
    pub batch_var: Tensor,
    /// How many values each channel's statistics were taken over (`N * H * W`).
    pub count: usize,
}

/// `(n, c, plane)` of a tensor normalised over dimension 1.
fn split_dims(shape: &Shape) -> Result<(usize, usize, usize)> {
    let dims = shape.dims();
    if dims.len() < 2 {
        return Err(Error::Shape(format!(
            "batch norm needs an (N, C, ...) input, got {shape:?}"
        )));
    }
    Ok((dims[0], dims[1], dims[2..].iter().product()))
}

fn check_channel_vec(t: &Tensor, c: usize, what: &str) -> Result<()> {
    if t.dims() != [c] {
        return Err(Error::Shape(format!(
            "batch norm {what} should have shape ({c}), got {:?}",
            t.shape()
        )));
    }
    Ok(())
}

/// Per-channel statistics kept by a training-mode op for its backward pass and its caller.
#[derive(Clone, Debug, Default)]
struct Stats {
    mean: Vec<f64>,
    var: Vec<f64>,
}

/// Training-mode BatchNorm: `(x, gamma, beta) -> act(gamma * (x - mean) / sqrt(var + eps) + beta)`.
struct BatchNormTrainOp {
    eps: f64,
    activation: Activation,
    stats: Arc<Mutex<Option<Stats>>>,
}

/// Eval-mode BatchNorm reduced to a per-channel affine map: `(x, scale, shift) -> act(x * scale + shift)`.
struct ChannelAffineOp {
    activation: Activation,
}

/// Sums with eight independent accumulators so that the compiler can vectorise them.
#[inline(always)]
fn sum8<T: Elem>(x: &[T], f: impl Fn(usize) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let full = x.len() / 8 * 8;
    let mut i = 0;
    while i < full {
        for (lane, a) in acc.iter_mut().enumerate() {
            *a += f(i + lane);
        }
        i += 8;
    }
    let mut total: f64 = acc.iter().sum();
    for j in full..x.len() {
        total += f(j);
    }
    total
}

/// Per-channel mean and biased variance (two passes, f64 accumulation).
fn channel_stats<T: Elem>(x: &[T], n: usize, c: usize, plane: usize) -> Stats {
    let (mean, var): (Vec<f64>, Vec<f64>) = (0..c)
        .into_par_iter()
        .map(|ch| channel_mean_var(x, n, c, plane, ch))
        .unzip();
    Stats { mean, var }
}

multiversion!(fn channel_mean_var<T: Elem>(x: &[T], n: usize, c: usize, plane: usize, ch: usize) -> (f64, f64) = channel_mean_var_body;);

#[inline(always)]
fn channel_mean_var_body<T: Elem>(
    x: &[T],
    n: usize,
    c: usize,
    plane: usize,
    ch: usize,
) -> (f64, f64) {
    let count = (n * plane).max(1) as f64;
    let chunks = || (0..n).map(move |s| &x[(s * c + ch) * plane..][..plane]);
    let mean = chunks().map(|v| sum8(v, |i| v[i].as_f64())).sum::<f64>() / count;
    let var = chunks()
        .map(|v| {
            sum8(v, |i| {
                let d = v[i].as_f64() - mean;
                d * d
            })
        })
        .sum::<f64>()
        / count;
    (mean, var)
}

/// `y = act(x * scale[ch] + shift[ch])`, in parallel over samples.
fn affine_forward<T: Elem>(
    x: &[T],
    c: usize,
    plane: usize,
    scale: &[T],
    shift: &[T],
    activation: Activation,
) -> Vec<T> {
    if plane == 0 || c == 0 {
        return vec![T::ZERO; x.len()];
    }
    let block = c * plane;
    // SAFETY: `affine_sample` writes every element of its sample.
    unsafe {
        par_build(x.len(), block, |s, ys| {
            affine_sample(
                &x[s * block..][..block],
                ys,
                c,
                plane,
                scale,
                shift,
                activation,
            )
        })
    }
}

multiversion!(fn affine_sample<T: Elem>(xs: &[T], ys: &mut [MaybeUninit<T>], c: usize, plane: usize, scale: &[T], shift: &[T], activation: Activation) = affine_sample_body;);

/// [`affine_forward`] on one sample `(c, plane)`: every element of `ys` is written.
#[inline(always)]
fn affine_sample_body<T: Elem>(
    xs: &[T],
    ys: &mut [MaybeUninit<T>],
    c: usize,
    plane: usize,
    scale: &[T],
    shift: &[T],
    activation: Activation,
) {
    for ch in 0..c {
        let (a, b) = (scale[ch], shift[ch]);
        let yo = &mut ys[ch * plane..(ch + 1) * plane];
        let xi = &xs[ch * plane..(ch + 1) * plane];
        match activation {
            Activation::Identity => {
                for (o, &v) in yo.iter_mut().zip(xi) {
                    o.write(v * a + b);
                }
            }
            Activation::Relu => {
                for (o, &v) in yo.iter_mut().zip(xi) {
                    let t = v * a + b;
                    o.write(if t > T::ZERO { t } else { T::ZERO });
                }
            }
        }
    }
}

/// The per-channel `(scale, shift)` of the forward pass's affine map `x * scale + shift`
/// (before the activation), from the batch statistics: the backward pass recomputes them
/// with the same operations, so they are the same bits.
fn affine_coefficients<T: Elem>(
    stats: &Stats,
    gamma: &[T],
    beta: &[T],
    eps: f64,
) -> (Vec<T>, Vec<T>) {
    let c = gamma.len();
    let mut scale = Vec::with_capacity(c);
    let mut shift = Vec::with_capacity(c);
    for ch in 0..c {
        let inv_std = 1.0 / (stats.var[ch] + eps).sqrt();
        let a = gamma[ch].as_f64() * inv_std;
        scale.push(T::of_f64(a));
        shift.push(T::of_f64(beta[ch].as_f64() - stats.mean[ch] * a));
    }
    (scale, shift)
}

/// The gradient reaching the affine output `t = x * a + b` through a ReLU: `grad` where
/// `t > 0`, else 0. The forward pass wrote `y = t` where `t > 0` and 0 elsewhere (NaN
/// included), so this is the mask of `y > 0`, read from `x` instead of from `y`: one
/// tensor fewer for both backward passes to read.
#[inline(always)]
fn relu_masked<T: Elem>(grad: T, x: T, a: T, b: T) -> T {
    if x * a + b > T::ZERO { grad } else { T::ZERO }
}

/// Per channel: `(sum g, sum g * (x - center))` with `g` the gradient, masked by the
/// ReLU of the affine map `relu` (per-channel scale and shift) when there is one.
fn grad_sums<T: Elem>(
    x: &[T],
    grad: &[T],
    relu: Option<(&[T], &[T])>,
    dims: (usize, usize, usize),
    center: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let (n, c, plane) = dims;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let relu = relu.map(|(a, b)| (a[ch], b[ch]));
            grad_sums_channel(x, grad, n, c, plane, ch, center[ch], relu)
        })
        .unzip()
}

multiversion!(fn grad_sums_channel<T: Elem>(x: &[T], grad: &[T], n: usize, c: usize, plane: usize, ch: usize, center: f64, relu: Option<(T, T)>) -> (f64, f64) = grad_sums_channel_body;);

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn grad_sums_channel_body<T: Elem>(
    x: &[T],
    grad: &[T],
    n: usize,
    c: usize,
    plane: usize,
    ch: usize,
    center: f64,
    relu: Option<(T, T)>,
) -> (f64, f64) {
    let mut sg = 0f64;
    let mut sgx = 0f64;
    // `g` and `g * (x - center)` of one plane, widened to f64, then each summed by
    // `sum_f64`: the same operations, lanes and order as summing them in one loop, but
    // in loops the compiler vectorises. Written as one loop (the ReLU mask, the widening
    // and both sums), it was scalar code (4.7 % of the width-4 training step).
    let (mut gw, mut gx) = (vec![0f64; plane], vec![0f64; plane]);
    for s in 0..n {
        let off = (s * c + ch) * plane;
        let (xs, gs) = (&x[off..off + plane], &grad[off..off + plane]);
        match relu {
            Some((a, b)) => {
                for ((w, &gv), &xv) in gw.iter_mut().zip(gs).zip(xs) {
                    *w = relu_masked(gv, xv, a, b).as_f64();
                }
            }
            None => {
                for (w, &gv) in gw.iter_mut().zip(gs) {
                    *w = gv.as_f64();
                }
            }
        }
        for ((p, &w), &xv) in gx.iter_mut().zip(&gw).zip(xs) {
            *p = w * (xv.as_f64() - center);
        }
        sg += sum_f64(&gw);
        sgx += sum_f64(&gx);
    }
    (sg, sgx)
}

/// `dx = k_grad[ch] * g + k_x[ch] * x + k_0[ch]`, with `g` the gradient (masked as in
/// [`grad_sums`]), in parallel over samples.
#[allow(clippy::too_many_arguments)]
fn input_grad<T: Elem>(
    x: &[T],
    grad: &[T],
    relu: Option<(&[T], &[T])>,
    c: usize,
    plane: usize,
    k_grad: &[T],
    k_x: &[T],
    k_0: &[T],
) -> Vec<T> {
    if plane == 0 || c == 0 {
        return vec![T::ZERO; x.len()];
    }
    let block = c * plane;
    // SAFETY: `input_grad_sample` writes every element of its sample.
    unsafe {
        par_build(x.len(), block, |s, out| {
            let off = s * block;
            let range = off..off + block;
            input_grad_sample(
                &x[range.clone()],
                &grad[range],
                relu,
                out,
                plane,
                k_grad,
                k_x,
                k_0,
            )
        })
    }
}

multiversion!(fn input_grad_sample<T: Elem>(xs: &[T], gs: &[T], relu: Option<(&[T], &[T])>, out: &mut [MaybeUninit<T>], plane: usize, k_grad: &[T], k_x: &[T], k_0: &[T]) = input_grad_sample_body;);

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn input_grad_sample_body<T: Elem>(
    xs: &[T],
    gs: &[T],
    relu: Option<(&[T], &[T])>,
    out: &mut [MaybeUninit<T>],
    plane: usize,
    k_grad: &[T],
    k_x: &[T],
    k_0: &[T],
) {
    for (ch, ((o, x), g)) in out
        .chunks_mut(plane)
        .zip(xs.chunks(plane))
        .zip(gs.chunks(plane))
        .enumerate()
    {
        let (kg, kx, k0) = (k_grad[ch], k_x[ch], k_0[ch]);
        if let Some((scale, shift)) = relu {
            let (a, b) = (scale[ch], shift[ch]);
            for ((o, &x), &g) in o.iter_mut().zip(x).zip(g) {
                o.write(kg * relu_masked(g, x, a, b) + kx * x + k0);
            }
        } else {
            for ((o, &x), &g) in o.iter_mut().zip(x).zip(g) {
                o.write(kg * g + kx * x + k0);
            }
        }
    }
}

impl BatchNormTrainOp {
    fn forward<T: Elem + WithDType>(
        &self,
        x: &[T],
        gamma: &[T],
        beta: &[T],
        dims: (usize, usize, usize),
    ) -> Vec<T> {
        let (n, c, plane) = dims;
        let stats = channel_stats(x, n, c, plane);
        let (scale, shift) = affine_coefficients(&stats, gamma, beta, self.eps);
        if let Ok(mut slot) = self.stats.lock() {
            *slot = Some(stats);
        }
        affine_forward(x, c, plane, &scale, &shift, self.activation)
    }

    #[allow(clippy::type_complexity)]
    fn backward<T: Elem + WithDType>(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        grad: &Tensor,
        want: [bool; 3],
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dims = split_dims(x.shape()).map_err(candle_core::Error::wrap)?;
        let (n, c, plane) = dims;
        let (x, gamma, beta, grad) = (
            x.contiguous()?,
            gamma.contiguous()?,
            beta.contiguous()?,
            grad.contiguous()?,
        );
        let (xs, xl) = x.storage_and_layout();
        let (gms, gml) = gamma.storage_and_layout();
        let (bs, bl) = beta.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let xv = cpu_slice::<T>(&xs, xl)?;
        let gammav = cpu_slice::<T>(&gms, gml)?;
        let betav = cpu_slice::<T>(&bs, bl)?;
        let gv = cpu_slice::<T>(&gs, gl)?;
        let stats = match self.stats.lock().ok().and_then(|s| s.clone()) {
            Some(s) => s,
            None => channel_stats(xv, n, c, plane),
        };
        // The ReLU's mask comes from `x` and the forward pass's affine map, not from the
        // output: one tensor fewer to read.
        let affine = (self.activation == Activation::Relu)
            .then(|| affine_coefficients(&stats, gammav, betav, self.eps));
        let relu = affine.as_ref().map(|(a, b)| (a.as_slice(), b.as_slice()));
        let (sg, sgx) = grad_sums(xv, gv, relu, dims, &stats.mean);
        let inv_std: Vec<f64> = stats
            .var
            .iter()
            .map(|v| 1.0 / (v + self.eps).sqrt())
            .collect();
        let dev = x.device().clone();
        let [want_x, want_gamma, want_beta] = want;
        let dx = if want_x {
            let count = (n * plane).max(1) as f64;
            let mut k_grad = Vec::with_capacity(c);
            let mut k_x = Vec::with_capacity(c);
            let mut k_0 = Vec::with_capacity(c);
            for ch in 0..c {
                // dx = gamma*istd * (g - mean(g) - xhat * mean(g * xhat))
                let a = gammav[ch].as_f64() * inv_std[ch];
                let kx = -a * inv_std[ch] * inv_std[ch] * sgx[ch] / count;
                k_grad.push(T::of_f64(a));
                k_x.push(T::of_f64(kx));
                k_0.push(T::of_f64(-a * sg[ch] / count - kx * stats.mean[ch]));
            }
            let dx = input_grad(xv, gv, relu, c, plane, &k_grad, &k_x, &k_0);
            Some(Tensor::from_vec(dx, x.shape(), &dev)?)
        } else {
            None
        };
        let to_tensor = |v: Vec<f64>| -> candle_core::Result<Tensor> {
            let v: Vec<T> = v.into_iter().map(T::of_f64).collect();
            Tensor::from_vec(v, c, &dev)
        };
        let dgamma = if want_gamma {
            Some(to_tensor(
                sgx.iter().zip(&inv_std).map(|(s, i)| s * i).collect(),
            )?)
        } else {
            None
        };
        let dbeta = if want_beta {
            Some(to_tensor(sg)?)
        } else {
            None
        };
        Ok((dx, dgamma, dbeta))
    }
}

impl CustomOp3 for BatchNormTrainOp {
    fn name(&self) -> &'static str {
        "wae-batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = split_dims(l1.shape()).map_err(candle_core::Error::wrap)?;
        let out = timed(OpKind::BatchNorm, Pass::Forward, || {
            dispatch3(
                self.name(),
                (s1, l1),
                (s2, l2),
                (s3, l3),
                |x, g, b| self.forward(x, g, b, dims),
                |x, g, b| self.forward(x, g, b, dims),
            )
        })?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let want = [x.track_op(), gamma.track_op(), beta.track_op()];
        timed(OpKind::BatchNorm, Pass::Backward, || match x.dtype() {
            DType::F32 => self.backward::<f32>(x, gamma, beta, grad, want),
            DType::F64 => self.backward::<f64>(x, gamma, beta, grad, want),
            dt => candle_core::bail!("wae batch norm backward: unsupported {dt:?}"),
        })
    }
}

impl ChannelAffineOp {
    #[allow(clippy::type_complexity)]
    fn backward<T: Elem + WithDType>(
        &self,
        x: &Tensor,
        scale: &Tensor,
        shift: &Tensor,
        grad: &Tensor,
        want: [bool; 3],
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dims = split_dims(x.shape()).map_err(candle_core::Error::wrap)?;
        let (_, c, plane) = dims;
        let (x, scale, shift, grad) = (
            x.contiguous()?,
            scale.contiguous()?,
            shift.contiguous()?,
            grad.contiguous()?,
        );
        let (xs, xl) = x.storage_and_layout();
        let (ss, sl) = scale.storage_and_layout();
        let (hs, hl) = shift.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let xv = cpu_slice::<T>(&xs, xl)?;
        let sv = cpu_slice::<T>(&ss, sl)?;
        let hv = cpu_slice::<T>(&hs, hl)?;
        // The ReLU's mask from `x * scale + shift`, as the forward pass computed it.
        let relu = (self.activation == Activation::Relu).then_some((sv, hv));
        let gv = cpu_slice::<T>(&gs, gl)?;
        let dev = x.device().clone();
        let [want_x, want_scale, want_shift] = want;
        let dx = if want_x {
            let zeros = vec![T::ZERO; c];
            let dx = input_grad(xv, gv, relu, c, plane, sv, &zeros, &zeros);
            Some(Tensor::from_vec(dx, x.shape(), &dev)?)
        } else {
            None
        };
        let (ds, dsh) = if want_scale || want_shift {
            let zero_center = vec![0f64; c];
            let (sg, sgx) = grad_sums(xv, gv, relu, dims, &zero_center);
            let to_tensor = |v: Vec<f64>| -> candle_core::Result<Tensor> {
                let v: Vec<T> = v.into_iter().map(T::of_f64).collect();
                Tensor::from_vec(v, c, &dev)
            };
            (
                want_scale.then(|| to_tensor(sgx)).transpose()?,
                want_shift.then(|| to_tensor(sg)).transpose()?,
            )
        } else {
            (None, None)
        };
        Ok((dx, ds, dsh))
    }
}

impl CustomOp3 for ChannelAffineOp {
    fn name(&self) -> &'static str {
        "wae-channel-affine"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (_, c, plane) = split_dims(l1.shape()).map_err(candle_core::Error::wrap)?;
        let act = self.activation;
        let out = timed(OpKind::BatchNorm, Pass::Forward, || {
            dispatch3(
                self.name(),
                (s1, l1),
                (s2, l2),
                (s3, l3),
                |x, a, b| affine_forward(x, c, plane, a, b, act),
                |x, a, b| affine_forward(x, c, plane, a, b, act),
            )
        })?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        scale: &Tensor,
        shift: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let want = [x.track_op(), scale.track_op(), shift.track_op()];
        timed(OpKind::BatchNorm, Pass::Backward, || match x.dtype() {
            DType::F32 => self.backward::<f32>(x, scale, shift, grad, want),
            DType::F64 => self.backward::<f64>(x, scale, shift, grad, want),
            dt => candle_core::bail!("wae channel affine backward: unsupported {dt:?}"),
        })
    }
}

fn activate(y: Tensor, activation: Activation) -> Result<Tensor> {
    Ok(match activation {
        Activation::Identity => y,
        Activation::Relu => y.relu()?,
    })
}

/// The `(1, C, 1, ...)` shape that broadcasts a per-channel vector against `x`.
fn channel_shape(x: &Tensor) -> Vec<usize> {
    x.dims()
        .iter()
        .enumerate()
        .map(|(i, &d)| if i == 1 { d } else { 1 })
        .collect()
}

/// Training-mode BatchNorm over dimension 1, with the activation fused in.
///
/// `x`: `(N, C, ...)`; `weight` (gamma) and `bias` (beta): `(C)`, or `None` for 1 and 0.
/// Normalises each channel with the batch mean and the biased batch variance (as PyTorch
/// and candle-nn do), then applies `activation`. The returned statistics carry no
/// gradient; updating running statistics is the caller's job.
///
/// On the CPU with f32 or f64 the statistics, the normalisation and the backward pass
/// each take one or two multithreaded passes over the data; elsewhere this is built from
/// candle ops.
///
/// ```
/// use candle_core::{Device, Tensor};
/// # fn main() -> wae_kernels::Result<()> {
/// let x = Tensor::arange(0f32, 24., &Device::Cpu)?.reshape((2, 3, 2, 2))?;
/// let out = wae_kernels::batch_norm_train(&x, None, None, 1e-5, wae_kernels::Activation::Relu)?;
/// assert_eq!(out.output.dims(), &[2, 3, 2, 2]);
/// assert_eq!(out.batch_mean.to_vec1::<f32>()?, vec![7.5, 11.5, 15.5]);
/// # Ok(())
/// # }
/// ```
pub fn batch_norm_train(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
    activation: Activation,
) -> Result<BatchNormOutput> {
    let (n, c, plane) = split_dims(x.shape())?;
    for (t, what) in [(weight, "weight"), (bias, "bias")] {
        if let Some(t) = t {
            check_channel_vec(t, c, what)?;
        }
    }
    let count = n * plane;
    if !crate::fast_path(x) {
        let dims: Vec<usize> = (0..x.rank()).filter(|&d| d != 1).collect();
        let cs = channel_shape(x);
        let mean = x.mean_keepdim(dims.as_slice())?;
        let centered = x.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(dims.as_slice())?;
        let mut y = centered.broadcast_div(&(&var + eps)?.sqrt()?)?;
        if let Some(w) = weight {
            y = y.broadcast_mul(&w.reshape(cs.as_slice())?)?;
        }
        if let Some(b) = bias {
            y = y.broadcast_add(&b.reshape(cs.as_slice())?)?;
        }
        return Ok(BatchNormOutput {
            output: activate(y, activation)?,
            batch_mean: mean.flatten_all()?.detach(),
            batch_var: var.flatten_all()?.detach(),
            count,
        });
    }
    let x = x.contiguous()?;
    let gamma = match weight {
        Some(w) => w.contiguous()?,
        None => Tensor::ones(c, x.dtype(), x.device())?,
    };
    let beta = match bias {
        Some(b) => b.contiguous()?,
        None => Tensor::zeros(c, x.dtype(), x.device())?,
    };
    let stats = Arc::new(Mutex::new(None));
    let op = BatchNormTrainOp {
        eps,
        activation,
        stats: Arc::clone(&stats),
    };
    let output = x.apply_op3(&gamma, &beta, op)?;
    let computed = stats
        .lock()
        .ok()
        .and_then(|s| s.clone())
        .ok_or_else(|| Error::Shape("batch norm statistics were not computed".into()))?;
    let to_tensor = |v: Vec<f64>| -> Result<Tensor> {
        Ok(Tensor::from_vec(v, c, x.device())?.to_dtype(x.dtype())?)
    };
    Ok(BatchNormOutput {
        output,
        batch_mean: to_tensor(computed.mean)?,
        batch_var: to_tensor(computed.var)?,
        count,
    })
}

/// Eval-mode BatchNorm over dimension 1 with the activation fused in:
/// `act((x - running_mean) / sqrt(running_var + eps) * weight + bias)`.
///
/// `x`: `(N, C, ...)`; `running_mean`, `running_var`, `weight`, `bias`: `(C)` (`None` weight
/// and bias mean 1 and 0). Gradients flow to `x`, `weight` and `bias` (and to the
/// running statistics if they track any).
pub fn batch_norm_eval(
    x: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
    activation: Activation,
) -> Result<Tensor> {
    let (_, c, _) = split_dims(x.shape())?;
    check_channel_vec(running_mean, c, "running mean")?;
    check_channel_vec(running_var, c, "running variance")?;
    for (t, what) in [(weight, "weight"), (bias, "bias")] {
        if let Some(t) = t {
            check_channel_vec(t, c, what)?;
        }
    }
    let inv_std = (running_var + eps)?.sqrt()?.recip()?;
    let scale = match weight {
        Some(w) => (w * inv_std)?,
        None => inv_std,
    };
    let shift = match bias {
        Some(b) => (b - (running_mean * &scale)?)?,
        None => (running_mean * &scale)?.neg()?,
    };
    if !crate::fast_path(x) {
        let cs = channel_shape(x);
        let y = x
            .broadcast_mul(&scale.reshape(cs.as_slice())?)?
            .broadcast_add(&shift.reshape(cs.as_slice())?)?;
        return activate(y, activation);
    }
    let x = x.contiguous()?;
    Ok(x.apply_op3(
        &scale.contiguous()?,
        &shift.contiguous()?,
        ChannelAffineOp { activation },
    )?)
}
