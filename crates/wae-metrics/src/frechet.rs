//! Gaussian statistics of features and the Frechet distance between them (FID).
//!
//! pytorch-fid computes `tr sqrtm(S1 S2)` with `scipy.linalg.sqrtm`, a Schur
//! decomposition of the non-symmetric product, which is slow at D = 2048 and
//! produces complex round-off. We use the identity
//!
//! ```text
//! tr sqrtm(S1 S2) = sum_i sqrt(mu_i),   mu = eig(sqrt(S1) S2 sqrt(S1))
//! ```
//!
//! which holds for symmetric positive semi-definite S1, S2: with `A = sqrt(S1)`
//! and `B = sqrt(S1) S2`, `S1 S2 = AB` and `sqrt(S1) S2 sqrt(S1) = BA` have the
//! same eigenvalues, and the latter is symmetric PSD, so they are real and
//! non-negative (also when S1 is singular). In practice: one symmetric
//! eigendecomposition `S1 = V diag(l) V^T`, then `M = diag(sqrt l) (V^T S2 V)
//! diag(sqrt l)` (same eigenvalues as `sqrt(S1) S2 sqrt(S1)`), then the
//! eigenvalues of the symmetric `M`. Both are faer's self-adjoint solvers, so
//! the result is real by construction. Eigenvalues of S1 below
//! `max(l) * D * f64::EPSILON` are treated as its null space (always present
//! when there are fewer samples than dimensions) and M is reduced to the range
//! of S1, which removes `sqrt(round-off)` noise and makes singular covariances
//! cheaper.
//!
//! pytorch-fid's safeguards map as follows: negative round-off eigenvalues
//! contribute `sqrt(max(mu, 0))`, the real part that pytorch-fid keeps; an
//! eigenvalue below `-(1e-3)^2` (an imaginary part above pytorch-fid's
//! tolerance of 1e-3) is an [`Error::ImaginaryComponent`]; when the
//! eigen-solver fails or the result is not finite, the computation is repeated
//! with `eps * I` (eps = 1e-6) added to both covariances, as pytorch-fid does.
//! `xtask/reference/metrics_reference.py` checks the two formulas against each
//! other (relative differences 1e-15 for full-rank covariances, 1e-8 for
//! singular ones, where scipy's own sqrtm is the less accurate of the two).

use candle_core::{DType, Tensor};
use faer::{Mat, MatRef, Side};
use ndarray::{Array1, Array2};

use crate::{Error, Result};

/// Diagonal offset pytorch-fid adds when `sqrtm(S1 S2)` is not finite.
pub const FRECHET_EPS: f64 = 1e-6;

/// Rows of centred features multiplied at once when fitting a covariance.
const COV_BLOCK_ROWS: usize = 4096;

/// Largest imaginary part of `sqrtm(S1 S2)` that pytorch-fid tolerates.
pub const IMAGINARY_TOLERANCE: f64 = 1e-3;

/// Mean and covariance of a set of feature vectors: the Gaussian that FID fits.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianStats {
    mean: Array1<f64>,
    cov: Array2<f64>,
    count: usize,
}

