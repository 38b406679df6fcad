//! The full evaluation of a trained model (`wae eval`).

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use wae_metrics::laplace_sharpness;
use wae_metrics::reconstruction::ReconstructionAccumulator;

use super::disentanglement::{FACTOR_VAE, disentanglement};
use super::features::{classifier_scores, inception_scores};
use super::prior_match::prior_match;
use super::{EvalReport, FeatureScores, GmmSamplerScores, SCHEMA_VERSION, Skipped};
use crate::trained::{Split, TrainedRun};
use crate::{Error, Result};

/// The post-hoc sampler scored beside the prior: a Gaussian mixture fitted by EM to the
/// encoder means of training images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GmmSampler {
    /// Mixture components K (at least 1).
    pub components: usize,
    /// Training images (the first ones) whose codes the mixture is fitted to (at least 2).
    pub fit_images: usize,
}

/// What [`evaluate`] computes, and on which images.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    /// Images (the first `n` of the split) and samples; at least 4.
    pub n: usize,
    /// Which split the images come from.
    pub split: Split,
    /// Seed of the prior draws (and of the other random choices, offset from it).
    pub seed: u64,
    /// MNIST classifier weights (`TrainedMnistClassifier::save`): FID, KID and
    /// precision/recall in its 128-d feature space.
    pub classifier: Option<PathBuf>,
    /// pytorch-fid Inception weights (`.pth` or converted `.safetensors`): the same in its
    /// 2048-d pool3 space.
    pub inception: Option<PathBuf>,
    /// Also score samples of a post-hoc Gaussian mixture.
    pub gmm: Option<GmmSampler>,
    /// Compute the disentanglement scores of dSprites runs (minutes on a CPU).
    pub disentanglement: bool,
    /// Data directory, overriding the run's `data.dir`.
    pub data_dir: Option<PathBuf>,
}

impl Default for EvalOptions {
    /// 10,000 test images, seed 0, no feature network, no mixture, disentanglement on.
    fn default() -> Self {
        Self {
            n: 10_000,
            split: Split::Test,
            seed: 0,
            classifier: None,
            inception: None,
            gmm: None,
            disentanglement: true,
            data_dir: None,
        }
    }
}

/// The prior's scores and the mixture's (when scored) from one scoring call.
fn split_scores(
    scored: Option<Vec<FeatureScores>>,
) -> (Option<FeatureScores>, Option<FeatureScores>) {
    match scored {
        Some(v) => (v.first().copied(), v.get(1).copied()),
        None => (None, None),
    }
}

