//! Disentanglement scores of codes with known generative factors: the FactorVAE metric
//! (Kim & Mnih 2018) and the mutual information gap, MIG (Chen et al. 2018).
//!
//! Both follow the reference implementations of `disentanglement_lib` (Locatello et al.
//! 2019), whose defaults are this module's defaults, with two deliberate fixes noted on
//! [`factor_vae_score`].
//!
//! Inputs are codes `(N, d)` (one row per observation, f64) and factor classes `(N, K)`
//! (usize, one column per factor, e.g. dSprites' `[shape, scale, orientation, posX,
//! posY]`). Plain row-major vectors fit through `ArrayView2::from_shape`:
//!
//! ```
//! use ndarray::ArrayView2;
//! use wae_metrics::disentanglement::{mig, MigConfig};
//!
//! // Two factors with 4 values each, every combination once; codes equal to the factors.
//! let factors: Vec<usize> = (0..16).flat_map(|i| [i / 4, i % 4]).collect();
//! let codes: Vec<f64> = factors.iter().map(|&c| c as f64).collect();
//! let factors = ArrayView2::from_shape((16, 2), &factors).unwrap();
//! let codes = ArrayView2::from_shape((16, 2), &codes).unwrap();
//! let score = mig(codes, factors, &MigConfig::default())?;
//! assert!((score.mig - 1.0).abs() < 1e-12);
//! # Ok::<(), wae_metrics::Error>(())
//! ```
//!
//! The FactorVAE metric needs fresh observations with one factor held fixed: it takes a
//! [`FactorSampler`] (e.g. a data generator followed by an encoder; [`FnSampler`] wraps
//! two closures), or, for a precomputed set of codes whose factor combinations cover the
//! grid, [`factor_vae_score_on_grid`] draws such groups from the rows ([`GridSampler`]).

use std::collections::HashMap;

use candle_core::{DType, Tensor};
use ndarray::{Array2, ArrayView2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{Error, Result};

/// `(N, d)` codes from a candle tensor of any float dtype (e.g. an encoder's means).
pub fn codes_from_tensor(codes: &Tensor) -> Result<Array2<f64>> {
    let (n, d) = codes.dims2()?;
    let flat = codes
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    Array2::from_shape_vec((n, d), flat)
        .map_err(|e| Error::InvalidInput(format!("codes of shape ({n}, {d}): {e}")))
}

/// A source of observations with known factors, seen through their codes.
pub trait FactorSampler {
    /// Number of values of each of the `K` factors.
    fn factor_sizes(&self) -> Vec<usize>;

    /// Codes `(n, d)` and factor classes `(n, K)` of `n` random observations (factors drawn
    /// from the data distribution).
    fn sample(&mut self, n: usize, rng: &mut StdRng) -> Result<(Array2<f64>, Array2<usize>)>;

    /// Codes `(n, d)` of `n` random observations whose factor `factor` equals `value`, the
    /// other factors drawn from the data distribution.
    fn codes_with_fixed_factor(
        &mut self,
        factor: usize,
        value: usize,
        n: usize,
        rng: &mut StdRng,
    ) -> Result<Array2<f64>>;

    /// A value of factor `factor` to hold fixed, drawn from its marginal distribution.
    /// Default: uniform over `0..factor_sizes()[factor]` (right for a full factor grid).
    fn sample_factor_value(&mut self, factor: usize, rng: &mut StdRng) -> Result<usize> {
        let size = self
            .factor_sizes()
            .get(factor)
            .copied()
            .ok_or_else(|| Error::InvalidInput(format!("no factor {factor}")))?;
        if size == 0 {
            return Err(Error::InvalidInput(format!(
                "factor {factor} has no values"
            )));
        }
        Ok(rng.random_range(0..size))
    }
}

/// A [`FactorSampler`] made of two closures: `sample(n, rng)` and
/// `fixed(factor, value, n, rng)` (see the trait's methods).
pub struct FnSampler<S, F> {
    sizes: Vec<usize>,
    sample: S,
    fixed: F,
}

impl<S, F> FnSampler<S, F>
where
    S: FnMut(usize, &mut StdRng) -> Result<(Array2<f64>, Array2<usize>)>,
    F: FnMut(usize, usize, usize, &mut StdRng) -> Result<Array2<f64>>,
{
    /// A sampler for factors with `factor_sizes` values each.
    pub fn new(factor_sizes: Vec<usize>, sample: S, fixed: F) -> Self {
        Self {
            sizes: factor_sizes,
            sample,
            fixed,
        }
    }
}

impl<S, F> FactorSampler for FnSampler<S, F>
where
    S: FnMut(usize, &mut StdRng) -> Result<(Array2<f64>, Array2<usize>)>,
    F: FnMut(usize, usize, usize, &mut StdRng) -> Result<Array2<f64>>,
{
    fn factor_sizes(&self) -> Vec<usize> {
        self.sizes.clone()
    }

    fn sample(&mut self, n: usize, rng: &mut StdRng) -> Result<(Array2<f64>, Array2<usize>)> {
        (self.sample)(n, rng)
    }

    fn codes_with_fixed_factor(
        &mut self,
        factor: usize,
        value: usize,
        n: usize,
        rng: &mut StdRng,
    ) -> Result<Array2<f64>> {
        (self.fixed)(factor, value, n, rng)
    }
}

/// A [`FactorSampler`] over precomputed codes `(N, d)` and their factor classes `(N, K)`,
/// e.g. the whole dSprites grid encoded once. Observations are rows: a group with a fixed
/// factor value is drawn from the rows having that value (without replacement when the
/// group is large enough, else with replacement), and the fixed value is that of a
/// uniformly drawn row (the data's marginal).
#[derive(Debug, Clone)]
pub struct GridSampler<'a> {
    codes: ArrayView2<'a, f64>,
    factors: ArrayView2<'a, usize>,
    sizes: Vec<usize>,
    /// `groups[k][v]`: the rows whose factor `k` has value `v`.
    groups: Vec<Vec<Vec<usize>>>,
}

