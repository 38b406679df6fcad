//! `wae eval`: test-set numbers of a trained model, written to `eval.json`
//! and printed as a table.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use clap::Args;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use wae_metrics::mnist_classifier::MnistClassifier;
use wae_metrics::{
    GaussianStats, InceptionV3, frechet_distance, laplace_sharpness, precision_recall,
    reconstruction::ReconstructionAccumulator,
};

use crate::pictures::{self, BATCH, LoadedRun, Network, RunArgs, SplitArg};

/// Arguments of `wae eval`.
#[derive(Debug, Args)]
#[command(
    after_help = "Always computed: the reconstruction error of N test images, MMD between \
    their codes and N prior samples (and between two prior samples, the value a perfect \
    match gives up to noise), and the Laplace sharpness of N samples, of the reconstructions \
    and of the test images. FID and precision/recall of N samples against the N test images \
    need a feature network: --classifier (MNIST, fast) and/or --inception (pytorch-fid's \
    Inception-v3; slow on a CPU). What is skipped is listed with the reason.\n\n\
    Examples:\n  \
    wae eval runs/mmd                                         # -> runs/mmd/eval.json\n  \
    wae eval runs/mmd --n 2000 --classifier mnist-classifier.safetensors\n  \
    wae eval runs/celeba --inception pt_inception-2015-12-05-6726825d.pth\n  \
    wae eval runs/mmd --classifier mnist-classifier.safetensors --sampler gmm:10"
)]
pub struct EvalArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Test images (the first N of the split) and samples.
    #[arg(long, default_value_t = 10_000)]
    pub n: usize,
    /// Which split the images come from.
    #[arg(long, value_enum, default_value = "test")]
    pub split: SplitArg,
    /// Seed of the prior draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// MNIST classifier weights (safetensors from wae-metrics' `TrainedMnistClassifier::save`):
    /// FID and precision/recall in its 128-d feature space.
    #[arg(long, value_name = "FILE")]
    pub classifier: Option<PathBuf>,
    /// pytorch-fid Inception weights (.pth or converted .safetensors): FID and
    /// precision/recall in its 2048-d pool3 space.
    #[arg(long, value_name = "FILE")]
    pub inception: Option<PathBuf>,
    /// Output JSON (default: RUN/eval.json).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also score samples from a post-hoc sampler: `gmm:K`, a K-component full-covariance
    /// Gaussian mixture fitted by EM to the encoder means of --fit-images training images
    /// (FID, KID, precision/recall and sharpness beside the prior's samples).
    #[arg(long, default_value = "prior", value_name = "prior|gmm:K")]
    pub sampler: String,
    /// Training images whose codes the mixture is fitted to.
    #[arg(long, default_value_t = 10_000)]
    pub fit_images: usize,
    /// Skip the disentanglement scores of dSprites runs (FactorVAE, MIG, the beta-VAE
    /// metric: minutes on a CPU), e.g. for an untrained baseline.
    #[arg(long)]
    pub no_disentanglement: bool,
}

/// A metric left out, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// The metric's key.
    pub metric: String,
    /// Why it was not computed.
    pub reason: String,
}

/// FID and precision/recall in one feature space.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FeatureScores {
    /// Frechet distance between the Gaussians fitted to test-image and sample features.
    pub fid: f64,
    /// Fraction of samples inside the test images' k = 3 manifold.
    pub precision: f64,
    /// Fraction of test images inside the samples' k = 3 manifold.
    pub recall: f64,
    /// Feature dimension.
    pub feature_dim: usize,
    /// Kernel Inception Distance in the same feature space (Binkowski et al. 2018: the
    /// unbiased polynomial-kernel MMD^2, mean over random subsets, with its spread).
    pub kid: wae_metrics::Kid,
}

