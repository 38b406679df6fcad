//! Principal component analysis for 2-d views of latent codes.

use crate::{Error, Result};

/// A fitted PCA: the mean and the leading principal directions of a point set.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// Mean of the fitted points, `(d,)`.
    pub mean: Vec<f64>,
    /// Principal directions as unit vectors, `(k, d)`, by decreasing variance.
    /// Each is signed so that its largest-magnitude coordinate is positive.
    pub components: Vec<Vec<f64>>,
    /// Variance of the points along each component (population variance).
    pub explained_variance: Vec<f64>,
    /// Total variance (the trace of the covariance), for explained fractions.
    pub total_variance: f64,
}

impl Pca {
    /// Fits `k` components to `n` points of dimension `d` stored row-major in
    /// `points` (`n * d` values). Needs `n >= 2` and `1 <= k <= d`.
    ///
    /// ```
    /// // Points on the line y = 2x: one component carries all the variance.
    /// let points: Vec<f32> = (0..10).flat_map(|i| [i as f32, 2.0 * i as f32]).collect();
    /// let pca = wae_viz::Pca::fit(&points, 2, 1)?;
    /// let c = &pca.components[0];
    /// assert!((c[0] - 1.0 / 5f64.sqrt()).abs() < 1e-9 && (c[1] - 2.0 / 5f64.sqrt()).abs() < 1e-9);
    /// assert!((pca.explained_variance[0] - pca.total_variance).abs() < 1e-9);
    /// # Ok::<(), wae_viz::Error>(())
    /// ```
    pub fn fit(points: &[f32], d: usize, k: usize) -> Result<Self> {
        if d == 0 || !points.len().is_multiple_of(d) {
            return Err(Error::InvalidInput(format!(
                "PCA: {} values are not rows of dimension {d}",
                points.len()
            )));
        }
        let n = points.len() / d;
        if n < 2 || k == 0 || k > d {
            return Err(Error::InvalidInput(format!(
                "PCA: need at least 2 points and 1 <= k <= d, got n = {n}, k = {k}, d = {d}"
            )));
        }
        if points.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidInput(
                "PCA: the points contain NaN or infinity".into(),
            ));
        }
        let mut mean = vec![0f64; d];
        for row in points.chunks_exact(d) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut cov = vec![vec![0f64; d]; d];
        let mut centred = vec![0f64; d];
        for row in points.chunks_exact(d) {
            for (c, (&x, m)) in centred.iter_mut().zip(row.iter().zip(&mean)) {
                *c = x as f64 - m;
            }
            for (cov_row, ci) in cov.iter_mut().zip(&centred) {
                for (cij, cj) in cov_row.iter_mut().zip(&centred) {
                    *cij += ci * cj;
                }
            }
        }
        cov.iter_mut().flatten().for_each(|v| *v /= n as f64);
        let total_variance = (0..d).map(|i| cov[i][i]).sum();
        let (values, vectors) = symmetric_eigen(cov);
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
        let mut components = Vec::with_capacity(k);
        let mut explained_variance = Vec::with_capacity(k);
        for &idx in order.iter().take(k) {
            let mut v: Vec<f64> = (0..d).map(|r| vectors[r][idx]).collect();
            let largest = v
                .iter()
                .copied()
                .max_by(|a, b| a.abs().total_cmp(&b.abs()))
                .unwrap_or(1.0);
            if largest < 0.0 {
                v.iter_mut().for_each(|x| *x = -*x);
            }
            components.push(v);
            explained_variance.push(values[idx].max(0.0));
        }
        Ok(Self {
            mean,
            components,
            explained_variance,
            total_variance,
        })
    }

    /// Projects points `(n, d)` row-major onto the components: `(n, k)` row-major.
    pub fn transform(&self, points: &[f32]) -> Result<Vec<f64>> {
        let d = self.mean.len();
        if !points.len().is_multiple_of(d) {
            return Err(Error::InvalidInput(format!(
                "PCA transform: {} values are not rows of dimension {d}",
                points.len()
            )));
        }
        let mut out = Vec::with_capacity(points.len() / d * self.components.len());
        for row in points.chunks_exact(d) {
            for c in &self.components {
                out.push(
                    row.iter()
                        .zip(&self.mean)
                        .zip(c)
                        .map(|((&x, m), w)| (x as f64 - m) * w)
                        .sum(),
                );
            }
        }
        Ok(out)
    }

    /// Fraction of the total variance the components explain, in [0, 1].
    pub fn explained_fraction(&self) -> f64 {
        if self.total_variance > 0.0 {
            self.explained_variance.iter().sum::<f64>() / self.total_variance
        } else {
            1.0
        }
    }
}