impl<'a> GridSampler<'a> {
    /// Groups the rows by each factor's value. Factor `k` is taken to have
    /// `max(factors[.., k]) + 1` values.
    pub fn new(codes: ArrayView2<'a, f64>, factors: ArrayView2<'a, usize>) -> Result<Self> {
        check_inputs(codes, factors)?;
        let k = factors.ncols();
        let sizes: Vec<usize> = (0..k)
            .map(|j| factors.column(j).iter().copied().max().map_or(0, |m| m + 1))
            .collect();
        let mut groups: Vec<Vec<Vec<usize>>> =
            sizes.iter().map(|&size| vec![Vec::new(); size]).collect();
        for (row, classes) in factors.outer_iter().enumerate() {
            for (j, &value) in classes.iter().enumerate() {
                groups[j][value].push(row);
            }
        }
        Ok(Self {
            codes,
            factors,
            sizes,
            groups,
        })
    }

    fn gather(&self, rows: &[usize]) -> Array2<f64> {
        self.codes.select(Axis(0), rows)
    }
}

impl FactorSampler for GridSampler<'_> {
    fn factor_sizes(&self) -> Vec<usize> {
        self.sizes.clone()
    }

    /// `min(n, N)` distinct rows drawn uniformly.
    fn sample(&mut self, n: usize, rng: &mut StdRng) -> Result<(Array2<f64>, Array2<usize>)> {
        let total = self.codes.nrows();
        let rows = rand::seq::index::sample(rng, total, n.min(total)).into_vec();
        Ok((self.gather(&rows), self.factors.select(Axis(0), &rows)))
    }

    fn codes_with_fixed_factor(
        &mut self,
        factor: usize,
        value: usize,
        n: usize,
        rng: &mut StdRng,
    ) -> Result<Array2<f64>> {
        let group = self
            .groups
            .get(factor)
            .and_then(|g| g.get(value))
            .filter(|g| !g.is_empty())
            .ok_or_else(|| {
                Error::InvalidInput(format!("no row has factor {factor} equal to {value}"))
            })?;
        let rows: Vec<usize> = if group.len() >= n {
            rand::seq::index::sample(rng, group.len(), n)
                .into_iter()
                .map(|i| group[i])
                .collect()
        } else {
            (0..n)
                .map(|_| group[rng.random_range(0..group.len())])
                .collect()
        };
        Ok(self.gather(&rows))
    }

    fn sample_factor_value(&mut self, factor: usize, rng: &mut StdRng) -> Result<usize> {
        if factor >= self.factors.ncols() {
            return Err(Error::InvalidInput(format!("no factor {factor}")));
        }
        let row = rng.random_range(0..self.factors.nrows());
        Ok(self.factors[(row, factor)])
    }
}