/// Samples decoded from a post-hoc Gaussian mixture fitted to training codes
/// (`eval.json` field `gmm_sampler`), scored as the prior's samples are.
#[derive(Debug, Clone, Serialize)]
pub struct GmmSamplerScores {
    /// Mixture components K.
    pub components: usize,
    /// Training images whose encoder means the mixture was fitted to.
    pub fit_images: usize,
    /// Laplace sharpness of the mixture's samples.
    pub sharpness_samples: f64,
    /// The mixture's samples vs test images in the MNIST classifier's feature space.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classifier: Option<FeatureScores>,
    /// The mixture's samples vs test images in Inception-v3's pool3 space.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inception: Option<FeatureScores>,
}

/// Does the codes' distribution match the prior? (`eval.json` field `prior_match`)
#[derive(Debug, Clone, Serialize)]
pub struct PriorMatch {
    /// The codes tested: encoder means, or one code drawn from Q(z|x) per image for a
    /// random encoder (what a random-encoder WAE matches to the prior).
    pub codes: String,
    /// Codes (and as many prior samples) in the permutation test.
    pub test_points: usize,
    /// MMD^2 (IMQ, U-statistic) of those codes against the prior samples.
    pub statistic: f64,
    /// p-value of "codes and prior have the same distribution", by permutation.
    pub p_value: f64,
    /// Permutations drawn.
    pub permutations: usize,
    /// TwoNN estimate of the intrinsic dimension of the codes.
    pub intrinsic_dimension: f64,
    /// TwoNN estimate on as many prior samples (what filling the prior gives here).
    pub prior_intrinsic_dimension: f64,
    /// d_z.
    pub latent_dim: usize,
    /// A sentence on the result.
    pub verdict: String,
}

/// The content of `eval.json`. The first eight number fields carry the names of
/// `wae_train::EvalReport`, so readers of the file `wae train` writes can read this one.
#[derive(Debug, Clone, Serialize)]
pub struct EvalFile {
    /// Training steps of the checkpoint evaluated.
    pub step: u64,
    /// Test images (and samples) used.
    pub examples: usize,
    /// Mean over images of `||x - G(E(x))||^2` summed over pixels (pixels in [0, 1]).
    pub reconstruction_sq_l2: f64,
    /// Mean squared error per pixel value.
    pub reconstruction_mse_per_pixel: f64,
    /// Mean over images of `||x - G(E(x))||_1`.
    pub reconstruction_l1: f64,
    /// MMD^2 (IMQ, scales 0.1..10, U-statistic) between the test codes and as many prior samples.
    pub mmd_codes_vs_prior: f64,
    /// The same estimator between two independent prior samples.
    pub mmd_prior_vs_prior: f64,
    /// Laplace sharpness of `examples` samples G(z), z from the prior.
    pub sharpness_samples: f64,
    /// Laplace sharpness of the reconstructions.
    pub sharpness_reconstructions: f64,
    /// Laplace sharpness of the test images themselves.
    pub sharpness_test_images: f64,
    /// Random (Gaussian or uniform-noise) encoders only: MMD^2 between codes drawn from Q(z|x) (one per test image)
    /// and the prior, the quantity a random-encoder WAE matches (the field above uses
    /// the encoder means).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mmd_sampled_codes_vs_prior: Option<f64>,
    /// Samples vs test images in the MNIST classifier's feature space.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classifier: Option<FeatureScores>,
    /// Samples vs test images in Inception-v3's pool3 space.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inception: Option<FeatureScores>,
    /// Permutation test and intrinsic dimension of the codes against the prior.
    pub prior_match: PriorMatch,
    /// Scores of the post-hoc mixture sampler (`--sampler gmm:K`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gmm_sampler: Option<GmmSamplerScores>,
    /// FactorVAE, MIG and beta-VAE-metric scores (dSprites runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disentanglement: Option<Disentanglement>,
    /// Metrics not computed, with the reason.
    pub skipped: Vec<Skipped>,
    /// The run directory.
    pub run: String,
    /// The checkpoint directory.
    pub checkpoint: String,
    /// The split the images came from.
    pub split: String,
    /// Seed of the prior draws.
    pub seed: u64,
}

