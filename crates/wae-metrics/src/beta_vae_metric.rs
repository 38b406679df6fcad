//! The beta-VAE disentanglement metric (Higgins et al. 2017) exactly as Rubenstein et
//! al. compute it for their Wasserstein auto-encoder experiments
//! (`paruby/Wasserstein-Auto-Encoders`, `disentanglement_metric.py`).
//!
//! For each of `B` points (reference 5,000): a factor `y` is drawn uniformly among the
//! factors under test; `L` (30) pairs of observations are drawn such that within a pair
//! factor `y` has the same value and every other factor is drawn independently (the
//! shared value differs from pair to pair); both observations are encoded (encoder
//! means) and the point is the mean over the pairs of `|z1 - z2|`, a `d`-vector, with
//! label `y`. A linear softmax classifier (a dense layer `d -> factors` with Glorot-uniform
//! kernel and zero bias, TensorFlow's default initialisation) is trained full-batch on all
//! `B` points with TensorFlow 1's Adagrad (learning rate 1e-2, initial accumulator 0.1)
//! on the mean softmax cross-entropy for 100,000 steps, from 3 fresh initialisations;
//! the score of each restart is its accuracy on the training points (the reference has
//! no held-out set), and [`BetaVaeScore::accuracy`] is their mean (the reference writes
//! the three accuracies to a file).
//!
//! Where this departs from the reference: the classifier runs in f64 (TensorFlow's graph
//! was f32); randomness comes from one `StdRng::seed_from_u64(seed)` (labels, then
//! whatever the pair source draws, then the restarts' initial weights in order) instead
//! of numpy's and TensorFlow's global generators; the restarts train in parallel threads
//! (same numbers as one after the other). Labels are positions in
//! [`BetaVaeConfig::factors`]: the reference labels factor `-y` (counted from the last
//! dSprites latent) as `y - 1`, which [`BetaVaeConfig::dsprites_four_factors`] and
//! [`BetaVaeConfig::dsprites_five_factors`] reproduce.
//!
//! ```
//! use ndarray::Array2;
//! use rand::Rng;
//! use wae_metrics::beta_vae_metric::{beta_vae_score, BetaVaeConfig};
//!
//! // Codes equal to two factors with 5 values each: a perfectly disentangled code.
//! let config = BetaVaeConfig {
//!     factors: vec![0, 1],
//!     num_points: 200,
//!     iterations: 2_000,
//!     restarts: 1,
//!     ..BetaVaeConfig::default()
//! };
//! let score = beta_vae_score(
//!     |factor, n_pairs, rng| {
//!         let first = Array2::from_shape_fn((n_pairs, 2), |_| rng.random_range(0..5) as f64);
//!         let mut second = Array2::from_shape_fn((n_pairs, 2), |_| rng.random_range(0..5) as f64);
//!         second.column_mut(factor).assign(&first.column(factor));
//!         Ok((first, second))
//!     },
//!     &config,
//!     0,
//! )?;
//! assert!(score.accuracy > 0.99);
//! # Ok::<(), wae_metrics::Error>(())
//! ```

use ndarray::{Array1, Array2, ArrayView2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::softmax_regression::{SoftmaxAdagrad, SoftmaxProblem, glorot_uniform};
use crate::{Error, Result};

/// Settings of the beta-VAE metric; [`Default`] is the reference's 4-factor dSprites
/// variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BetaVaeConfig {
    /// Pairs `L` averaged into one point. Default 30.
    pub pairs_per_point: usize,
    /// Points `B` the classifier is trained (and scored) on. Default 5,000.
    pub num_points: usize,
    /// Full-batch Adagrad steps per restart. Default 100,000.
    pub iterations: usize,
    /// Classifier trainings from fresh initial weights. Default 3.
    pub restarts: usize,
    /// Adagrad's learning rate. Default 1e-2.
    pub learning_rate: f64,
    /// Adagrad's initial accumulator value. Default 0.1 (TensorFlow 1's default).
    pub initial_accumulator: f64,
    /// The factors under test, as indices into the pair source's factors; label `i` is
    /// factor `factors[i]`. Default `[4, 3, 2, 1]`: dSprites' posY, posX, orientation,
    /// scale (of `[shape, scale, orientation, posX, posY]`), the reference's labels 0..3.
    pub factors: Vec<usize>,
}

