//! The negative Bernoulli log-likelihood from logits as one CPU op, forward and backward.
//!
//! Written with candle ops, [`crate::bernoulli_nll`] is ten element-wise ops forward
//! (`abs`, `neg`, `exp`, `+ 1`, `log`, `relu`, `*`, `-`, `+`, the sum) and about as many
//! again backward, each allocating a tensor of the decoder's output size and each
//! single-threaded. For the fully connected dSprites nets (batch 100, 4096 pixels) that was
//! 3.5 ms forward and 12-13 ms backward of a training step of about 65 ms. Here the
//! forward pass is one parallel loop over images, and the gradient with respect to the
//! logits, `(sigmoid(l) - x) * g`, one more.
//!
//! CPU tensors of f32 or f64 only; on other devices and dtypes, and with
//! `WAE_FORCE_FALLBACK=1` ([`wae_divergence::force_fallback`]), the candle-op formula
//! runs instead. Each image's sum is accumulated in f64.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Storage, Tensor, WithDType};
use rayon::prelude::*;

use crate::Result;

/// The per-image NLL `sum_p [max(l, 0) - x l + log(1 + exp(-|l|))]`, shape `(N,)`, for
/// `x` and `logits` of shape `(N, P)`. Fused on the CPU (see the module docs).
pub(crate) fn per_image_nll(x: &Tensor, logits: &Tensor) -> Result<Tensor> {
    if fused_applies(x, logits) {
        let (x, l) = (x.contiguous()?, logits.contiguous()?);
        return Ok(x.apply_op2(&l, BernoulliNll)?);
    }
    let softplus_neg_abs = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    let per_pixel = ((logits.relu()? - (x * logits)?)? + softplus_neg_abs)?;
    Ok(per_pixel.sum(candle_core::D::Minus1)?)
}

fn fused_applies(x: &Tensor, logits: &Tensor) -> bool {
    x.device().is_cpu()
        && logits.device().is_cpu()
        && x.dtype() == logits.dtype()
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && x.rank() == 2
        && x.dims() == logits.dims()
        && !wae_divergence::force_fallback()
}

/// The element types of the fused loops.
trait Real: WithDType + Copy + Send + Sync + PartialOrd {
    fn exp(self) -> Self;
    fn ln_1p(self) -> Self;
    fn abs(self) -> Self;
}

impl Real for f32 {
    fn exp(self) -> Self {
        f32::exp(self)
    }
    fn ln_1p(self) -> Self {
        f32::ln_1p(self)
    }
    fn abs(self) -> Self {
        f32::abs(self)
    }
}

impl Real for f64 {
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn ln_1p(self) -> Self {
        f64::ln_1p(self)
    }
    fn abs(self) -> Self {
        f64::abs(self)
    }
}

/// `max(l, 0) - x l + log(1 + exp(-|l|))`, the NLL of one pixel.
#[inline(always)]
fn pixel_nll<T: Real>(x: T, l: T) -> T {
    let zero = T::zero();
    let relu = if l > zero { l } else { zero };
    relu - x * l + (zero - l.abs()).exp().ln_1p()
}

/// `sigmoid(l) - x`, the NLL's derivative with respect to the logit, without overflow
/// (`exp` of a non-positive argument only).
#[inline(always)]
fn pixel_grad<T: Real>(x: T, l: T) -> T {
    let one = T::one();
    let e = (T::zero() - l.abs()).exp();
    let sigmoid = if l >= T::zero() {
        one / (one + e)
    } else {
        e / (one + e)
    };
    sigmoid - x
}

/// Images per parallel task: a few, so that the 4096-pixel rows of the dSprites nets make
/// tasks of tens of microseconds.
const ROWS_PER_TASK: usize = 4;

/// Per-image sums of `n` images of `p` pixels (zeros when `p` is 0).
fn forward<T: Real>(x: &[T], l: &[T], n: usize, p: usize) -> Vec<T> {
    let mut out = vec![T::zero(); n];
    out.par_chunks_mut(ROWS_PER_TASK)
        .enumerate()
        .for_each(|(task, sums)| {
            for (k, s) in sums.iter_mut().enumerate() {
                let at = (task * ROWS_PER_TASK + k) * p;
                let total: f64 = x[at..at + p]
                    .iter()
                    .zip(&l[at..at + p])
                    .map(|(&xv, &lv)| pixel_nll(xv, lv).to_f64())
                    .sum();
                *s = T::from_f64(total);
            }
        });
    out
}

/// `(sigmoid(l) - x) * g[image]`, and `-l * g[image]` when `want_x`.
fn backward<T: Real>(x: &[T], l: &[T], g: &[T], p: usize, want_x: bool) -> (Vec<T>, Vec<T>) {
    let dl = per_pixel(l.len(), g, p, |i, gi| pixel_grad(x[i], l[i]) * gi);
    let dx = if want_x {
        per_pixel(x.len(), g, p, |i, gi| T::zero() - l[i] * gi)
    } else {
        Vec::new()
    };
    (dl, dx)
}

/// `f(i, g[image])` for every element `i` of `len` (images of `p` pixels), in parallel
/// over [`ROWS_PER_TASK`] images at a time.
fn per_pixel<T: Real>(len: usize, g: &[T], p: usize, f: impl Fn(usize, T) -> T + Sync) -> Vec<T> {
    let mut out = vec![T::zero(); len];
    let chunk = ROWS_PER_TASK * p.max(1);
    out.par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(task, rows)| {
            for (k, row) in rows.chunks_mut(p.max(1)).enumerate() {
                let gi = g[task * ROWS_PER_TASK + k];
                let base = task * chunk + k * p;
                for (j, o) in row.iter_mut().enumerate() {
                    *o = f(base + j, gi);
                }
            }
        });
    out
}