/// Disentanglement scores of the encoder means on dSprites.
#[derive(Debug, Clone, Serialize)]
pub struct Disentanglement {
    /// FactorVAE metric (Kim & Mnih 2018): accuracy of the majority-vote classifier on
    /// its evaluation votes (chance: 0.2 for the 5 factors).
    pub factor_vae: f64,
    /// Its accuracy on the training votes.
    pub factor_vae_train: f64,
    /// Votes used to build the classifier and to evaluate it, and images per vote.
    pub factor_vae_votes: [usize; 3],
    /// Code dimensions the FactorVAE metric kept (global std above 0.05).
    pub active_dims: usize,
    /// Mutual information gap (Chen et al. 2018) on the evaluated test images, 20 bins.
    pub mig: f64,
    /// MIG's gap per factor: shape, scale, orientation, posX, posY.
    pub mig_per_factor: Vec<f64>,
    /// The beta-VAE metric on the last 4 factors (scale, orientation, posX, posY).
    pub beta_vae_4_factors: BetaVaeMetric,
    /// The beta-VAE metric on all 5 factors.
    pub beta_vae_5_factors: BetaVaeMetric,
}

/// The beta-VAE metric (Higgins et al. 2017) as Rubenstein et al.'s
/// `disentanglement_metric.py` computes it (`wae_metrics::beta_vae_metric`): training
/// accuracy of a linear softmax classifier that names the factor shared within pairs
/// from the mean absolute code difference of 30 pairs of fresh images.
#[derive(Debug, Clone, Serialize)]
pub struct BetaVaeMetric {
    /// Mean of the restarts' accuracies: the score (chance: 1 / number of factors).
    pub accuracy: f64,
    /// Each restart's training accuracy.
    pub restart_accuracies: Vec<f64>,
    /// Each restart's final mean cross-entropy (nats).
    pub restart_losses: Vec<f64>,
    /// The factors under test in label order (the reference's order: from the last).
    pub factor_names: Vec<String>,
    /// The settings used (the reference's).
    pub settings: wae_metrics::BetaVaeConfig,
    /// Seed of its `StdRng`.
    pub seed: u64,
}

/// Settings of the FactorVAE metric here: fewer votes than `disentanglement_lib`'s
/// 10,000 + 5,000 (which encode ~1M images) so that a CPU evaluation takes a minute;
/// dimensions pruned as in its study (global std not above 0.05).
const FACTOR_VAE: wae_metrics::disentanglement::FactorVaeConfig =
    wae_metrics::disentanglement::FactorVaeConfig {
        batch_size: 64,
        num_train: 800,
        num_eval: 400,
        num_variance_estimate: 5000,
        prune_std_threshold: 0.05,
    };

