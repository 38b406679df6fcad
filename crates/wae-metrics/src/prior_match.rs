//! Diagnostics of how samples and codes match: the Kernel Inception Distance with a
//! bootstrap interval, and the TwoNN estimate of the intrinsic dimension of a point cloud.
//!
//! - [`kid`]: KID (Binkowski et al. 2018, "Demystifying MMD GANs", section 4): the
//!   unbiased MMD^2 between two feature sets under the cubic polynomial kernel
//!   `k(x, y) = (x . y / d + 1)^3`, averaged over random subsets (without replacement
//!   within a subset) as their reference code and torch-fidelity do. The spread of the
//!   subset estimates gives a percentile interval.
//! - [`two_nn_dimension`]: TwoNN (Facco et al. 2017) in its maximum-likelihood form: for
//!   each point the ratio `mu = r2 / r1` of its second to first nearest-neighbour distance
//!   follows a Pareto law with exponent `d`, so `d = N / sum(ln mu)`. Codes that fill a
//!   d_z-dimensional prior give about d_z; codes on a curve give about 1 (the situation
//!   Rubenstein et al. describe).

use ndarray::{Array2, ArrayView1, Axis};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Settings of [`kid`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KidConfig {
    /// Number of random subsets (Binkowski et al.'s code and torch-fidelity: 100).
    pub subsets: usize,
    /// Points per subset from each set (1000 there; capped at the smaller set's size).
    pub subset_size: usize,
    /// Seed of the subset draws.
    pub seed: u64,
}

impl Default for KidConfig {
    fn default() -> Self {
        Self {
            subsets: 100,
            subset_size: 1000,
            seed: 0,
        }
    }
}

/// A KID estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Kid {
    /// Mean of the subset estimates (the reported KID).
    pub mean: f64,
    /// Their standard deviation (ddof 0, as torch-fidelity reports).
    pub std: f64,
    /// 2.5 % and 97.5 % percentiles of the subset estimates (linear interpolation).
    pub interval: [f64; 2],
    /// Subsets used and points per subset.
    pub subsets: usize,
    /// Points per subset.
    pub subset_size: usize,
}

fn check(a: &Array2<f64>, b: &Array2<f64>) -> Result<()> {
    if a.ncols() != b.ncols() || a.ncols() == 0 {
        return Err(Error::InvalidInput(format!(
            "KID needs two feature sets of the same positive dimension, got {} and {}",
            a.ncols(),
            b.ncols()
        )));
    }
    if a.nrows() < 2 || b.nrows() < 2 {
        return Err(Error::InvalidInput(
            "KID needs at least 2 points in each set".into(),
        ));
    }
    Ok(())
}

/// Unbiased MMD^2 between `x` and `y` (same number of rows) under the cubic polynomial
/// kernel: `mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean_{i, j} k(x_i, y_j)`,
/// the cross term over all pairs as in Binkowski et al.'s `polynomial_mmd`.
pub fn polynomial_mmd(x: &Array2<f64>, y: &Array2<f64>) -> Result<f64> {
    check(x, y)?;
    let d = x.ncols() as f64;
    let k = |a: &Array2<f64>, b: &Array2<f64>| a.dot(&b.t()).mapv(|v| (v / d + 1.0).powi(3));
    let (kxx, kyy, kxy) = (k(x, x), k(y, y), k(x, y));
    let (n, m) = (x.nrows() as f64, y.nrows() as f64);
    let off_diagonal = |g: &Array2<f64>| g.sum() - g.diag().sum();
    Ok(
        off_diagonal(&kxx) / (n * (n - 1.0)) + off_diagonal(&kyy) / (m * (m - 1.0))
            - 2.0 * kxy.sum() / (n * m),
    )
}

