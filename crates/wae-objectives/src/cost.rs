//! Reconstruction costs c(x, y) and decoder log-likelihoods.

use candle_core::{D, Tensor};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The cost c(x, G(z)) of a WAE, computed per image and averaged over the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CostKind {
    /// Squared Euclidean distance summed over pixels, ||x - y||_2^2 (the paper's choice).
    #[default]
    SquaredL2,
    /// Euclidean distance ||x - y||_2 = sqrt(1e-8 + ||x - y||_2^2).
    L2,
    /// Sum of absolute differences ||x - y||_1.
    L1,
    /// Bernoulli cross-entropy `-sum [x log y + (1 - x) log(1 - y)]` of data in [0, 1]
    /// against the decoder's sigmoid output (in training computed from the logits, as
    /// Rubenstein et al.'s `loss_reconstruction = 'bernoulli'`). Needs a sigmoid decoder.
    CrossEntropy,
}

impl CostKind {
    /// The factor the reference TensorFlow code multiplies this cost by
    /// (0.05 for squared L2, 0.2 for L2, 0.02 for L1); lambda = 10 on MNIST
    /// was tuned with these factors in place.
    pub fn reference_scale(self) -> f64 {
        match self {
            CostKind::SquaredL2 => 0.05,
            CostKind::L2 => 0.2,
            CostKind::L1 => 0.02,
            CostKind::CrossEntropy => 1.0,
        }
    }
}

fn per_image_flat(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    if x.dims() != y.dims() || x.rank() < 2 {
        return Err(Error::Shape {
            what: "reconstruction cost inputs",
            expected: format!("two equal shapes (N, ...), the first is {:?}", x.dims()),
            got: y.dims().to_vec(),
        });
    }
    let n = x.dim(0)?;
    Ok((x - y)?.reshape((n, ()))?)
}

/// Per-image cost c(x_i, y_i), shape `(N,)`, for images `x`, `y` of shape `(N, C, H, W)`
/// (any shape `(N, ...)`), without any scale factor.
pub fn per_image_cost(x: &Tensor, y: &Tensor, kind: CostKind) -> Result<Tensor> {
    let diff = per_image_flat(x, y)?;
    Ok(match kind {
        CostKind::SquaredL2 => diff.sqr()?.sum(D::Minus1)?,
        CostKind::L2 => (diff.sqr()?.sum(D::Minus1)? + 1e-8)?.sqrt()?,
        CostKind::L1 => diff.abs()?.sum(D::Minus1)?,
        CostKind::CrossEntropy => {
            let n = x.dim(0)?;
            let x = x.reshape((n, ()))?;
            let y = y.reshape((n, ()))?.clamp(1e-7, 1.0 - 1e-7)?;
            let one_minus = |t: &Tensor| t.affine(-1.0, 1.0);
            let log_likelihood = ((&x * y.log()?)? + (one_minus(&x)? * one_minus(&y)?.log()?)?)?;
            log_likelihood.sum(D::Minus1)?.neg()?
        }
    })
}

/// `scale * mean_i c(x_i, y_i)`, a scalar: the reconstruction term of a WAE.
pub fn reconstruction_cost(x: &Tensor, y: &Tensor, kind: CostKind, scale: f64) -> Result<Tensor> {
    Ok((per_image_cost(x, y, kind)?.mean_all()? * scale)?)
}

/// Negative Bernoulli log-likelihood `-log p(x | logits)` summed over pixels and
/// averaged over the batch, from decoder logits (numerically stable:
/// `max(l, 0) - x l + log(1 + exp(-|l|))`). `x` in [0, 1], shapes `(N, ...)`. On the
/// CPU (f32, f64) one fused op forward and backward (see `bernoulli.rs`).
pub fn bernoulli_nll(x: &Tensor, logits: &Tensor) -> Result<Tensor> {
    per_image_flat(x, logits)?; // shape check
    let n = x.dim(0)?;
    let x = x.reshape((n, ()))?;
    let l = logits.reshape((n, ()))?;
    Ok(crate::bernoulli::per_image_nll(&x, &l)?.mean_all()?)
}

/// Negative Gaussian log-likelihood `-log N(x; mean, variance I)` summed over pixels
/// (constant included) and averaged over the batch. Shapes `(N, ...)`.
pub fn gaussian_nll(x: &Tensor, mean: &Tensor, variance: f64) -> Result<Tensor> {
    let diff = per_image_flat(x, mean)?;
    let pixels = diff.dim(1)? as f64;
    let constant = 0.5 * pixels * (2.0 * std::f64::consts::PI * variance).ln();
    Ok(((diff.sqr()?.sum(D::Minus1)? / (2.0 * variance))?.mean_all()? + constant)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32], shape: (usize, usize, usize, usize)) -> Tensor {
        Tensor::from_slice(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn costs_by_hand() -> Result<()> {
        // two images of 1x1x2 pixels
        let x = t(&[0.0, 1.0, 0.5, 0.5], (2, 1, 1, 2));
        let y = t(&[1.0, 1.0, 0.0, 1.5], (2, 1, 1, 2));
        // diffs: [-1, 0], [0.5, -1]
        let sq = per_image_cost(&x, &y, CostKind::SquaredL2)?.to_vec1::<f32>()?;
        assert_eq!(sq, vec![1.0, 1.25]);
        let l1 = per_image_cost(&x, &y, CostKind::L1)?.to_vec1::<f32>()?;
        assert_eq!(l1, vec![1.0, 1.5]);
        let l2 = per_image_cost(&x, &y, CostKind::L2)?.to_vec1::<f32>()?;
        assert!((l2[1] - 1.25f32.sqrt()).abs() < 1e-6);
        let rc = reconstruction_cost(&x, &y, CostKind::SquaredL2, 0.05)?.to_scalar::<f32>()?;
        assert!((rc - 0.05 * 1.125).abs() < 1e-7);
        Ok(())
    }

    #[test]
    fn bernoulli_matches_direct_formula() -> Result<()> {
        let x = t(&[0.0, 1.0, 0.25, 1.0], (1, 1, 2, 2));
        let l = t(&[-3.0, 2.0, 0.5, 40.0], (1, 1, 2, 2));
        let got = bernoulli_nll(&x, &l)?.to_scalar::<f32>()? as f64;
        let mut want = 0f64;
        for (xi, li) in [(0.0f64, -3.0f64), (1.0, 2.0), (0.25, 0.5), (1.0, 40.0)] {
            let p = 1.0 / (1.0 + (-li).exp());
            want -= xi * p.ln() + (1.0 - xi) * (1.0 - p).max(1e-300).ln();
        }
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        assert!(got.is_finite());
        Ok(())
    }

    #[test]
    fn gaussian_nll_by_hand() -> Result<()> {
        let x = t(&[1.0, 2.0], (1, 1, 1, 2));
        let m = t(&[0.0, 2.0], (1, 1, 1, 2));
        let got = gaussian_nll(&x, &m, 0.5)?.to_scalar::<f32>()? as f64;
        let want = 1.0 / (2.0 * 0.5) + (2.0 * std::f64::consts::PI * 0.5).ln();
        assert!((got - want).abs() < 1e-5);
        Ok(())
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let x = t(&[0.0, 1.0], (1, 1, 1, 2));
        let y = t(&[0.0, 1.0, 2.0, 3.0], (1, 1, 2, 2));
        assert!(per_image_cost(&x, &y, CostKind::L1).is_err());
    }
}