impl Default for BetaVaeConfig {
    fn default() -> Self {
        Self::dsprites_four_factors()
    }
}

impl BetaVaeConfig {
    /// The reference's 4-factor dSprites variant: posY, posX, orientation, scale.
    pub fn dsprites_four_factors() -> Self {
        Self {
            pairs_per_point: 30,
            num_points: 5_000,
            iterations: 100_000,
            restarts: 3,
            learning_rate: 1e-2,
            initial_accumulator: 0.1,
            factors: vec![4, 3, 2, 1],
        }
    }

    /// The reference's 5-factor dSprites variant: posY, posX, orientation, scale, shape.
    pub fn dsprites_five_factors() -> Self {
        Self {
            factors: vec![4, 3, 2, 1, 0],
            ..Self::dsprites_four_factors()
        }
    }

    /// The classifier's optimiser settings.
    pub fn adagrad(&self) -> SoftmaxAdagrad {
        SoftmaxAdagrad {
            iterations: self.iterations,
            learning_rate: self.learning_rate,
            initial_accumulator: self.initial_accumulator,
        }
    }

    fn check(&self) -> Result<()> {
        if self.pairs_per_point == 0 || self.num_points == 0 || self.restarts == 0 {
            return Err(Error::InvalidInput(format!(
                "beta-VAE metric: pairs_per_point ({}), num_points ({}) and restarts ({}) \
                 must be at least 1",
                self.pairs_per_point, self.num_points, self.restarts
            )));
        }
        if self.factors.len() < 2 {
            return Err(Error::InvalidInput(format!(
                "beta-VAE metric: needs at least 2 factors under test, got {:?}",
                self.factors
            )));
        }
        Ok(())
    }
}

/// The beta-VAE metric's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BetaVaeScore {
    /// Mean over restarts of the classifier's training accuracy: the score (chance
    /// `1 / factors`).
    pub accuracy: f64,
    /// Each restart's training accuracy.
    pub restart_accuracies: Vec<f64>,
    /// Each restart's final mean cross-entropy (nats).
    pub restart_losses: Vec<f64>,
    /// Points per label (label `i` is factor `factors[i]`).
    pub label_counts: Vec<usize>,
}

/// One point of the metric: the mean over pairs of `|z1 - z2|`, from the codes of the
/// first `(L, d)` and second `(L, d)` observations of `L` pairs.
pub fn mean_abs_difference(
    first: ArrayView2<'_, f64>,
    second: ArrayView2<'_, f64>,
) -> Result<Array1<f64>> {
    if first.dim() != second.dim() || first.nrows() == 0 || first.ncols() == 0 {
        return Err(Error::InvalidInput(format!(
            "beta-VAE metric: the pair source returned codes of shapes {:?} and {:?}; \
             expected two equal non-empty (pairs, d)",
            first.dim(),
            second.dim()
        )));
    }
    let mut sum = Array1::<f64>::zeros(first.ncols());
    for (a, b) in first.outer_iter().zip(second.outer_iter()) {
        for ((s, &x), &y) in sum.iter_mut().zip(a).zip(b) {
            *s += (x - y).abs();
        }
    }
    Ok(sum / first.nrows() as f64)
}

