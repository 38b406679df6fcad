//! Bandwidth selection and a two-sample permutation test built on the MMD.

use candle_core::{DType, Tensor};
use rand::Rng;
use rand::seq::SliceRandom;

use crate::mmd::{Estimator, MmdConfig, coefficients, kernel_sum, squared_distances, validate};
use crate::{Error, Result, check};

/// Median of the squared pairwise distances `||z_i - z_j||^2` over all pairs `i < j` of the
/// rows of `z` (`(N, d)`, `N >= 2`); the mean of the two middle values when the number of
/// pairs is even (as `numpy.median`). Builds the `N x N` distance matrix: meant for a batch
/// or a subsample of a few thousand points.
pub fn median_pairwise_squared_distance(z: &Tensor) -> Result<f64> {
    let (n, _) = check::matrix(z, "z")?;
    if n < 2 {
        return Err(Error::TooFewSamples {
            name: "z",
            needed: 2,
            got: n,
        });
    }
    let z = z.detach().to_dtype(DType::F64)?;
    let dist = squared_distances(&z, &z)?.to_vec2::<f64>()?;
    let mut pairs: Vec<f64> = dist
        .iter()
        .enumerate()
        .flat_map(|(i, row)| row[i + 1..].iter().copied())
        .collect();
    let len = pairs.len();
    let upper = *pairs.select_nth_unstable_by(len / 2, f64::total_cmp).1;
    if len % 2 == 1 {
        Ok(upper)
    } else {
        let lower = pairs[..len / 2]
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        Ok(0.5 * (lower + upper))
    }
}

/// The median-distance heuristic expressed as an MMD scale: the `s` for which the kernel
/// constant `C_s = 2 * d * prior_variance * s` equals the median squared pairwise distance of
/// the pooled sample `[qz; pz]` (`(n, d)` and `(m, d)`).
///
/// Use it as `MmdConfig { scales: vec![s], prior_variance, ..Default::default() }`. For two
/// samples of `N(0, prior_variance I)` in high dimension, `s` is close to 1.
/// Errors if the inputs are invalid, `prior_variance` is not positive, or all points coincide.
pub fn median_heuristic_scale(qz: &Tensor, pz: &Tensor, prior_variance: f64) -> Result<f64> {
    let (_, _, d) = check::two_samples(qz, "qz", pz, "pz")?;
    check::variance(prior_variance)?;
    let pooled = Tensor::cat(&[&qz.detach(), &pz.detach()], 0)?;
    let median = median_pairwise_squared_distance(&pooled)?;
    if !(median.is_finite() && median > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "median squared distance is {median}; the median heuristic needs distinct points"
        )));
    }
    Ok(median / (2.0 * d as f64 * prior_variance))
}

/// Result of [`mmd_permutation_test`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PermutationTest {
    /// The MMD^2 estimate on the observed split (equals [`crate::mmd()`] with the same config).
    pub statistic: f64,
    /// `(1 + #{permutations with statistic >= observed}) / (1 + num_permutations)`, in `(0, 1]`.
    pub p_value: f64,
    /// The number of random permutations used.
    pub num_permutations: usize,
}

/// Two-sample test of `H0: P_x = P_y` with the MMD as test statistic, calibrated by
/// randomly permuting the pooled sample `num_permutations` times (drawn from `rng`).
///
/// `x` is `(n, d)`, `y` is `(m, d)`. The pooled `(n + m) x (n + m)` kernel matrix is built
/// once (in f64 on the host), so each permutation costs `O((n + m)^2)` additions; meant for
/// samples of up to a few thousand points. Errors as [`crate::mmd()`], and for
/// `num_permutations == 0`.
pub fn mmd_permutation_test<R: Rng + ?Sized>(
    x: &Tensor,
    y: &Tensor,
    cfg: &MmdConfig,
    num_permutations: usize,
    rng: &mut R,
) -> Result<PermutationTest> {
    let (n, m, d) = validate(x, y, cfg)?;
    if cfg.estimator == Estimator::PairedUStatistic {
        return Err(Error::InvalidArgument(
            "the permutation test pools the samples, so it has no pairs: use the U- or V-statistic"
                .into(),
        ));
    }
    if num_permutations == 0 {
        return Err(Error::InvalidArgument(
            "num_permutations must be at least 1".into(),
        ));
    }
    let pooled = Tensor::cat(&[&x.detach(), &y.detach()], 0)?.to_dtype(DType::F64)?;
    let total = n + m;
    let off_diagonal = Tensor::eye(total, DType::F64, pooled.device())?.affine(-1.0, 1.0)?;
    let dist = (squared_distances(&pooled, &pooled)? * off_diagonal)?;
    let kernel: Vec<f64> = kernel_sum(&dist, cfg.kernel, &cfg.kernel_constants(d))?
        .flatten_all()?
        .to_vec1::<f64>()?;
    let (c_xx, c_yy, c_xy) = coefficients(n, m, cfg.estimator);
    let include_diagonal = cfg.estimator == Estimator::VStatistic;
    let statistic_for = |in_x: &[bool]| {
        let (mut s_xx, mut s_yy, mut s_xy) = (0.0, 0.0, 0.0);
        for i in 0..total {
            let row = &kernel[i * total..(i + 1) * total];
            let (mut same, mut cross) = (0.0, 0.0);
            for (j, &k) in row.iter().enumerate().skip(i + 1) {
                if in_x[j] == in_x[i] {
                    same += k;
                } else {
                    cross += k;
                }
            }
            let same = 2.0 * same + if include_diagonal { row[i] } else { 0.0 };
            if in_x[i] {
                s_xx += same;
            } else {
                s_yy += same;
            }
            s_xy += cross;
        }
        c_xx * s_xx + c_yy * s_yy + c_xy * s_xy
    };
    let mut labels: Vec<bool> = (0..total).map(|i| i < n).collect();
    let statistic = statistic_for(&labels);
    let mut at_least_as_extreme = 0usize;
    for _ in 0..num_permutations {
        labels.shuffle(rng);
        if statistic_for(&labels) >= statistic {
            at_least_as_extreme += 1;
        }
    }
    Ok(PermutationTest {
        statistic,
        p_value: (1 + at_least_as_extreme) as f64 / (1 + num_permutations) as f64,
        num_permutations,
    })
}
