//! A full-covariance Gaussian mixture fitted by EM: the post-hoc sampler of an
//! auto-encoder (fit the mixture to the training codes, decode draws from it instead of
//! draws from the prior; Ghosh et al. 2020 "From variational to deterministic
//! autoencoders" call it ex-post density estimation).
//!
//! [`GaussianMixture::fit`] is seeded and deterministic: k-means++ picks the initial
//! means from the points, every component starts with the data's covariance and equal
//! weight, then EM runs until the mean log-likelihood improves by less than `tol` (or
//! `max_iter`). `reg` is added to every covariance diagonal (scikit-learn's `reg_covar`).

use ndarray::{Array1, Array2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// EM settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GmmConfig {
    /// Number of components.
    pub components: usize,
    /// Seed of the initialisation.
    pub seed: u64,
    /// At most this many EM iterations.
    pub max_iter: usize,
    /// Stop when the mean log-likelihood improves by less than this.
    pub tol: f64,
    /// Added to every covariance diagonal.
    pub reg: f64,
}

impl GmmConfig {
    /// `components` components, seed 0, 200 iterations, tol 1e-6, reg 1e-6.
    pub fn new(components: usize) -> Self {
        Self {
            components,
            seed: 0,
            max_iter: 200,
            tol: 1e-6,
            reg: 1e-6,
        }
    }
}

/// A fitted mixture.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianMixture {
    /// Component weights (sum 1).
    pub weights: Vec<f64>,
    /// Component means, `(K, d)`.
    pub means: Array2<f64>,
    /// Lower Cholesky factors of the covariances, one `(d, d)` each.
    pub chol: Vec<Array2<f64>>,
    /// Mean log-likelihood of the training points at the end.
    pub log_likelihood: f64,
    /// EM iterations run.
    pub iterations: usize,
}

/// Lower Cholesky factor of a symmetric positive definite matrix.
fn cholesky(a: &Array2<f64>) -> Result<Array2<f64>> {
    let d = a.nrows();
    let mut l = Array2::<f64>::zeros((d, d));
    for i in 0..d {
        for j in 0..=i {
            let mut sum = a[[i, j]];
            for k in 0..j {
                sum -= l[[i, k]] * l[[j, k]];
            }
            if i == j {
                if sum <= 0.0 || !sum.is_finite() {
                    return Err(Error::LinearAlgebra(
                        "a mixture covariance is not positive definite (raise reg)".into(),
                    ));
                }
                l[[i, i]] = sum.sqrt();
            } else {
                l[[i, j]] = sum / l[[j, j]];
            }
        }
    }
    Ok(l)
}

/// log N(x; mean, L L^T) for every row of `x`.
fn log_density(x: &Array2<f64>, mean: Array1<f64>, l: &Array2<f64>) -> Array1<f64> {
    let d = x.ncols();
    let log_det: f64 = (0..d).map(|i| l[[i, i]].ln()).sum::<f64>() * 2.0;
    let constant = -0.5 * (d as f64 * (2.0 * std::f64::consts::PI).ln() + log_det);
    let mut out = Array1::zeros(x.nrows());
    let mut y = vec![0.0; d];
    for (r, row) in x.rows().into_iter().enumerate() {
        // Solve L y = x - mean by forward substitution.
        let mut q = 0.0;
        for i in 0..d {
            let mut s = row[i] - mean[i];
            for k in 0..i {
                s -= l[[i, k]] * y[k];
            }
            y[i] = s / l[[i, i]];
            q += y[i] * y[i];
        }
        out[r] = constant - 0.5 * q;
    }
    out
}