/// Settings of the FactorVAE metric; defaults as in `disentanglement_lib`'s study
/// (`factor_vae_metric.gin`: batch 64, 10,000 training and 5,000 evaluation votes,
/// 10,000 points for the variances, `prune_dims.threshold = 0.05`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FactorVaeConfig {
    /// Observations `L` per vote (all sharing one factor value). Default 64; at least 2.
    pub batch_size: usize,
    /// Votes that train the majority-vote classifier. Default 10,000.
    pub num_train: usize,
    /// Votes it is evaluated on. Default 5,000.
    pub num_eval: usize,
    /// Observations for the global variance of each code dimension. Default 10,000.
    pub num_variance_estimate: usize,
    /// Code dimensions whose global standard deviation is not above this are ignored
    /// (collapsed). Default 0.05, the study's `prune_dims.threshold` (the library keeps a
    /// dimension whose std is `>=` the threshold; here it must be `>`, which differs only
    /// at exactly 0.05 and drops constant dimensions when the threshold is 0).
    pub prune_std_threshold: f64,
}

impl Default for FactorVaeConfig {
    fn default() -> Self {
        Self {
            batch_size: 64,
            num_train: 10_000,
            num_eval: 5_000,
            num_variance_estimate: 10_000,
            prune_std_threshold: 0.05,
        }
    }
}

/// The FactorVAE metric's result.
#[derive(Debug, Clone, PartialEq)]
pub struct FactorVaeScore {
    /// Accuracy of the majority-vote classifier on the evaluation votes: the score.
    pub eval_accuracy: f64,
    /// Its accuracy on the votes it was built from.
    pub train_accuracy: f64,
    /// Code dimensions kept (global std above the threshold).
    pub num_active_dims: usize,
    /// Training votes, `(K, d)`: `[k, j]` counts groups with factor `k` fixed whose
    /// least-varying (normalised) dimension was `j`.
    pub train_votes: Array2<usize>,
    /// Evaluation votes, `(K, d)`.
    pub eval_votes: Array2<usize>,
}

