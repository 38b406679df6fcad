//! Improved precision and recall (Kynkaanniemi et al., NeurIPS 2019).
//!
//! Each set of features defines a manifold: the union of balls around its
//! points, each with the radius of the distance to its k-th nearest neighbour
//! in the same set (k = 3 in the paper). Precision is the fraction of
//! generated samples inside the real manifold (are samples realistic?);
//! recall is the fraction of real samples inside the generated manifold (is
//! the data covered?). A blurry model that covers every mode has high recall
//! and low precision; a sharp model that drops modes the opposite.
//!
//! As in the reference implementation (NVlabs/precision-recall), distances are
//! squared Euclidean from `|a|^2 + |b|^2 - 2 a.b` (clamped at 0), the k-th
//! neighbour excludes the point itself, and a point is inside a ball when its
//! distance is <= the radius.

use candle_core::{D, DType, Tensor};

use crate::{Error, Result};

/// Settings of [`precision_recall_with`].
#[derive(Debug, Clone, PartialEq)]
pub struct PrecisionRecallConfig {
    /// Neighbourhood size k (3 in the paper).
    pub k: usize,
    /// Rows of the distance matrix computed at once (memory: `row_batch x N` values).
    pub row_batch: usize,
}

impl Default for PrecisionRecallConfig {
    fn default() -> Self {
        Self {
            k: 3,
            row_batch: 1024,
        }
    }
}

/// Precision and recall, both in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrecisionRecall {
    /// Fraction of generated samples inside the real manifold.
    pub precision: f64,
    /// Fraction of real samples inside the generated manifold.
    pub recall: f64,
}

/// Improved precision and recall with k = 3 (see the module documentation).
///
/// `real`: (N, D), `generated`: (M, D) features (e.g. Inception pool3), same
/// device; computed in f64 if either is f64, else in f32. Needs N, M > k.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let real = Tensor::randn(0f32, 1., (64, 8), &Device::Cpu)?;
/// let pr = wae_metrics::precision_recall(&real, &real)?;
/// assert_eq!((pr.precision, pr.recall), (1.0, 1.0));
/// # Ok::<(), wae_metrics::Error>(())
/// ```
pub fn precision_recall(real: &Tensor, generated: &Tensor) -> Result<PrecisionRecall> {
    precision_recall_with(real, generated, &PrecisionRecallConfig::default())
}

/// [`precision_recall`] with explicit k and batch size.
pub fn precision_recall_with(
    real: &Tensor,
    generated: &Tensor,
    cfg: &PrecisionRecallConfig,
) -> Result<PrecisionRecall> {
    let (n, d) = real.dims2()?;
    let (m, d2) = generated.dims2()?;
    if d != d2 {
        return Err(Error::InvalidInput(format!(
            "precision_recall: feature dimensions differ ({d} vs {d2})"
        )));
    }
    if cfg.k == 0 || cfg.row_batch == 0 {
        return Err(Error::InvalidInput(
            "precision_recall: k and row_batch must be positive".into(),
        ));
    }
    if n <= cfg.k || m <= cfg.k {
        return Err(Error::InvalidInput(format!(
            "precision_recall: need more than k = {} samples per set, got {n} real and {m} generated",
            cfg.k
        )));
    }
    let dtype = if real.dtype() == DType::F64 || generated.dtype() == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    let real = real.to_dtype(dtype)?;
    let generated = generated.to_dtype(dtype)?;
    let real_radii = knn_radii(&real, cfg)?;
    let generated_radii = knn_radii(&generated, cfg)?;
    let precision = fraction_inside(&generated, &real, &real_radii, cfg)?;
    let recall = fraction_inside(&real, &generated, &generated_radii, cfg)?;
    Ok(PrecisionRecall { precision, recall })
}

/// Squared distances (rows of `a`) x (rows of `b`), clamped at 0, on the host as f64.
fn squared_distances(a: &Tensor, b: &Tensor, b_norms: &Tensor) -> Result<Vec<Vec<f64>>> {
    let a_norms = a.sqr()?.sum_keepdim(D::Minus1)?;
    let cross = a.matmul(&b.t()?)?;
    let d2 = cross
        .affine(-2.0, 0.0)?
        .broadcast_add(&a_norms)?
        .broadcast_add(b_norms)?
        .relu()?;
    Ok(d2.to_dtype(DType::F64)?.to_vec2::<f64>()?)
}

fn row_norms(x: &Tensor) -> Result<Tensor> {
    Ok(x.sqr()?.sum(D::Minus1)?.unsqueeze(0)?)
}

/// Squared distance of each row to its k-th nearest other row.
fn knn_radii(x: &Tensor, cfg: &PrecisionRecallConfig) -> Result<Vec<f64>> {
    let n = x.dim(0)?;
    let norms = row_norms(x)?;
    let mut radii = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let len = cfg.row_batch.min(n - start);
        let rows = squared_distances(&x.narrow(0, start, len)?, x, &norms)?;
        for (i, mut row) in rows.into_iter().enumerate() {
            // The point itself is at distance 0 (exactly, not only up to round-off).
            row[start + i] = 0.0;
            // Index k of the sorted row: the self-distance 0 takes index 0.
            let (_, kth, _) = row.select_nth_unstable_by(cfg.k, f64::total_cmp);
            radii.push(*kth);
        }
        start += len;
    }
    Ok(radii)
}

/// Fraction of rows of `queries` within `radii[i]` of some row i of `manifold`.
fn fraction_inside(
    queries: &Tensor,
    manifold: &Tensor,
    radii: &[f64],
    cfg: &PrecisionRecallConfig,
) -> Result<f64> {
    let q = queries.dim(0)?;
    let norms = row_norms(manifold)?;
    let mut inside = 0usize;
    let mut start = 0;
    while start < q {
        let len = cfg.row_batch.min(q - start);
        let rows = squared_distances(&queries.narrow(0, start, len)?, manifold, &norms)?;
        inside += rows
            .iter()
            .filter(|row| row.iter().zip(radii).any(|(d, r)| d <= r))
            .count();
        start += len;
    }
    Ok(inside as f64 / q as f64)
}
