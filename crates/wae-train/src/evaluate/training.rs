//! The evaluation the trainer runs when a run reaches its end: reconstruction error and
//! MMD to the prior on the test set, on the training device, cheap enough for every run;
//! for any [`AutoEncoder`], the papers' `Model` or a user's own.

use candle_core::{DType, Device, Tensor};
use wae_data::Dataset;
use wae_objectives::{AutoEncoder, CostKind, PriorConfig, per_image_cost};

use super::{EvalReport, SCHEMA_VERSION, Skipped};
use crate::Result;
use crate::config::TrainConfig;
use crate::rng::{Stream, derived_rng};
use crate::trainer::{scalar, symmetric_pixels};

/// What the end-of-training evaluation needs beside the model and the test images.
#[derive(Debug, Clone, PartialEq)]
pub struct EndOfTraining {
    /// Test images evaluated (the first ones; fewer if the set is smaller).
    pub examples: usize,
    /// Images encoded at once.
    pub batch_size: usize,
    /// The run's seed: the prior draws come from `StdRng(seed, Eval, 0)`.
    pub seed: u64,
    /// The prior the codes are compared with.
    pub prior: PriorConfig,
    /// Whether the model works on pixels in [-1, 1] (images are mapped there, and errors
    /// reported back in [0, 1] units) rather than [0, 1].
    pub symmetric_pixels: bool,
}

impl EndOfTraining {
    /// The settings of a run of `cfg`: `training.eval_examples` images in batches of the
    /// training batch size (at least 2), the run's seed and prior, the decoder's range.
    pub fn of(cfg: &TrainConfig) -> Self {
        Self {
            examples: cfg.training.eval_examples,
            batch_size: cfg.training.batch_size.max(2),
            seed: cfg.seed,
            prior: cfg.model.prior,
            symmetric_pixels: symmetric_pixels(cfg),
        }
    }
}

/// Evaluates any [`AutoEncoder`] (`step` steps done) on the first `settings.examples`
/// images of `test`, in batches on `device`: the reconstruction error of the encoder
/// means in [0, 1] pixel units and MMD^2 of the codes and of a second prior sample
/// against a prior sample drawn from `StdRng(settings.seed, Eval, 0)`. The fields
/// `wae eval` adds are left out and listed in [`EvalReport::skipped`]; `run` and
/// `checkpoint` are left to the caller.
pub fn end_of_training<M: AutoEncoder + ?Sized>(
    model: &M,
    settings: &EndOfTraining,
    test: &Dataset,
    device: &Device,
    step: u64,
) -> Result<EvalReport> {
    let n = settings.examples.min(test.len());
    let batch = settings.batch_size.max(2);
    let mut sum_sq = 0f64;
    let mut codes = Vec::new();
    let mut pixels = 0;
    let mut start = 0;
    while start < n {
        let end = (start + batch).min(n);
        let idx: Vec<usize> = (start..end).collect();
        let x = test.batch(&idx, device)?;
        let x = if settings.symmetric_pixels {
            x.affine(2.0, -1.0)?
        } else {
            x
        };
        pixels = x.elem_count() / idx.len();
        let c = model.encode(&x, None, false)?;
        let x_hat = model.decode(&c.mean, false)?;
        let per = per_image_cost(&x, &x_hat, CostKind::SquaredL2)?;
        sum_sq += scalar(&per.sum_all()?)?;
        codes.push(c.mean.detach());
        start = end;
    }
    let codes = Tensor::cat(&codes, 0)?;
    let d = model.latent_dim();
    let mut rng = derived_rng(settings.seed, Stream::Eval, 0);
    let sampler = settings.prior.sampler();
    let prior_a = sampler.sample(n, d, &mut rng, device, DType::F32)?;
    let prior_b = sampler.sample(n, d, &mut rng, device, DType::F32)?;
    let mmd_cfg = wae_divergence::MmdConfig {
        prior_variance: sampler.kernel_variance(d),
        ..wae_divergence::MmdConfig::default()
    };
    let block = 1000;
    let mmd_codes = wae_divergence::mmd_blockwise(&codes, &prior_a, &mmd_cfg, block)?;
    let mmd_prior = wae_divergence::mmd_blockwise(&prior_b, &prior_a, &mmd_cfg, block)?;
    // Reported in [0, 1] pixel units: errors in [-1, 1] units are 4 times larger.
    let unit = if settings.symmetric_pixels { 4.0 } else { 1.0 };
    let rec = sum_sq / n.max(1) as f64 / unit;
    Ok(EvalReport {
        schema_version: SCHEMA_VERSION,
        step,
        examples: n,
        reconstruction_sq_l2: rec,
        reconstruction_mse_per_pixel: rec / pixels.max(1) as f64,
        reconstruction_l1: None,
        mmd_codes_vs_prior: mmd_codes,
        mmd_prior_vs_prior: mmd_prior,
        sharpness_samples: None,
        sharpness_reconstructions: None,
        sharpness_test_images: None,
        mmd_sampled_codes_vs_prior: None,
        classifier: None,
        inception: None,
        prior_match: None,
        gmm_sampler: None,
        disentanglement: None,
        skipped: vec![Skipped {
            metric: "reconstruction_l1, sharpness, prior_match, mmd_sampled_codes_vs_prior, \
                     classifier, inception, gmm_sampler, disentanglement"
                .into(),
            reason: "the end-of-training evaluation computes the reconstruction error and \
                     the MMDs only; `wae eval RUN` computes the rest"
                .into(),
        }],
        run: None,
        checkpoint: None,
        split: Some("test".into()),
        seed: None,
    })
}
