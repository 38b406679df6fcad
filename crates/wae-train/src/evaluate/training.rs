//! The evaluation the trainer runs when a run reaches its end: reconstruction error and
//! MMD to the prior on the test set, on the training device, cheap enough for every run.

use candle_core::{Device, Tensor};
use wae_data::Dataset;
use wae_objectives::{CostKind, per_image_cost};

use super::{EvalReport, SCHEMA_VERSION, Skipped};
use crate::Result;
use crate::config::TrainConfig;
use crate::model::Model;
use crate::rng::{Stream, derived_rng};
use crate::trainer::{model_batch, scalar, symmetric_pixels};

/// Evaluates `model` (trained with `cfg`, `step` steps done) on the first
/// `cfg.training.eval_examples` images of `test`, in batches of the training batch size
/// on `device`: the reconstruction error of the encoder means in [0, 1] pixel units and
/// MMD^2 of the codes and of a second prior sample against a prior sample drawn from
/// `StdRng(cfg.seed, Eval, 0)`. The fields `wae eval` adds are left out and listed in
/// [`EvalReport::skipped`]; `run` and `checkpoint` are left to the caller.
pub fn end_of_training(
    model: &Model,
    cfg: &TrainConfig,
    test: &Dataset,
    device: &Device,
    step: u64,
) -> Result<EvalReport> {
    let n = cfg.training.eval_examples.min(test.len());
    let batch = cfg.training.batch_size.max(2);
    let mut sum_sq = 0f64;
    let mut codes = Vec::new();
    let mut start = 0;
    while start < n {
        let end = (start + batch).min(n);
        let idx: Vec<usize> = (start..end).collect();
        let x = model_batch(cfg, test, &idx, device)?;
        let c = model.encode(&x, None, false)?;
        let x_hat = model.decode(&c.mean, false)?;
        let per = per_image_cost(&x, &x_hat, CostKind::SquaredL2)?;
        sum_sq += scalar(&per.sum_all()?)?;
        codes.push(c.mean.detach());
        start = end;
    }
    let codes = Tensor::cat(&codes, 0)?;
    let d = model.latent_dim();
    let mut rng = derived_rng(cfg.seed, Stream::Eval, 0);
    let prior_a = model.sample_prior(n, &mut rng, device)?;
    let prior_b = model.sample_prior(n, &mut rng, device)?;
    let mmd_cfg = wae_divergence::MmdConfig {
        prior_variance: cfg.model.prior.kernel_variance(d),
        ..wae_divergence::MmdConfig::default()
    };
    let block = 1000;
    let mmd_codes = wae_divergence::mmd_blockwise(&codes, &prior_a, &mmd_cfg, block)?;
    let mmd_prior = wae_divergence::mmd_blockwise(&prior_b, &prior_a, &mmd_cfg, block)?;
    let pixels = cfg.model.encoder.architecture.image_len() as f64;
    // Reported in [0, 1] pixel units: errors in [-1, 1] units are 4 times larger.
    let unit = if symmetric_pixels(cfg) { 4.0 } else { 1.0 };
    let rec = sum_sq / n.max(1) as f64 / unit;
    Ok(EvalReport {
        schema_version: SCHEMA_VERSION,
        step,
        examples: n,
        reconstruction_sq_l2: rec,
        reconstruction_mse_per_pixel: rec / pixels,
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