/// Eigen-decomposition of a symmetric matrix by cyclic Jacobi rotations.
/// Returns the eigenvalues and the eigenvectors as the columns of a matrix.
fn symmetric_eigen(mut a: Vec<Vec<f64>>) -> (Vec<f64>, Vec<Vec<f64>>) {
    let d = a.len();
    let mut v = vec![vec![0f64; d]; d];
    for (i, row) in v.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    let scale: f64 = a
        .iter()
        .flatten()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-15 * scale {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                if a[p][q].abs() <= f64::MIN_POSITIVE {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for row in a.iter_mut() {
                    let akp = row[p];
                    let akq = row[q];
                    row[p] = c * akp - s * akq;
                    row[q] = s * akp + c * akq;
                }
                let (head, tail) = a.split_at_mut(q);
                for (apk, aqk) in head[p].iter_mut().zip(tail[0].iter_mut()) {
                    let (x, y) = (*apk, *aqk);
                    *apk = c * x - s * y;
                    *aqk = s * x + c * y;
                }
                for row in v.iter_mut() {
                    let vkp = row[p];
                    let vkq = row[q];
                    row[p] = c * vkp - s * vkq;
                    row[q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i][i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_of_a_known_matrix() {
        // [[2, 1, 0], [1, 2, 0], [0, 0, 5]]: eigenvalues 1, 3, 5.
        let a = vec![
            vec![2.0, 1.0, 0.0],
            vec![1.0, 2.0, 0.0],
            vec![0.0, 0.0, 5.0],
        ];
        let (mut values, vectors) = symmetric_eigen(a.clone());
        // A v = lambda v for every column.
        for (j, &lambda) in values.iter().enumerate() {
            for i in 0..3 {
                let av: f64 = (0..3).map(|k| a[i][k] * vectors[k][j]).sum();
                assert!((av - lambda * vectors[i][j]).abs() < 1e-12);
            }
        }
        values.sort_by(f64::total_cmp);
        for (got, want) in values.iter().zip([1.0, 3.0, 5.0]) {
            assert!((got - want).abs() < 1e-12, "{values:?}");
        }
    }

    #[test]
    fn components_follow_the_spread() -> Result<()> {
        // Axis-aligned spreads 3 (z), 2 (x), 1 (y) around the mean (1, 1, 1).
        let mut pts = Vec::new();
        for s in [-1f32, 1.0] {
            pts.extend([1.0 + 2.0 * s, 1.0, 1.0]);
            pts.extend([1.0, 1.0 + s, 1.0]);
            pts.extend([1.0, 1.0, 1.0 + 3.0 * s]);
        }
        let pca = Pca::fit(&pts, 3, 2)?;
        assert_eq!(pca.mean, vec![1.0, 1.0, 1.0]);
        let c0 = &pca.components[0];
        let c1 = &pca.components[1];
        assert!((c0[2] - 1.0).abs() < 1e-12 && c0[0].abs() < 1e-12, "{c0:?}");
        assert!((c1[0] - 1.0).abs() < 1e-12 && c1[2].abs() < 1e-12, "{c1:?}");
        // variances: 2 * 9 / 6 = 3, 2 * 4 / 6 = 4/3, total 3 + 4/3 + 1/3.
        assert!((pca.explained_variance[0] - 3.0).abs() < 1e-12);
        assert!((pca.explained_variance[1] - 4.0 / 3.0).abs() < 1e-12);
        assert!((pca.explained_fraction() - (13.0 / 3.0) / (14.0 / 3.0)).abs() < 1e-12);
        let projected = pca.transform(&[1.0, 1.0, 4.0])?;
        assert!((projected[0] - 3.0).abs() < 1e-12 && projected[1].abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn bad_inputs() {
        assert!(Pca::fit(&[1.0, 2.0, 3.0], 2, 1).is_err());
        assert!(Pca::fit(&[1.0, 2.0], 2, 1).is_err());
        assert!(Pca::fit(&[1.0, 2.0, 3.0, 4.0], 2, 3).is_err());
        assert!(Pca::fit(&[1.0, f32::NAN, 3.0, 4.0], 2, 1).is_err());
    }
}
