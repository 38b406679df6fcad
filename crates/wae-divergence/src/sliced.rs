//! Sliced Wasserstein distance between two equally sized samples.

use candle_core::{DType, Device, Tensor};
use rand::Rng;
use rand_distr::StandardNormal;

use crate::{Error, Result, check};

/// `num_projections` directions drawn uniformly on the unit sphere of `R^d` from `rng`:
/// a `(d, num_projections)` tensor of `dtype` on `device` whose columns have unit norm.
pub fn random_projections<R: Rng + ?Sized>(
    d: usize,
    num_projections: usize,
    rng: &mut R,
    device: &Device,
    dtype: DType,
) -> Result<Tensor> {
    if d == 0 || num_projections == 0 {
        return Err(Error::InvalidArgument(format!(
            "cannot draw {num_projections} projections in dimension {d}"
        )));
    }
    if !dtype.is_float() {
        return Err(Error::NonFloatDType {
            name: "dtype",
            dtype,
        });
    }
    let mut columns = vec![0.0f64; d * num_projections];
    let mut direction = vec![0.0f64; d];
    for l in 0..num_projections {
        let norm = loop {
            direction
                .iter_mut()
                .for_each(|v| *v = rng.sample(StandardNormal));
            let norm = direction.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm > 0.0 {
                break norm;
            }
        };
        for (i, v) in direction.iter().enumerate() {
            columns[i * num_projections + l] = v / norm;
        }
    }
    Ok(
        Tensor::from_vec(columns, (d, num_projections), &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(device)?,
    )
}

/// Sliced Wasserstein distance to the power `p`, with `num_projections` random directions
/// drawn from `rng`: `SW_p^p(x, y) = mean_theta W_p^p(theta . x, theta . y)`.
///
/// `x` and `y` are `(n, d)` with the same `n` (the 1-d optimal transport then pairs the
/// sorted projections). Returns a scalar tensor, differentiable with respect to `x` and `y`
/// (the p-th power is returned, not its root, so the gradient stays finite at 0; this is the
/// penalty used by sliced-Wasserstein auto-encoders). `p >= 1`.
pub fn sliced_wasserstein<R: Rng + ?Sized>(
    x: &Tensor,
    y: &Tensor,
    num_projections: usize,
    p: f64,
    rng: &mut R,
) -> Result<Tensor> {
    let (_, _, d) = check::two_samples(x, "x", y, "y")?;
    let projections = random_projections(d, num_projections, rng, x.device(), x.dtype())?;
    sliced_wasserstein_with_projections(x, y, &projections, p)
}

/// [`sliced_wasserstein`] with given directions `projections` (`(d, L)`, columns are
/// used as they are; pass unit vectors for the usual definition).
pub fn sliced_wasserstein_with_projections(
    x: &Tensor,
    y: &Tensor,
    projections: &Tensor,
    p: f64,
) -> Result<Tensor> {
    let (n, m, d) = check::two_samples(x, "x", y, "y")?;
    if n != m {
        return Err(Error::ShapeMismatch(format!(
            "sliced Wasserstein needs equally sized samples, got {n} and {m}"
        )));
    }
    if n == 0 {
        return Err(Error::TooFewSamples {
            name: "x",
            needed: 1,
            got: 0,
        });
    }
    let (pd, num) = check::matrix(projections, "projections")?;
    if pd != d || num == 0 || projections.dtype() != x.dtype() {
        return Err(Error::ShapeMismatch(format!(
            "projections must be ({d}, L >= 1) of dtype {:?}, got {:?} {:?}",
            x.dtype(),
            projections.dims(),
            projections.dtype()
        )));
    }
    if !(p.is_finite() && p >= 1.0) {
        return Err(Error::InvalidArgument(format!(
            "p = {p} must be finite and >= 1"
        )));
    }
    let sorted = |t: &Tensor| -> Result<Tensor> {
        let projected = t.matmul(projections)?.t()?.contiguous()?; // (L, n)
        let order = projected.detach().arg_sort_last_dim(true)?;
        Ok(projected.gather(&order, 1)?)
    };
    let diff = (sorted(x)? - sorted(y)?)?;
    let cost = if p == 2.0 {
        diff.sqr()?
    } else if p == 1.0 {
        diff.abs()?
    } else {
        diff.abs()?.powf(p)?
    };
    Ok(cost.mean_all()?)
}