/// The metric's training points `(B, d)` and labels (`B`, in `0..factors.len()`).
///
/// `pairs(factor, n_pairs, rng)` returns the codes `(n_pairs, d)` of the first and of the
/// second observations of `n_pairs` pairs whose factor `factor` is shared within each pair
/// (drawn independently for each pair, as are all other factors).
pub fn beta_vae_points<P>(
    pairs: &mut P,
    config: &BetaVaeConfig,
    rng: &mut StdRng,
) -> Result<(Array2<f64>, Vec<usize>)>
where
    P: FnMut(usize, usize, &mut StdRng) -> Result<(Array2<f64>, Array2<f64>)> + ?Sized,
{
    config.check()?;
    let mut labels = Vec::with_capacity(config.num_points);
    let mut rows: Vec<f64> = Vec::new();
    let mut d = 0;
    for b in 0..config.num_points {
        let label = rng.random_range(0..config.factors.len());
        let (first, second) = pairs(config.factors[label], config.pairs_per_point, rng)?;
        if first.nrows() != config.pairs_per_point {
            return Err(Error::InvalidInput(format!(
                "beta-VAE metric: asked for {} pairs, the pair source returned {}",
                config.pairs_per_point,
                first.nrows()
            )));
        }
        let point = mean_abs_difference(first.view(), second.view())?;
        if b == 0 {
            d = point.len();
            rows.reserve(config.num_points * d);
        } else if point.len() != d {
            return Err(Error::InvalidInput(format!(
                "beta-VAE metric: codes of dimension {} after {d}",
                point.len()
            )));
        }
        rows.extend(point.iter());
        labels.push(label);
    }
    let points = Array2::from_shape_vec((config.num_points, d), rows)
        .map_err(|e| Error::InvalidInput(format!("beta-VAE metric points: {e}")))?;
    Ok((points, labels))
}

/// The beta-VAE metric (see the module docs) with observation pairs from `pairs` (as
/// in [`beta_vae_points`]) and randomness from `StdRng::seed_from_u64(seed)`.
///
/// A code whose dimensions are the factors scores 1; codes unrelated to the factors score
/// about `1 / factors.len()` (a little more: the accuracy is measured on the training
/// points).
pub fn beta_vae_score<P>(mut pairs: P, config: &BetaVaeConfig, seed: u64) -> Result<BetaVaeScore>
where
    P: FnMut(usize, usize, &mut StdRng) -> Result<(Array2<f64>, Array2<f64>)>,
{
    let mut rng = StdRng::seed_from_u64(seed);
    let (points, labels) = beta_vae_points(&mut pairs, config, &mut rng)?;
    let num_classes = config.factors.len();
    let problem = SoftmaxProblem::new(points.view(), &labels, num_classes)?;
    let initial: Vec<Array2<f64>> = (0..config.restarts)
        .map(|_| glorot_uniform(problem.dim(), num_classes, &mut rng))
        .collect();
    let adagrad = config.adagrad();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(config.restarts);
    let results: Vec<Result<_>> = if threads <= 1 {
        initial.iter().map(|w| problem.train(w, &adagrad)).collect()
    } else {
        // Restart r runs on thread r % threads; results are put back in order.
        let mut slots: Vec<Option<Result<_>>> = (0..config.restarts).map(|_| None).collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (problem, initial, adagrad) = (&problem, &initial, &adagrad);
                    scope.spawn(move || {
                        (t..initial.len())
                            .step_by(threads)
                            .map(|r| (r, problem.train(&initial[r], adagrad)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for handle in handles {
                match handle.join() {
                    Ok(done) => {
                        for (r, result) in done {
                            slots[r] = Some(result);
                        }
                    }
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        });
        slots
            .into_iter()
            .map(|s| s.unwrap_or_else(|| Err(Error::InvalidInput("a restart did not run".into()))))
            .collect()
    };
    let mut restart_accuracies = Vec::with_capacity(config.restarts);
    let mut restart_losses = Vec::with_capacity(config.restarts);
    for result in results {
        let trained = result?;
        restart_accuracies.push(trained.accuracy);
        restart_losses.push(trained.loss);
    }
    let mut label_counts = vec![0; num_classes];
    for &l in &labels {
        label_counts[l] += 1;
    }
    Ok(BetaVaeScore {
        accuracy: restart_accuracies.iter().sum::<f64>() / restart_accuracies.len() as f64,
        restart_accuracies,
        restart_losses,
        label_counts,
    })
}