/// FactorVAE and the beta-VAE metric (fresh images from the dSprites generator, encoded;
/// the beta-VAE metric with the reference's full settings) and MIG (the test images
/// `indices` with their known factors).
fn disentanglement(
    run: &LoadedRun,
    test_factors: &[wae_data::DspritesFactors],
    test_codes: &Tensor,
    seed: u64,
) -> Result<Disentanglement> {
    use wae_metrics::disentanglement::{
        FnSampler, MigConfig, codes_from_tensor, factor_vae_score, mig,
    };
    use wae_metrics::{BetaVaeConfig, beta_vae_score};
    let to_metrics = |e: anyhow::Error| wae_metrics::Error::InvalidInput(format!("{e:#}"));
    let encode =
        |factors: &[wae_data::DspritesFactors]| -> wae_metrics::Result<ndarray::Array2<f64>> {
            let data = wae_data::Dsprites::generate(factors)
                .map_err(|e| wae_metrics::Error::InvalidInput(e.to_string()))?;
            let indices: Vec<usize> = (0..factors.len()).collect();
            let (codes, _) = run.encode(&data.images, &indices).map_err(to_metrics)?;
            codes_from_tensor(&codes)
        };
    let classes = |factors: &[wae_data::DspritesFactors]| {
        let flat: Vec<usize> = factors.iter().flat_map(|f| f.to_array()).collect();
        ndarray::Array2::from_shape_vec((factors.len(), 5), flat).expect("5 factors a row")
    };
    let mut sampler = FnSampler::new(
        wae_data::DSPRITES_FACTOR_SIZES.to_vec(),
        |n, rng: &mut StdRng| {
            let factors: Vec<_> = (0..n)
                .map(|_| wae_data::DspritesFactors::random(rng))
                .collect();
            Ok((encode(&factors)?, classes(&factors)))
        },
        |factor, value, n, rng: &mut StdRng| {
            let factors = wae_data::dsprites::sample_factors_with_fixed(factor, value, n, rng)
                .map_err(|e| wae_metrics::Error::InvalidInput(e.to_string()))?;
            encode(&factors)
        },
    );
    let fv = factor_vae_score(&mut sampler, &FACTOR_VAE, seed)?;
    let codes = codes_from_tensor(test_codes)?;
    let factors = classes(test_factors);
    let m = mig(codes.view(), factors.view(), &MigConfig::default())?;

    // Pairs of images sharing factor `factor`, every other factor drawn uniformly.
    type Codes = ndarray::Array2<f64>;
    let pairs =
        |factor: usize, n_pairs: usize, rng: &mut StdRng| -> wae_metrics::Result<(Codes, Codes)> {
            let mut factors: Vec<wae_data::DspritesFactors> = (0..n_pairs)
                .map(|_| wae_data::DspritesFactors::random(rng))
                .collect();
            for i in 0..n_pairs {
                let shared = factors[i].to_array()[factor];
                let mut second =
                    wae_data::dsprites::sample_factors_with_fixed(factor, shared, 1, rng)
                        .map_err(|e| wae_metrics::Error::InvalidInput(e.to_string()))?;
                factors.append(&mut second);
            }
            let codes = encode(&factors)?;
            Ok((
                codes.slice(ndarray::s![..n_pairs, ..]).to_owned(),
                codes.slice(ndarray::s![n_pairs.., ..]).to_owned(),
            ))
        };
    let beta_vae = |settings: BetaVaeConfig, seed: u64| -> Result<BetaVaeMetric> {
        let started = std::time::Instant::now();
        let score = beta_vae_score(&pairs, &settings, seed)?;
        println!(
            "  beta-VAE metric on {} factors: {:.4} in {:.0} s",
            settings.factors.len(),
            score.accuracy,
            started.elapsed().as_secs_f64()
        );
        Ok(BetaVaeMetric {
            accuracy: score.accuracy,
            restart_accuracies: score.restart_accuracies,
            restart_losses: score.restart_losses,
            factor_names: settings
                .factors
                .iter()
                .map(|&k| wae_data::dsprites::DSPRITES_FACTOR_NAMES[k].to_string())
                .collect(),
            settings,
            seed,
        })
    };
    let beta_vae_4_factors =
        beta_vae(BetaVaeConfig::dsprites_four_factors(), seed.wrapping_add(1))?;
    let beta_vae_5_factors =
        beta_vae(BetaVaeConfig::dsprites_five_factors(), seed.wrapping_add(2))?;
    Ok(Disentanglement {
        factor_vae: fv.eval_accuracy,
        factor_vae_train: fv.train_accuracy,
        factor_vae_votes: [
            FACTOR_VAE.num_train,
            FACTOR_VAE.num_eval,
            FACTOR_VAE.batch_size,
        ],
        active_dims: fv.num_active_dims,
        mig: m.mig,
        mig_per_factor: m.gaps,
        beta_vae_4_factors,
        beta_vae_5_factors,
    })
}

/// Applies `features` to `images` (host, `(N, C, H, W)`) in batches on `device`;
/// returns host `(N, D)`.
fn batched_features(
    images: &Tensor,
    device: &Device,
    features: impl Fn(&Tensor) -> wae_metrics::Result<Tensor>,
) -> Result<Tensor> {
    let n = images.dim(0)?;
    let mut parts = Vec::new();
    let mut start = 0;
    while start < n {
        let len = BATCH.min(n - start);
        let batch = images.narrow(0, start, len)?.to_device(device)?;
        parts.push(features(&batch)?.to_device(&Device::Cpu)?);
        start += len;
    }
    Ok(Tensor::cat(&parts, 0)?)
}