/// The op: `(x, logits)` `(N, P)` -> per-image NLL `(N,)`.
struct BernoulliNll;

fn slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [T]> {
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("bernoulli nll: expected a contiguous tensor");
    };
    Ok(&s.as_slice::<T>()?[start..end])
}

impl CustomOp2 for BernoulliNll {
    fn name(&self) -> &'static str {
        "wae-bernoulli-nll"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, p) = match l1.dims() {
            [n, p] => (*n, *p),
            dims => candle_core::bail!("bernoulli nll: expected (N, P), got {dims:?}"),
        };
        let storage = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(forward::<f32>(slice(s1, l1)?, slice(s2, l2)?, n, p))
            }
            (CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(forward::<f64>(slice(s1, l1)?, slice(s2, l2)?, n, p))
            }
            _ => candle_core::bail!("bernoulli nll: needs two f32 or two f64 tensors"),
        };
        Ok((storage, Shape::from(n)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        logits: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let p = logits.dim(1)?;
        let want_x = x.track_op();
        // `x` and `logits` are the op's arguments, contiguous CPU tensors (see
        // `per_image_nll`): read in place. `grad_res` may be a broadcast view.
        let (xs, xl) = x.storage_and_layout();
        let (ls, ll) = logits.storage_and_layout();
        let (Storage::Cpu(xs), Storage::Cpu(ls)) = (&*xs, &*ls) else {
            candle_core::bail!("bernoulli nll: expected CPU tensors");
        };
        macro_rules! run {
            ($t:ty) => {{
                let gs = grad_res.to_dtype(x.dtype())?.to_vec1::<$t>()?;
                let (dl, dx) = backward::<$t>(slice(xs, xl)?, slice(ls, ll)?, &gs, p, want_x);
                let dl = Tensor::from_vec(dl, logits.shape(), logits.device())?;
                let dx = if want_x {
                    Some(Tensor::from_vec(dx, x.shape(), x.device())?)
                } else {
                    None
                };
                (dx, Some(dl))
            }};
        }
        Ok(match x.dtype() {
            DType::F32 => run!(f32),
            DType::F64 => run!(f64),
            dt => candle_core::bail!("bernoulli nll: unsupported dtype {dt:?}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Images without pixels give zeros (not a shorter vector), and a NaN logit makes its
    /// image's NLL NaN, as the formula's does (the trainer's NaN check relies on it).
    #[test]
    fn edge_cases() -> Result<()> {
        let dev = Device::Cpu;
        let empty = Tensor::zeros((3, 0), DType::F32, &dev)?;
        assert_eq!(
            per_image_nll(&empty, &empty)?.to_vec1::<f32>()?,
            vec![0.0; 3]
        );
        let x = Tensor::new(&[[0.5f32, 0.5], [0.5, 0.5]], &dev)?;
        let l = Tensor::new(&[[1.0f32, f32::NAN], [1.0, -1.0]], &dev)?;
        let v = per_image_nll(&x, &l)?.to_vec1::<f32>()?;
        assert!(v[0].is_nan() && v[1].is_finite(), "{v:?}");
        Ok(())
    }

    /// Fused values and gradients against the candle-op formula, f32 and f64, on logits
    /// from -60 to 60 (both tails of the softplus) and at 0.
    #[test]
    fn fused_matches_the_candle_formula() -> Result<()> {
        for dtype in [DType::F32, DType::F64] {
            let dev = Device::Cpu;
            let (n, p) = (9, 37);
            let x = Tensor::rand(0f32, 1f32, (n, p), &dev)?.to_dtype(dtype)?;
            let mut lv: Vec<f32> = (0..n * p)
                .map(|i| ((i * 7919) % 1201) as f32 / 10.0 - 60.0)
                .collect();
            lv[5] = 0.0;
            let l = Var::from_tensor(&Tensor::from_vec(lv, (n, p), &dev)?.to_dtype(dtype)?)?;
            let xv = Var::from_tensor(&x)?;
            let weights = Tensor::arange(1f32, (n + 1) as f32, &dev)?.to_dtype(dtype)?;
            let run = |fallback: bool| -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
                wae_divergence::set_force_fallback(fallback);
                let nll = per_image_nll(xv.as_tensor(), l.as_tensor());
                wae_divergence::set_force_fallback(false);
                let nll = nll?;
                let grads = (&nll * &weights)?.sum_all()?.backward()?;
                let v = |t: &Tensor| -> Result<Vec<f64>> {
                    Ok(t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?)
                };
                let dl = grads.get(l.as_tensor()).expect("a logit gradient");
                let dx = grads.get(xv.as_tensor()).expect("a data gradient");
                Ok((v(&nll)?, v(dl)?, v(dx)?))
            };
            let (fused, ops) = (run(false)?, run(true)?);
            let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
            let close = |a: &[f64], b: &[f64], what: &str, skip: Option<usize>| {
                assert_eq!(a.len(), b.len());
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    if Some(i) == skip {
                        continue;
                    }
                    assert!(
                        (x - y).abs() <= tol * y.abs().max(1.0),
                        "{what} {dtype:?} [{i}]: fused {x} vs ops {y}"
                    );
                }
            };
            close(&fused.0, &ops.0, "nll", None);
            // At a logit of exactly 0 candle's `abs` and `relu` have derivative 0, so the
            // formula's gradient is -x there; the true derivative is 1/2 - x.
            close(&fused.1, &ops.1, "d/dlogits", Some(5));
            let x5 = x.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?[5];
            assert!((fused.1[5] - (0.5 - x5)).abs() <= tol, "d/dlogit at 0");
            close(&fused.2, &ops.2, "d/dx", None);
        }
        Ok(())
    }
}