/// Evaluates `run` on the first `opts.n` images of its `opts.split`: always the
/// reconstruction errors, MMD of the codes (and of codes drawn from a random encoder) to
/// the prior, the prior-match test and the sharpness of samples, reconstructions and
/// images; FID, KID and precision/recall where a feature network is given; the mixture
/// sampler's scores where asked for; the disentanglement scores of dSprites runs on the
/// test split. What is left out is listed in [`EvalReport::skipped`] with the reason.
/// Notes (a slow step ahead, the mixture's fit) go to `tracing`.
pub fn evaluate(run: &TrainedRun, opts: &EvalOptions) -> Result<EvalReport> {
    if opts.n < 4 {
        return Err(Error::InvalidInput(
            "evaluation needs at least 4 images (precision/recall need more than k = 3 points)"
                .into(),
        ));
    }
    if let Some(g) = opts.gmm
        && (g.components < 1 || g.fit_images < 2)
    {
        return Err(Error::InvalidInput(format!(
            "a mixture needs at least 1 component and 2 training images, not {} and {}",
            g.components, g.fit_images
        )));
    }
    let data_dir = opts.data_dir.as_deref();
    let data = run.data(opts.split, data_dir, Some(opts.n))?;
    let n = data.len();
    if n < 4 {
        return Err(Error::InvalidInput(format!(
            "the {} split has only {n} images",
            opts.split.name()
        )));
    }
    if n < opts.n {
        tracing::warn!(
            "the {} split has {n} images, fewer than the {} asked for",
            opts.split.name(),
            opts.n
        );
    }
    let indices: Vec<usize> = (0..n).collect();
    let (codes, logvar) = run.encode(&data, &indices)?;
    let reconstructions = run.to_unit_range(&run.decode(&codes)?)?;
    let real = run.to_unit_range(&data.batch(&indices, &Device::Cpu)?)?;
    let mut rec = ReconstructionAccumulator::new();
    rec.add(&real, &reconstructions)?;
    let rec = rec.finish()?;

    let d = run.latent_dim();
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let prior_a = run.model().sample_prior(n, &mut rng, &Device::Cpu)?;
    let prior_b = run.model().sample_prior(n, &mut rng, &Device::Cpu)?;
    let prior_c = run.model().sample_prior(n, &mut rng, &Device::Cpu)?;
    let mmd_cfg = wae_divergence::MmdConfig {
        prior_variance: run.cfg.model.prior.sampler().kernel_variance(d),
        ..wae_divergence::MmdConfig::default()
    };
    let mmd_codes = wae_divergence::mmd_blockwise(&codes, &prior_a, &mmd_cfg, 1000)?;
    let mmd_prior = wae_divergence::mmd_blockwise(&prior_b, &prior_a, &mmd_cfg, 1000)?;
    let kind = run.cfg.model.encoder.kind;
    let mmd_sampled = match &logvar {
        Some(lv) => {
            let drawn = TrainedRun::sample_codes(kind, &codes, lv, opts.seed.wrapping_add(1))?;
            Some(wae_divergence::mmd_blockwise(
                &drawn, &prior_a, &mmd_cfg, 1000,
            )?)
        }
        None => None,
    };
    let samples = run.to_unit_range(&run.decode(&prior_c)?)?;
    let gmm_samples = match opts.gmm {
        Some(g) => {
            let fit = run.data(Split::Train, data_dir, Some(g.fit_images))?;
            let drawn = run.gmm_codes(&fit, g.components, n, opts.seed)?;
            tracing::info!(
                "fitted a {}-component Gaussian mixture to {} training codes ({} EM \
                 iterations, mean log-likelihood {:.3})",
                g.components,
                drawn.fit_points,
                drawn.iterations,
                drawn.log_likelihood
            );
            Some((g, run.to_unit_range(&run.decode(&drawn.codes)?)?))
        }
        None => None,
    };
    let mut sample_sets: Vec<&Tensor> = vec![&samples];
    if let Some((_, g)) = &gmm_samples {
        sample_sets.push(g);
    }
    let prior_match = prior_match(kind, &codes, logvar.as_ref(), &prior_a, &mmd_cfg, opts.seed)?;

    let mut skipped = Vec::new();
    let (_, channels, h, w) = real.dims4()?;
    let classifier = match &opts.classifier {
        None => {
            skipped.push(Skipped {
                metric: "classifier (FID, precision, recall)".into(),
                reason: "no --classifier FILE given (MNIST classifier weights; \
                         `cargo xtask train-mnist-classifier` makes them)"
                    .into(),
            });
            None
        }
        Some(_) if (channels, h, w) != (1, 28, 28) => {
            skipped.push(Skipped {
                metric: "classifier (FID, precision, recall)".into(),
                reason: format!(
                    "the MNIST classifier reads 1x28x28 images, these are {channels}x{h}x{w}"
                ),
            });
            None
        }
        Some(path) => Some(classifier_scores(path, &run.device, &real, &sample_sets)?),
    };
    let inception = match &opts.inception {
        None => {
            skipped.push(Skipped {
                metric: "inception (FID, precision, recall)".into(),
                reason: "no --inception FILE given (`cargo xtask download inception`)".into(),
            });
            None
        }
        Some(path) => {
            if channels == 1 {
                tracing::info!(
                    "Inception features of {n} grey images (repeated to RGB, resized to \
                     299x299): this takes long on a CPU"
                );
            }
            Some(inception_scores(path, &run.device, &real, &sample_sets)?)
        }
    };

    let disentanglement = match crate::data::dsprites_test_factors(&run.cfg)? {
        Some(_) if !opts.disentanglement => {
            skipped.push(Skipped {
                metric: "disentanglement (FactorVAE, MIG, beta-VAE metric)".into(),
                reason: "--no-disentanglement".into(),
            });
            None
        }
        Some(factors) if opts.split == Split::Test => {
            let beta = wae_metrics::BetaVaeConfig::default();
            tracing::info!(
                "disentanglement: FactorVAE metric ({} + {} votes of {} generated images), MIG \
                 ({n} test images) and the beta-VAE metric on 4 and 5 factors (each {} points \
                 of {} generated pairs, {} restarts of {} Adagrad steps: {} images encoded, \
                 minutes on a CPU)",
                FACTOR_VAE.num_train,
                FACTOR_VAE.num_eval,
                FACTOR_VAE.batch_size,
                beta.num_points,
                beta.pairs_per_point,
                beta.restarts,
                beta.iterations,
                4 * beta.num_points * beta.pairs_per_point
            );
            Some(disentanglement(run, &factors[..n], &codes, opts.seed)?)
        }
        Some(_) => {
            skipped.push(Skipped {
                metric: "disentanglement (FactorVAE, MIG, beta-VAE metric)".into(),
                reason: "computed on the test split only".into(),
            });
            None
        }
        None => None,
    };

    // Each scored list holds the prior's samples first, then the mixture's.
    let (classifier, classifier_gmm) = split_scores(classifier);
    let (inception, inception_gmm) = split_scores(inception);
    let gmm_sampler = match &gmm_samples {
        Some((g, images)) => Some(GmmSamplerScores {
            components: g.components,
            fit_images: g.fit_images,
            sharpness_samples: laplace_sharpness(images)?,
            classifier: classifier_gmm,
            inception: inception_gmm,
        }),
        None => None,
    };
    Ok(EvalReport {
        schema_version: SCHEMA_VERSION,
        step: run.step,
        examples: n,
        reconstruction_sq_l2: rec.squared_l2_per_image,
        reconstruction_mse_per_pixel: rec.mse_per_pixel,
        reconstruction_l1: Some(rec.l1_per_image),
        mmd_codes_vs_prior: mmd_codes,
        mmd_prior_vs_prior: mmd_prior,
        sharpness_samples: Some(laplace_sharpness(&samples)?),
        sharpness_reconstructions: Some(laplace_sharpness(&reconstructions)?),
        sharpness_test_images: Some(laplace_sharpness(&real)?),
        mmd_sampled_codes_vs_prior: mmd_sampled,
        prior_match: Some(prior_match),
        gmm_sampler,
        classifier,
        inception,
        disentanglement,
        skipped,
        run: Some(run.run_dir.display().to_string()),
        checkpoint: Some(run.checkpoint_dir.display().to_string()),
        split: Some(opts.split.name().into()),
        seed: Some(opts.seed),
    })
}