/// The FactorVAE disentanglement metric (Kim & Mnih 2018).
///
/// 1. The variance of each code dimension over `num_variance_estimate` random observations
///    (ddof 1) normalises the codes (dividing variances by it is dividing codes by the
///    std); dimensions whose std is not above `prune_std_threshold` are dropped.
/// 2. A vote: draw a factor `k` uniformly, a value for it from the sampler, and `L =
///    batch_size` observations sharing that value; the vote is `(k, argmin_j var_j /
///    global_var_j)` over the kept dimensions (variance with ddof 1; ties to the lowest j).
/// 3. The classifier maps each dimension to the factor with most training votes (ties to
///    the lowest factor); accuracy is the share of votes it gets right, on the training
///    votes and on `num_eval` fresh ones.
///
/// Randomness comes from `StdRng::seed_from_u64(seed)` only. Two fixes relative to
/// `disentanglement_lib`: a vote is recorded at the dimension's own index when some
/// dimensions were pruned (the library records the position among the kept ones), and
/// constant dimensions are always dropped (the library's `>= 0` test keeps them and
/// divides 0 by 0).
///
/// Chance level is `1/K` (random codes); a code whose dimensions are (monotone functions
/// of) the factors scores 1.
pub fn factor_vae_score<S: FactorSampler + ?Sized>(
    sampler: &mut S,
    config: &FactorVaeConfig,
    seed: u64,
) -> Result<FactorVaeScore> {
    if config.batch_size < 2 {
        return Err(Error::InvalidInput(format!(
            "FactorVAE metric: batch_size {} is below 2 (a variance needs two observations)",
            config.batch_size
        )));
    }
    if config.num_variance_estimate < 2 || config.num_train == 0 || config.num_eval == 0 {
        return Err(Error::InvalidInput(
            "FactorVAE metric: need num_variance_estimate >= 2 and num_train, num_eval >= 1".into(),
        ));
    }
    let sizes = sampler.factor_sizes();
    let num_factors = sizes.len();
    if num_factors == 0 {
        return Err(Error::InvalidInput("FactorVAE metric: no factors".into()));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let (codes, _) = sampler.sample(config.num_variance_estimate, &mut rng)?;
    let d = codes.ncols();
    check_finite(codes.view(), "codes for the global variance")?;
    if codes.nrows() < 2 || d == 0 {
        return Err(Error::InvalidInput(format!(
            "FactorVAE metric: the sampler returned codes of shape {:?} for the global variance",
            codes.dim()
        )));
    }
    let global_variances = column_variances(codes.view());
    let active: Vec<usize> = (0..d)
        .filter(|&j| global_variances[j].sqrt() > config.prune_std_threshold)
        .collect();
    if active.is_empty() {
        return Ok(FactorVaeScore {
            eval_accuracy: 0.0,
            train_accuracy: 0.0,
            num_active_dims: 0,
            train_votes: Array2::zeros((num_factors, d)),
            eval_votes: Array2::zeros((num_factors, d)),
        });
    }
    let mut votes = |count: usize, rng: &mut StdRng| -> Result<Array2<usize>> {
        let mut counts = Array2::<usize>::zeros((num_factors, d));
        for _ in 0..count {
            let factor = rng.random_range(0..num_factors);
            let value = sampler.sample_factor_value(factor, rng)?;
            let group = sampler.codes_with_fixed_factor(factor, value, config.batch_size, rng)?;
            if group.ncols() != d || group.nrows() < 2 {
                return Err(Error::InvalidInput(format!(
                    "FactorVAE metric: the sampler returned codes of shape {:?}, expected ({}, {d})",
                    group.dim(),
                    config.batch_size
                )));
            }
            check_finite(group.view(), "codes of a fixed-factor group")?;
            let local = column_variances(group.view());
            let mut best = active[0];
            let mut best_ratio = f64::INFINITY;
            for &j in &active {
                let ratio = local[j] / global_variances[j];
                if ratio < best_ratio {
                    best_ratio = ratio;
                    best = j;
                }
            }
            counts[(factor, best)] += 1;
        }
        Ok(counts)
    };
    let train_votes = votes(config.num_train, &mut rng)?;
    let eval_votes = votes(config.num_eval, &mut rng)?;
    // Each dimension's majority factor (the first on ties, like numpy's argmax).
    let classifier: Vec<usize> = (0..d)
        .map(|j| {
            let column = train_votes.column(j);
            let mut best = 0;
            for k in 1..num_factors {
                if column[k] > column[best] {
                    best = k;
                }
            }
            best
        })
        .collect();
    let accuracy = |votes: &Array2<usize>| -> f64 {
        let right: usize = (0..d).map(|j| votes[(classifier[j], j)]).sum();
        right as f64 / votes.sum() as f64
    };
    Ok(FactorVaeScore {
        eval_accuracy: accuracy(&eval_votes),
        train_accuracy: accuracy(&train_votes),
        num_active_dims: active.len(),
        train_votes,
        eval_votes,
    })
}

/// [`factor_vae_score`] on precomputed codes `(N, d)` and factor classes `(N, K)`, drawing
/// the observations from the rows (see [`GridSampler`]).
pub fn factor_vae_score_on_grid(
    codes: ArrayView2<'_, f64>,
    factors: ArrayView2<'_, usize>,
    config: &FactorVaeConfig,
    seed: u64,
) -> Result<FactorVaeScore> {
    let mut sampler = GridSampler::new(codes, factors)?;
    factor_vae_score(&mut sampler, config, seed)
}

/// Settings of MIG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigConfig {
    /// Equal-width bins per code dimension, between its minimum and maximum. Default 20.
    pub num_bins: usize,
}