impl GaussianMixture {
    /// Fits a mixture to the rows of `points` (see the module docs).
    pub fn fit(points: &Array2<f64>, cfg: &GmmConfig) -> Result<Self> {
        let (n, d) = points.dim();
        let k = cfg.components;
        if k == 0 || n < 2 * k || d == 0 {
            return Err(Error::InvalidInput(format!(
                "a {k}-component mixture needs at least {} points of positive dimension, got {n} x {d}",
                2 * k
            )));
        }
        if !(cfg.reg >= 0.0 && cfg.tol >= 0.0) {
            return Err(Error::InvalidInput("reg and tol must be >= 0".into()));
        }
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        // k-means++ initial means.
        let mut means = Array2::<f64>::zeros((k, d));
        let first = rng.random_range(0..n);
        means.row_mut(0).assign(&points.row(first));
        let mut nearest = vec![f64::INFINITY; n];
        for c in 1..k {
            let prev = means.row(c - 1).to_owned();
            for (i, row) in points.rows().into_iter().enumerate() {
                let dist: f64 = row
                    .iter()
                    .zip(prev.iter())
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                nearest[i] = nearest[i].min(dist);
            }
            let total: f64 = nearest.iter().sum();
            let mut target = rng.random::<f64>() * total;
            let mut pick = n - 1;
            for (i, &w) in nearest.iter().enumerate() {
                if target < w {
                    pick = i;
                    break;
                }
                target -= w;
            }
            means.row_mut(c).assign(&points.row(pick));
        }
        let mean_all = points.mean_axis(Axis(0)).expect("n > 0");
        let centred = points - &mean_all;
        let mut cov_all = centred.t().dot(&centred) / n as f64;
        for i in 0..d {
            cov_all[[i, i]] += cfg.reg;
        }
        let mut chol = vec![cholesky(&cov_all)?; k];
        let mut weights = vec![1.0 / k as f64; k];
        let mut previous = f64::NEG_INFINITY;
        let mut log_likelihood = f64::NEG_INFINITY;
        let mut iterations = 0;
        let mut resp = Array2::<f64>::zeros((n, k));
        for iter in 0..cfg.max_iter {
            iterations = iter + 1;
            // E step (log-sum-exp per point).
            for c in 0..k {
                let ld = log_density(points, means.row(c).to_owned(), &chol[c]);
                resp.column_mut(c).assign(&(ld + weights[c].ln()));
            }
            let mut total = 0.0;
            for mut row in resp.rows_mut() {
                let m = row.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
                let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
                let lse = m + s.ln();
                total += lse;
                row.mapv_inplace(|v| (v - lse).exp());
            }
            log_likelihood = total / n as f64;
            if log_likelihood - previous < cfg.tol {
                break;
            }
            previous = log_likelihood;
            // M step.
            for c in 0..k {
                let r = resp.column(c);
                let nk = r.sum().max(1e-12);
                weights[c] = nk / n as f64;
                let mean = r.dot(points) / nk;
                let diff = points - &mean;
                let weighted = &diff * &r.insert_axis(Axis(1));
                let mut cov = weighted.t().dot(&diff) / nk;
                for i in 0..d {
                    cov[[i, i]] += cfg.reg;
                }
                chol[c] = cholesky(&cov)?;
                means.row_mut(c).assign(&mean);
            }
        }
        Ok(Self {
            weights,
            means,
            chol,
            log_likelihood,
            iterations,
        })
    }

    /// `n` draws, `(n, d)`, from the mixture with a generator seeded by `seed`.
    pub fn sample(&self, n: usize, seed: u64) -> Array2<f64> {
        let d = self.means.ncols();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut out = Array2::zeros((n, d));
        for mut row in out.rows_mut() {
            let mut u = rng.random::<f64>();
            let mut c = self.weights.len() - 1;
            for (i, &w) in self.weights.iter().enumerate() {
                if u < w {
                    c = i;
                    break;
                }
                u -= w;
            }
            let eps: Array1<f64> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
            row.assign(&(self.chol[c].dot(&eps) + self.means.row(c)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn em_recovers_a_known_mixture_and_is_deterministic() {
        let truth = GaussianMixture {
            weights: vec![0.5, 0.3, 0.2],
            means: ndarray::arr2(&[[0.0, 0.0], [6.0, 1.0], [-3.0, 7.0]]),
            chol: vec![
                ndarray::arr2(&[[1.0, 0.0], [0.5, 0.8]]),
                ndarray::arr2(&[[0.6, 0.0], [0.0, 0.6]]),
                ndarray::arr2(&[[1.2, 0.0], [-0.4, 0.5]]),
            ],
            log_likelihood: 0.0,
            iterations: 0,
        };
        let points = truth.sample(3000, 11);
        let fit = GaussianMixture::fit(&points, &GmmConfig::new(3)).unwrap();
        // Match components by nearest mean.
        for (c, w) in truth.weights.iter().enumerate() {
            let target = truth.means.row(c);
            let (best, dist) = (0..3)
                .map(|j| {
                    let m = fit.means.row(j);
                    (
                        j,
                        ((m[0] - target[0]).powi(2) + (m[1] - target[1]).powi(2)).sqrt(),
                    )
                })
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            assert!(dist < 0.15, "component {c}: mean off by {dist} ({fit:?})");
            assert!((fit.weights[best] - w).abs() < 0.03, "{fit:?}");
            let cov = fit.chol[best].dot(&fit.chol[best].t());
            let want = truth.chol[c].dot(&truth.chol[c].t());
            assert!(
                (&cov - &want).iter().all(|v| v.abs() < 0.15),
                "{cov} vs {want}"
            );
        }
        assert_eq!(
            GaussianMixture::fit(&points, &GmmConfig::new(3)).unwrap(),
            fit
        );
        assert_eq!(fit.sample(10, 1), fit.sample(10, 1));
        assert!(
            GaussianMixture::fit(
                &points.slice(ndarray::s![..5, ..]).to_owned(),
                &GmmConfig::new(3)
            )
            .is_err()
        );
    }
}
