//! Input validation shared by every entry point.

use candle_core::Tensor;

use crate::{Error, Result};

/// Checks that `t` is a float tensor of rank 2 and returns `(rows, cols)`.
pub(crate) fn matrix(t: &Tensor, name: &'static str) -> Result<(usize, usize)> {
    float(t, name)?;
    match t.dims() {
        [rows, cols] => Ok((*rows, *cols)),
        dims => Err(Error::Rank {
            name,
            expected: 2,
            shape: dims.to_vec(),
        }),
    }
}

/// Checks that `t` has a float dtype.
pub(crate) fn float(t: &Tensor, name: &'static str) -> Result<()> {
    if t.dtype().is_float() {
        Ok(())
    } else {
        Err(Error::NonFloatDType {
            name,
            dtype: t.dtype(),
        })
    }
}

/// Checks that two sample matrices live in the same dimension; returns `(n, m, d)`.
pub(crate) fn two_samples(
    x: &Tensor,
    x_name: &'static str,
    y: &Tensor,
    y_name: &'static str,
) -> Result<(usize, usize, usize)> {
    let (n, dx) = matrix(x, x_name)?;
    let (m, dy) = matrix(y, y_name)?;
    if dx != dy {
        return Err(Error::ShapeMismatch(format!(
            "`{x_name}` has dimension {dx} but `{y_name}` has dimension {dy}"
        )));
    }
    if x.dtype() != y.dtype() {
        return Err(Error::ShapeMismatch(format!(
            "`{x_name}` has dtype {:?} but `{y_name}` has dtype {:?}",
            x.dtype(),
            y.dtype()
        )));
    }
    if dx == 0 {
        return Err(Error::InvalidArgument(format!(
            "`{x_name}` and `{y_name}` have dimension 0"
        )));
    }
    Ok((n, m, dx))
}

/// Checks that a variance is positive and finite.
pub(crate) fn variance(v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Error::NonPositiveVariance(v))
    }
}