impl GaussianStats {
    /// Fits the Gaussian to `features`, (N, D) with N >= 2: the mean over rows
    /// (D) and the unbiased covariance (D, D) with ddof = 1, as `np.cov(x,
    /// rowvar=False)` in pytorch-fid.
    pub fn from_features(features: &Array2<f64>) -> Result<Self> {
        let (n, d) = features.dim();
        if n < 2 {
            return Err(Error::InvalidInput(format!(
                "GaussianStats::from_features needs at least 2 feature vectors, got {n}"
            )));
        }
        if d == 0 {
            return Err(Error::InvalidInput(
                "GaussianStats::from_features: features have dimension 0".into(),
            ));
        }
        if features.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidInput(
                "GaussianStats::from_features: features contain NaN or infinity".into(),
            ));
        }
        let mean = features.mean_axis(ndarray::Axis(0)).ok_or_else(|| {
            Error::InvalidInput("GaussianStats::from_features: empty features".into())
        })?;
        // Scatter matrix accumulated over row blocks, so that 50k x 2048 features do
        // not need a second full-size centred copy.
        let mut scatter = Mat::<f64>::zeros(d, d);
        let mut start = 0;
        while start < n {
            let len = COV_BLOCK_ROWS.min(n - start);
            let centred = Mat::<f64>::from_fn(len, d, |i, j| features[[start + i, j]] - mean[j]);
            scatter += centred.transpose() * &centred;
            start += len;
        }
        let scale = 1.0 / (n - 1) as f64;
        // Symmetrise explicitly: the blocked product is symmetric only up to round-off.
        let cov = Array2::from_shape_fn((d, d), |(i, j)| {
            0.5 * (scatter[(i, j)] + scatter[(j, i)]) * scale
        });
        Ok(Self {
            mean,
            cov,
            count: n,
        })
    }

    /// Fits the Gaussian to a (N, D) feature tensor of any float dtype (see
    /// [`GaussianStats::from_features`]).
    pub fn from_tensor(features: &Tensor) -> Result<Self> {
        let (n, d) = features.dims2()?;
        let flat = features
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        let array = Array2::from_shape_vec((n, d), flat)
            .map_err(|e| Error::InvalidInput(format!("feature tensor: {e}")))?;
        Self::from_features(&array)
    }

    /// Builds statistics from a known mean (D) and covariance (D, D) fitted to
    /// `count` samples (e.g. read from a cache file).
    pub fn new(mean: Array1<f64>, cov: Array2<f64>, count: usize) -> Result<Self> {
        let d = mean.len();
        if cov.dim() != (d, d) {
            return Err(Error::InvalidInput(format!(
                "GaussianStats::new: mean has dimension {d} but the covariance is {:?}",
                cov.dim()
            )));
        }
        if mean.iter().chain(cov.iter()).any(|v| !v.is_finite()) {
            return Err(Error::InvalidInput(
                "GaussianStats::new: mean or covariance contain NaN or infinity".into(),
            ));
        }
        Ok(Self { mean, cov, count })
    }

    /// The mean, shape (D).
    pub fn mean(&self) -> &Array1<f64> {
        &self.mean
    }

    /// The covariance (ddof = 1), shape (D, D).
    pub fn cov(&self) -> &Array2<f64> {
        &self.cov
    }

    /// How many feature vectors the statistics were fitted to.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The feature dimension D.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }
}

/// Frechet distance between two Gaussians, the FID when the statistics are of
/// Inception pool3 features:
/// `||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr sqrtm(S1 S2)`.
///
/// Matches pytorch-fid's `calculate_frechet_distance` to ~1e-15 relative for
/// full-rank covariances (see the module documentation for the eigenvalue
/// formula used for `tr sqrtm(S1 S2)` and how pytorch-fid's safeguards map).
/// Takes about a second at D = 2048 (see docs/performance.md).
///
/// ```
/// use ndarray::Array2;
/// use wae_metrics::{frechet_distance, GaussianStats};
/// let x = Array2::from_shape_fn((50, 4), |(i, j)| ((i * 7 + j * 3) % 11) as f64);
/// let stats = GaussianStats::from_features(&x)?;
/// // A distribution is at distance 0 from itself.
/// assert!(frechet_distance(&stats, &stats)?.abs() < 1e-9);
/// # Ok::<(), wae_metrics::Error>(())
/// ```
pub fn frechet_distance(a: &GaussianStats, b: &GaussianStats) -> Result<f64> {
    let d = a.dim();
    if b.dim() != d {
        return Err(Error::InvalidInput(format!(
            "frechet_distance: dimensions differ ({d} vs {})",
            b.dim()
        )));
    }
    let mean_term: f64 = a
        .mean
        .iter()
        .zip(b.mean.iter())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    let trace_a: f64 = a.cov.diag().sum();
    let trace_b: f64 = b.cov.diag().sum();
    let s1 = to_faer(&a.cov);
    let s2 = to_faer(&b.cov);
    let tr_covmean = match trace_sqrt_product(s1.as_ref(), s2.as_ref()) {
        Ok(value) if value.is_finite() => value,
        Err(Error::ImaginaryComponent(m)) => return Err(Error::ImaginaryComponent(m)),
        _ => {
            tracing::warn!(
                "fid calculation produces singular product; adding {FRECHET_EPS} to diagonal of cov estimates"
            );
            let s1 = Mat::<f64>::from_fn(d, d, |i, j| {
                s1[(i, j)] + if i == j { FRECHET_EPS } else { 0.0 }
            });
            let s2 = Mat::<f64>::from_fn(d, d, |i, j| {
                s2[(i, j)] + if i == j { FRECHET_EPS } else { 0.0 }
            });
            let value = trace_sqrt_product(s1.as_ref(), s2.as_ref())?;
            if !value.is_finite() {
                return Err(Error::LinearAlgebra(
                    "tr sqrtm(S1 S2) is not finite even with eps * I offsets".into(),
                ));
            }
            value
        }
    };
    Ok(mean_term + trace_a + trace_b - 2.0 * tr_covmean)
}