impl Default for MigConfig {
    fn default() -> Self {
        Self { num_bins: 20 }
    }
}

/// MIG's result.
#[derive(Debug, Clone, PartialEq)]
pub struct MigScore {
    /// The mean over factors of [`MigScore::gaps`]: the score, in `[0, 1]`.
    pub mig: f64,
    /// Per factor: (largest - second largest mutual information with a code dimension)
    /// divided by the factor's entropy.
    pub gaps: Vec<f64>,
    /// Mutual information in nats, `(d, K)`: discretised code dimension vs factor.
    pub mutual_information: Array2<f64>,
    /// Entropy of each factor in nats.
    pub factor_entropy: Vec<f64>,
}

/// The mutual information gap (Chen et al. 2018) as `disentanglement_lib` computes it:
/// each code dimension is discretised into `num_bins` equal-width bins
/// ([`histogram_discretize`]), its mutual information with each factor is measured on
/// the `N` rows ([`discrete_mutual_information`], nats), and for each factor the gap
/// between the two most informative dimensions is divided by the factor's entropy; MIG
/// is the mean gap.
///
/// Random codes score about 0 (a small positive bias for small `N`). Codes equal to the
/// factors score 1 when each factor has at most `num_bins` equally spaced values; with
/// more values the binning merges some, and the score is below 1 (on the dSprites grid
/// with 20 bins: orientation (40 values) and position (32) lose information).
/// Needs `d >= 2` and no constant factor (entropy 0).
pub fn mig(
    codes: ArrayView2<'_, f64>,
    factors: ArrayView2<'_, usize>,
    config: &MigConfig,
) -> Result<MigScore> {
    check_inputs(codes, factors)?;
    check_finite(codes, "codes")?;
    let (d, k) = (codes.ncols(), factors.ncols());
    if d < 2 {
        return Err(Error::InvalidInput(format!(
            "MIG needs at least 2 code dimensions, got {d}"
        )));
    }
    let binned = histogram_discretize(codes, config.num_bins)?;
    let factor_columns: Vec<Vec<usize>> = (0..k).map(|j| factors.column(j).to_vec()).collect();
    let factor_entropy: Vec<f64> = factor_columns.iter().map(|c| discrete_entropy(c)).collect();
    if let Some(j) = factor_entropy.iter().position(|&h| h <= 0.0) {
        return Err(Error::InvalidInput(format!(
            "MIG: factor {j} is constant over the {} rows (entropy 0); leave it out",
            factors.nrows()
        )));
    }
    let mut mutual_information = Array2::<f64>::zeros((d, k));
    for i in 0..d {
        let code_bins = binned.column(i).to_vec();
        for (j, column) in factor_columns.iter().enumerate() {
            mutual_information[(i, j)] = discrete_mutual_information(column, &code_bins);
        }
    }
    let gaps: Vec<f64> = (0..k)
        .map(|j| {
            let mut column = mutual_information.column(j).to_vec();
            column.sort_by(|a, b| b.total_cmp(a));
            (column[0] - column[1]) / factor_entropy[j]
        })
        .collect();
    Ok(MigScore {
        mig: gaps.iter().sum::<f64>() / k as f64,
        gaps,
        mutual_information,
        factor_entropy,
    })
}

/// [`mig`] on `num_points` observations drawn from a sampler with
/// `StdRng::seed_from_u64(seed)` (`disentanglement_lib` uses 10,000).
pub fn mig_from_sampler<S: FactorSampler + ?Sized>(
    sampler: &mut S,
    num_points: usize,
    config: &MigConfig,
    seed: u64,
) -> Result<MigScore> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (codes, factors) = sampler.sample(num_points, &mut rng)?;
    mig(codes.view(), factors.view(), config)
}