fn scores(real: &Tensor, generated: &Tensor) -> Result<FeatureScores> {
    let fid = frechet_distance(
        &GaussianStats::from_tensor(real)?,
        &GaussianStats::from_tensor(generated)?,
    )?;
    let pr = precision_recall(real, generated)?;
    let kid = wae_metrics::kid(
        &wae_metrics::disentanglement::codes_from_tensor(real)?,
        &wae_metrics::disentanglement::codes_from_tensor(generated)?,
        &wae_metrics::KidConfig::default(),
    )?;
    Ok(FeatureScores {
        fid,
        precision: pr.precision,
        recall: pr.recall,
        feature_dim: real.dim(1)?,
        kid,
    })
}

/// Codes in the permutation test and the TwoNN estimate (both cost O(n^2)).
const PRIOR_MATCH_POINTS: usize = 1000;
/// Permutations of the test.
const PRIOR_MATCH_PERMUTATIONS: usize = 200;

fn prior_match(
    run: &LoadedRun,
    means: &Tensor,
    logvar: Option<&Tensor>,
    prior: &Tensor,
    mmd_cfg: &wae_divergence::MmdConfig,
    seed: u64,
) -> Result<PriorMatch> {
    let k = means.dim(0)?.min(PRIOR_MATCH_POINTS);
    let (codes, what) = match logvar {
        Some(lv) => (
            LoadedRun::sample_codes(run.cfg.model.encoder.kind, means, lv, seed.wrapping_add(1))?,
            "one code drawn from Q(z|x) per test image",
        ),
        None => (means.clone(), "encoder means of the test images"),
    };
    let codes = codes.narrow(0, 0, k)?;
    let prior = prior.narrow(0, 0, k)?;
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(7));
    let test = wae_divergence::mmd_permutation_test(
        &codes,
        &prior,
        mmd_cfg,
        PRIOR_MATCH_PERMUTATIONS,
        &mut rng,
    )?;
    let dim =
        wae_metrics::two_nn_dimension(&wae_metrics::disentanglement::codes_from_tensor(&codes)?)?;
    let prior_dim =
        wae_metrics::two_nn_dimension(&wae_metrics::disentanglement::codes_from_tensor(&prior)?)?;
    let d_z = run.latent_dim();
    let verdict = if test.p_value < 0.01 && dim < 0.75 * prior_dim {
        format!(
            "the codes do not fill the prior: they lie near a {dim:.1}-dimensional set (the \
             prior gives {prior_dim:.1} here, d_z = {d_z}) and differ from it (p = {:.3})",
            test.p_value
        )
    } else if dim > 1.25 * prior_dim {
        format!(
            "the codes {} the prior (p = {:.3}); their TwoNN dimension {dim:.1} exceeds the \
             prior's {prior_dim:.1}, which happens for clustered or repeated codes (discrete \
             data such as dSprites), so it says nothing here",
            if test.p_value < 0.01 {
                "differ from"
            } else {
                "are not told apart from"
            },
            test.p_value
        )
    } else if test.p_value < 0.01 {
        format!(
            "the codes differ from the prior (p = {:.3}) though they spread over about \
             {dim:.1} dimensions (prior: {prior_dim:.1})",
            test.p_value
        )
    } else {
        format!(
            "no evidence against codes = prior at {k} points (p = {:.3}); intrinsic dimension \
             {dim:.1} (prior: {prior_dim:.1})",
            test.p_value
        )
    };
    Ok(PriorMatch {
        codes: what.into(),
        test_points: k,
        statistic: test.statistic,
        p_value: test.p_value,
        permutations: test.num_permutations,
        intrinsic_dimension: dim,
        prior_intrinsic_dimension: prior_dim,
        latent_dim: d_z,
        verdict,
    })
}