fn to_faer(x: &Array2<f64>) -> Mat<f64> {
    let (r, c) = x.dim();
    Mat::from_fn(r, c, |i, j| x[[i, j]])
}

/// `tr sqrtm(S1 S2)` for symmetric PSD S1, S2 via the eigenvalues of
/// `diag(sqrt l) V^T S2 V diag(sqrt l)` where `S1 = V diag(l) V^T`.
pub(crate) fn trace_sqrt_product(s1: MatRef<'_, f64>, s2: MatRef<'_, f64>) -> Result<f64> {
    let d = s1.nrows();
    let evd = s1
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::LinearAlgebra(format!("eigendecomposition of sigma1: {e:?}")))?;
    let v = evd.U();
    let lambda = evd.S().column_vector();
    let min_lambda = (0..d).map(|i| lambda[i]).fold(f64::INFINITY, f64::min);
    let max_lambda = (0..d).map(|i| lambda[i]).fold(0.0, f64::max);
    check_imaginary(min_lambda)?;
    // Eigenvalues of S1 at round-off level are its null space (always there when
    // fewer samples than dimensions): they contribute exact zero rows and columns to
    // M, so M is reduced to the range of S1. This removes the sqrt(round-off) noise
    // that would otherwise add up over the null space, and shrinks the problem.
    let null_threshold = max_lambda * d as f64 * f64::EPSILON;
    let range: Vec<usize> = (0..d).filter(|&i| lambda[i] > null_threshold).collect();
    if range.is_empty() {
        return Ok(0.0);
    }
    let v_range = Mat::<f64>::from_fn(d, range.len(), |i, j| v[(i, range[j])]);
    let root: Vec<f64> = range.iter().map(|&i| lambda[i].sqrt()).collect();
    let rotated = v_range.transpose() * (s2 * &v_range);
    let r = range.len();
    let m = Mat::<f64>::from_fn(r, r, |i, j| root[i] * rotated[(i, j)] * root[j]);
    let mu = m
        .self_adjoint_eigenvalues(Side::Lower)
        .map_err(|e| Error::LinearAlgebra(format!("eigenvalues of sqrt(S1) S2 sqrt(S1): {e:?}")))?;
    let min_mu = mu.iter().copied().fold(f64::INFINITY, f64::min);
    check_imaginary(min_mu)?;
    Ok(mu.iter().map(|m| m.max(0.0).sqrt()).sum())
}

fn check_imaginary(min_eigenvalue: f64) -> Result<()> {
    if min_eigenvalue < 0.0 {
        let imaginary = (-min_eigenvalue).sqrt();
        if imaginary > IMAGINARY_TOLERANCE {
            return Err(Error::ImaginaryComponent(imaginary));
        }
    }
    Ok(())
}