/// KID between `real` and `fake` features (rows are points): see the module docs.
pub fn kid(real: &Array2<f64>, fake: &Array2<f64>, cfg: &KidConfig) -> Result<Kid> {
    check(real, fake)?;
    if cfg.subsets == 0 || cfg.subset_size < 2 {
        return Err(Error::InvalidInput(
            "KID needs at least 1 subset of at least 2 points".into(),
        ));
    }
    let size = cfg.subset_size.min(real.nrows()).min(fake.nrows());
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut values = Vec::with_capacity(cfg.subsets);
    for _ in 0..cfg.subsets {
        let ri = sample(&mut rng, real.nrows(), size).into_vec();
        let fi = sample(&mut rng, fake.nrows(), size).into_vec();
        values.push(polynomial_mmd(
            &real.select(Axis(0), &ri),
            &fake.select(Axis(0), &fi),
        )?);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    values.sort_by(f64::total_cmp);
    Ok(Kid {
        mean,
        std,
        interval: [percentile(&values, 2.5), percentile(&values, 97.5)],
        subsets: cfg.subsets,
        subset_size: size,
    })
}

/// The `q`-th percentile of sorted `values` with linear interpolation (numpy's default).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// TwoNN intrinsic dimension of the rows of `points` (maximum-likelihood form, see the
/// module docs). Points whose nearest neighbour is at distance 0 (duplicates) are left
/// out. Needs at least 3 distinct points; `O(N^2 d)` time, so pass a few thousand.
pub fn two_nn_dimension(points: &Array2<f64>) -> Result<f64> {
    let n = points.nrows();
    if n < 3 {
        return Err(Error::InvalidInput("TwoNN needs at least 3 points".into()));
    }
    let sq = |a: ArrayView1<f64>, b: ArrayView1<f64>| -> f64 {
        a.iter().zip(b.iter()).map(|(x, y)| (x - y) * (x - y)).sum()
    };
    let mut log_sum = 0.0;
    let mut used = 0usize;
    for i in 0..n {
        let (mut r1, mut r2) = (f64::INFINITY, f64::INFINITY);
        for j in 0..n {
            if i == j {
                continue;
            }
            let d = sq(points.row(i), points.row(j));
            if d < r1 {
                r2 = r1;
                r1 = d;
            } else if d < r2 {
                r2 = d;
            }
        }
        if r1 > 0.0 && r2.is_finite() {
            // Squared distances: ln(r2 / r1) = ln(r2^2 / r1^2) / 2.
            log_sum += 0.5 * (r2 / r1).ln();
            used += 1;
        }
    }
    if used < 2 || log_sum <= 0.0 {
        return Err(Error::InvalidInput(
            "TwoNN: too few distinct points to estimate a dimension".into(),
        ));
    }
    Ok(used as f64 / log_sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, StandardNormal};

    fn gaussian(n: usize, d: usize, seed: u64) -> Array2<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        Array2::from_shape_fn((n, d), |_| StandardNormal.sample(&mut rng))
    }

    /// `X[i, j] = amp sin(a i + b j + phase) + slope j`, as in
    /// `xtask/reference/prior_match_reference.py`.
    fn formula(
        n: usize,
        d: usize,
        a: f64,
        b: f64,
        amp: f64,
        slope: f64,
        phase: f64,
    ) -> Array2<f64> {
        Array2::from_shape_fn((n, d), |(i, j)| {
            amp * (a * i as f64 + b * j as f64 + phase).sin() + slope * j as f64
        })
    }

    // Printed by `python3 xtask/reference/prior_match_reference.py` (NumPy, float64).
    const POLY_MMD_XY: f64 = 3.485603674081446;
    const POLY_MMD_XX: f64 = -0.39260538158872293;
    const TWO_NN_X: f64 = 1.2298256419968396;

    #[test]
    fn polynomial_mmd_and_two_nn_match_numpy() {
        let x = formula(40, 6, 0.37, 1.3, 1.5, 0.1, 0.0);
        let y = formula(40, 6, 0.23, 0.7, 1.2, -0.05, 0.5);
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
        assert!(rel(polynomial_mmd(&x, &y).unwrap(), POLY_MMD_XY) < 1e-12);
        let reversed = x.slice(ndarray::s![..;-1, ..]).to_owned();
        assert!(rel(polynomial_mmd(&x, &reversed).unwrap(), POLY_MMD_XX) < 1e-12);
        let z = formula(60, 5, 0.61, 0.9, 1.0, 0.2, 0.3);
        assert!(rel(two_nn_dimension(&z).unwrap(), TWO_NN_X) < 1e-12);
    }

    #[test]
    fn two_nn_finds_the_dimension_of_a_manifold() {
        // 2,000 points on a 3-dimensional linear subspace of R^10 and on a curve.
        let base = gaussian(2000, 3, 1);
        let lift = gaussian(3, 10, 2);
        let d3 = two_nn_dimension(&base.dot(&lift)).unwrap();
        assert!((d3 - 3.0).abs() < 0.3, "{d3}");
        let t = gaussian(2000, 1, 3);
        let curve = Array2::from_shape_fn((2000, 5), |(i, k)| (t[[i, 0]] * (k + 1) as f64).sin());
        let d1 = two_nn_dimension(&curve).unwrap();
        assert!((d1 - 1.0).abs() < 0.2, "{d1}");
        let d8 = two_nn_dimension(&gaussian(2000, 8, 4)).unwrap();
        assert!((d8 - 8.0).abs() < 1.0, "{d8}");
    }

    #[test]
    fn kid_is_near_zero_for_one_distribution_and_positive_for_two() {
        let a = gaussian(600, 16, 5);
        let b = gaussian(600, 16, 6);
        let shifted = b.mapv(|v| v + 0.5);
        let cfg = KidConfig {
            subsets: 20,
            subset_size: 200,
            seed: 1,
        };
        let same = kid(&a, &b, &cfg).unwrap();
        let apart = kid(&a, &shifted, &cfg).unwrap();
        assert!(same.mean.abs() < 3.0 * same.std.max(1e-3), "{same:?}");
        assert!(apart.mean > 10.0 * same.std, "{apart:?} vs {same:?}");
        assert!(apart.interval[0] <= apart.mean && apart.mean <= apart.interval[1]);
        assert_eq!(kid(&a, &b, &cfg).unwrap(), same, "deterministic per seed");
    }
}