/// Scores of each set of `samples` against `real` in the MNIST classifier's features
/// (the real images' features computed once).
fn classifier_scores(
    path: &Path,
    run: &LoadedRun,
    real: &Tensor,
    samples: &[&Tensor],
) -> Result<Vec<FeatureScores>> {
    let net = MnistClassifier::load(path, &run.device)
        .with_context(|| format!("while loading the MNIST classifier {}", path.display()))?;
    let real_f = batched_features(real, &run.device, |x| net.features(x))?;
    samples
        .iter()
        .map(|s| {
            scores(
                &real_f,
                &batched_features(s, &run.device, |x| net.features(x))?,
            )
        })
        .collect()
}

/// Scores of each set of `samples` against `real` in Inception-v3's pool3 features.
fn inception_scores(
    path: &Path,
    run: &LoadedRun,
    real: &Tensor,
    samples: &[&Tensor],
) -> Result<Vec<FeatureScores>> {
    let net = InceptionV3::load(path, &run.device)
        .with_context(|| format!("while loading the Inception weights {}", path.display()))?;
    let real_f = net.features_batched(real, 50, &run.device)?;
    samples
        .iter()
        .map(|s| scores(&real_f, &net.features_batched(s, 50, &run.device)?))
        .collect()
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

fn print_table(e: &EvalFile) {
    let row = |name: &str, value: String, note: &str| {
        println!("  {name:<34} {value:>12}  {note}");
    };
    println!(
        "evaluation of {} (step {}), {} {} images, seed {}",
        e.checkpoint, e.step, e.examples, e.split, e.seed
    );
    row(
        "reconstruction ||x - G(E(x))||^2",
        format!("{:.4}", e.reconstruction_sq_l2),
        "per image, pixels in [0, 1]",
    );
    row(
        "reconstruction MSE per pixel",
        format!("{:.6}", e.reconstruction_mse_per_pixel),
        "",
    );
    row(
        "reconstruction ||x - G(E(x))||_1",
        format!("{:.4}", e.reconstruction_l1),
        "per image",
    );
    row(
        "MMD^2(test codes, prior)",
        format!("{:.3e}", e.mmd_codes_vs_prior),
        "IMQ, U-statistic",
    );
    if let Some(m) = e.mmd_sampled_codes_vs_prior {
        row(
            "MMD^2(codes drawn from Q(z|x), prior)",
            format!("{m:.3e}"),
            "Gaussian encoder",
        );
    }
    row(
        "MMD^2(prior, prior)",
        format!("{:.3e}", e.mmd_prior_vs_prior),
        "noise level of the above",
    );
    let pm = &e.prior_match;
    row(
        "p-value, codes = prior",
        format!("{:.3}", pm.p_value),
        &format!(
            "MMD permutation test, {} points, {} permutations",
            pm.test_points, pm.permutations
        ),
    );
    row(
        "intrinsic dimension of the codes",
        format!("{:.2}", pm.intrinsic_dimension),
        &format!(
            "TwoNN; prior samples {:.2}, d_z = {}",
            pm.prior_intrinsic_dimension, pm.latent_dim
        ),
    );
    println!("  -> {}", pm.verdict);
    row(
        "sharpness of samples",
        format!("{:.3e}", e.sharpness_samples),
        "Laplace variance, higher is sharper",
    );
    row(
        "sharpness of reconstructions",
        format!("{:.3e}", e.sharpness_reconstructions),
        "",
    );
    row(
        "sharpness of test images",
        format!("{:.3e}", e.sharpness_test_images),
        "",
    );
    for (name, s) in [("classifier", &e.classifier), ("inception", &e.inception)] {
        if let Some(s) = s {
            let space = format!("{name}, {}-d features", s.feature_dim);
            row(&format!("FID ({name})"), format!("{:.3}", s.fid), &space);
            row(
                &format!("KID ({name})"),
                format!("{:.3e}", s.kid.mean),
                &format!(
                    "95% of {} subsets in [{:.2e}, {:.2e}]",
                    s.kid.subsets, s.kid.interval[0], s.kid.interval[1]
                ),
            );
            row(
                &format!("precision ({name})"),
                format!("{:.4}", s.precision),
                "k = 3",
            );
            row(
                &format!("recall ({name})"),
                format!("{:.4}", s.recall),
                "k = 3",
            );
        }
    }
    if let Some(g) = &e.gmm_sampler {
        let what = format!(
            "{}-component mixture fitted to {} training codes",
            g.components, g.fit_images
        );
        row(
            "sharpness of mixture samples",
            format!("{:.3e}", g.sharpness_samples),
            &what,
        );
        for (name, s) in [("classifier", &g.classifier), ("inception", &g.inception)] {
            if let Some(s) = s {
                row(
                    &format!("FID ({name}), mixture samples"),
                    format!("{:.3}", s.fid),
                    &what,
                );
                row(
                    &format!("KID ({name}), mixture samples"),
                    format!("{:.3e}", s.kid.mean),
                    "",
                );
                row(
                    &format!("precision / recall ({name}), mixture"),
                    format!("{:.3} / {:.3}", s.precision, s.recall),
                    "k = 3",
                );
            }
        }
    }
    if let Some(d) = &e.disentanglement {
        row(
            "FactorVAE metric",
            format!("{:.4}", d.factor_vae),
            "chance 0.2, 1 = each factor in its own dimensions",
        );
        row(
            "MIG",
            format!("{:.4}", d.mig),
            "0 = entangled, 1 = disentangled",
        );
        for (chance, b) in [(0.25, &d.beta_vae_4_factors), (0.2, &d.beta_vae_5_factors)] {
            let restarts: Vec<String> = b
                .restart_accuracies
                .iter()
                .map(|a| format!("{a:.4}"))
                .collect();
            row(
                &format!("beta-VAE metric, {} factors", b.factor_names.len()),
                format!("{:.4}", b.accuracy),
                &format!("chance {chance}, restarts {}", restarts.join(" ")),
            );
        }
    }
    for s in &e.skipped {
        println!("  skipped {}: {}", s.metric, s.reason);
    }
}

/// Runs `wae eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    if args.n < 4 {
        bail!("--n must be at least 4 (precision/recall need more than k = 3 points)");
    }
    for (flag, file) in [
        ("--classifier", &args.classifier),
        ("--inception", &args.inception),
    ] {
        if let Some(f) = file
            && !f.is_file()
        {
            bail!("{flag} {}: no such file", f.display());
        }
    }
    let components = super::sample::parse_sampler(&args.sampler)?;
    if components.is_some() && args.fit_images < 2 {
        bail!("--fit-images must be at least 2 to fit a mixture");
    }
    let run = pictures::load_run(&args.run, "eval", &[Network::Encoder, Network::Decoder])?;
    let out = run.output_path(args.out.as_deref(), "eval.json");
    let _lock = pictures::claim_output(&run.run_dir, &out, "wae eval")?;
    let data = run.dataset(args.split, args.run.data_dir.as_deref(), Some(args.n))?;
    let n = data.len();
    if n < 4 {
        bail!("the {} split has only {n} images", args.split.name());
    }
    if n < args.n {
        println!(
            "note: the {} split has {n} images, fewer than --n {}",
            args.split.name(),
            args.n
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
    let mut rng = StdRng::seed_from_u64(args.seed);
    let prior_a = run.model().sample_prior(n, &mut rng, &Device::Cpu)?;
    let prior_b = run.model().sample_prior(n, &mut rng, &Device::Cpu)?;
    let prior_c = run.model().sample_prior(n, &mut rng, &Device::Cpu)?;
    let mmd_cfg = wae_divergence::MmdConfig {
        prior_variance: run.cfg.model.prior.kernel_variance(d),
        ..wae_divergence::MmdConfig::default()
    };
    let mmd_codes = wae_divergence::mmd_blockwise(&codes, &prior_a, &mmd_cfg, 1000)?;
    let mmd_prior = wae_divergence::mmd_blockwise(&prior_b, &prior_a, &mmd_cfg, 1000)?;
    let mmd_sampled = match &logvar {
        Some(lv) => {
            let drawn = pictures::LoadedRun::sample_codes(
                run.cfg.model.encoder.kind,
                &codes,
                lv,
                args.seed.wrapping_add(1),
            )?;
            Some(wae_divergence::mmd_blockwise(
                &drawn, &prior_a, &mmd_cfg, 1000,
            )?)
        }
        None => None,
    };
    let samples = run.to_unit_range(&run.decode(&prior_c)?)?;
    let gmm_samples = match components {
        Some(k) => {
            let codes = super::sample::gmm_codes(
                &run,
                args.run.data_dir.as_deref(),
                k,
                args.fit_images,
                n,
                args.seed,
            )?;
            Some((k, run.to_unit_range(&run.decode(&codes)?)?))
        }
        None => None,
    };
    let mut sample_sets = vec![&samples];
    if let Some((_, g)) = &gmm_samples {
        sample_sets.push(g);
    }
    let prior_match = prior_match(&run, &codes, logvar.as_ref(), &prior_a, &mmd_cfg, args.seed)?;

    let mut skipped = Vec::new();
    let (_, channels, h, w) = real.dims4()?;
    let classifier = match &args.classifier {
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
        Some(path) => Some(classifier_scores(path, &run, &real, &sample_sets)?),
    };
    let inception = match &args.inception {
        None => {
            skipped.push(Skipped {
                metric: "inception (FID, precision, recall)".into(),
                reason: "no --inception FILE given (`cargo xtask download inception`)".into(),
            });
            None
        }
        Some(path) => {
            if channels == 1 {
                println!(
                    "note: Inception features of {n} grey images (repeated to RGB, resized to \
                     299x299): this takes long on a CPU"
                );
            }
            Some(inception_scores(path, &run, &real, &sample_sets)?)
        }
    };

    let disentanglement = match wae_train::trainer::dsprites_test_factors(&run.cfg)? {
        Some(_) if args.no_disentanglement => {
            skipped.push(Skipped {
                metric: "disentanglement (FactorVAE, MIG, beta-VAE metric)".into(),
                reason: "--no-disentanglement".into(),
            });
            None
        }
        Some(factors) if matches!(args.split, SplitArg::Test) => {
            let beta = wae_metrics::BetaVaeConfig::default();
            println!(
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
            Some(disentanglement(&run, &factors[..n], &codes, args.seed)?)
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
        Some((k, g)) => Some(GmmSamplerScores {
            components: *k,
            fit_images: args.fit_images,
            sharpness_samples: laplace_sharpness(g)?,
            classifier: classifier_gmm,
            inception: inception_gmm,
        }),
        None => None,
    };
    let report = EvalFile {
        step: run.step,
        examples: n,
        reconstruction_sq_l2: rec.squared_l2_per_image,
        reconstruction_mse_per_pixel: rec.mse_per_pixel,
        reconstruction_l1: rec.l1_per_image,
        mmd_codes_vs_prior: mmd_codes,
        mmd_prior_vs_prior: mmd_prior,
        sharpness_samples: laplace_sharpness(&samples)?,
        sharpness_reconstructions: laplace_sharpness(&reconstructions)?,
        sharpness_test_images: laplace_sharpness(&real)?,
        mmd_sampled_codes_vs_prior: mmd_sampled,
        prior_match,
        gmm_sampler,
        classifier,
        inception,
        disentanglement,
        skipped,
        run: run.run_dir.display().to_string(),
        checkpoint: run.checkpoint_dir.display().to_string(),
        split: args.split.name().into(),
        seed: args.seed,
    };
    let text = serde_json::to_string_pretty(&report).context("while writing JSON")?;
    wae_viz::write_atomic(&out, format!("{text}\n").as_bytes())
        .context("while saving the evaluation")?;
    print_table(&report);
    println!("wrote {}", out.display());
    Ok(())
}