/// Bins each column of `values` `(N, d)` into `num_bins` equal-width bins between the
/// column's minimum and maximum, exactly like `numpy.digitize(x, numpy.histogram(x,
/// num_bins)[1][:-1])`: bin indices `1..=num_bins`, the maximum in the last bin, and a
/// constant column (range widened by 0.5 each side) in one bin.
pub fn histogram_discretize(values: ArrayView2<'_, f64>, num_bins: usize) -> Result<Array2<usize>> {
    if num_bins == 0 {
        return Err(Error::InvalidInput(
            "histogram_discretize: num_bins is 0".into(),
        ));
    }
    check_finite(values, "values to discretise")?;
    let mut out = Array2::<usize>::zeros(values.dim());
    for (j, column) in values.axis_iter(Axis(1)).enumerate() {
        let mut lo = column.iter().copied().fold(f64::INFINITY, f64::min);
        let mut hi = column.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if column.is_empty() {
            continue;
        }
        if lo == hi {
            lo -= 0.5;
            hi += 0.5;
        }
        // numpy.linspace(lo, hi, num_bins + 1): i * step + lo, the last edge (unused) hi.
        let step = (hi - lo) / num_bins as f64;
        let edges: Vec<f64> = (0..num_bins).map(|i| i as f64 * step + lo).collect();
        for (i, &x) in column.iter().enumerate() {
            out[(i, j)] = edges.partition_point(|&e| e <= x);
        }
    }
    Ok(out)
}

/// Dense labels `0..u` for arbitrary ones, and `u`.
fn relabel(labels: &[usize]) -> (Vec<usize>, usize) {
    let mut map: HashMap<usize, usize> = HashMap::new();
    let dense = labels
        .iter()
        .map(|&l| {
            let next = map.len();
            *map.entry(l).or_insert(next)
        })
        .collect();
    (dense, map.len())
}

/// Mutual information in nats between two label sequences of equal length, from their
/// contingency table (the formula of scikit-learn's `mutual_info_score`, clipped at 0).
/// Unequal lengths or empty input give 0.
pub fn discrete_mutual_information(a: &[usize], b: &[usize]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let (a, na) = relabel(a);
    let (b, nb) = relabel(b);
    if na == 1 || nb == 1 {
        return 0.0;
    }
    let mut table = vec![0usize; na * nb];
    let mut rows = vec![0usize; na];
    let mut cols = vec![0usize; nb];
    for (&x, &y) in a.iter().zip(&b) {
        table[x * nb + y] += 1;
        rows[x] += 1;
        cols[y] += 1;
    }
    let n = a.len() as f64;
    let log_n = n.ln();
    let mut mi = 0.0;
    for x in 0..na {
        for y in 0..nb {
            let count = table[x * nb + y];
            if count == 0 {
                continue;
            }
            let p = count as f64 / n;
            let outer = (rows[x] as f64) * (cols[y] as f64);
            let term = p * ((count as f64).ln() - log_n) + p * (-outer.ln() + log_n + log_n);
            if term.abs() >= f64::EPSILON {
                mi += term;
            }
        }
    }
    mi.max(0.0)
}

/// Entropy in nats of a label sequence (its mutual information with itself).
pub fn discrete_entropy(labels: &[usize]) -> f64 {
    discrete_mutual_information(labels, labels)
}

/// Per-column variance with ddof 1.
fn column_variances(codes: ArrayView2<'_, f64>) -> Vec<f64> {
    let n = codes.nrows() as f64;
    codes
        .axis_iter(Axis(1))
        .map(|column| {
            let mean = column.sum() / n;
            column.iter().map(|&x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)
        })
        .collect()
}

fn check_inputs(codes: ArrayView2<'_, f64>, factors: ArrayView2<'_, usize>) -> Result<()> {
    if codes.nrows() != factors.nrows() {
        return Err(Error::InvalidInput(format!(
            "{} code rows but {} factor rows",
            codes.nrows(),
            factors.nrows()
        )));
    }
    if codes.nrows() == 0 || codes.ncols() == 0 || factors.ncols() == 0 {
        return Err(Error::InvalidInput(format!(
            "empty input: codes {:?}, factors {:?}",
            codes.dim(),
            factors.dim()
        )));
    }
    Ok(())
}

fn check_finite(values: ArrayView2<'_, f64>, what: &str) -> Result<()> {
    if let Some(((i, j), v)) = values.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::InvalidInput(format!(
            "{what}: value {v} at ({i}, {j}) is not finite"
        )));
    }
    Ok(())
}
