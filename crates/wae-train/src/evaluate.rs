//! The one evaluation of a trained model and the one `eval.json` it writes.
//!
//! [`EvalReport`] is the file's schema (version [`SCHEMA_VERSION`]). Two evaluations
//! fill it:
//! - [`evaluate`] (`wae eval`): reconstruction errors, MMD of the codes to the prior, the
//!   prior-match test, sharpness, FID / KID / precision / recall in the MNIST classifier's
//!   or Inception-v3's features, the post-hoc Gaussian-mixture sampler, and the
//!   disentanglement scores of dSprites runs;
//! - [`end_of_training`] (the trainer, when a run reaches its end; any `AutoEncoder`):
//!   the reconstruction error and the MMDs only, on the device the run trained on, with
//!   the other fields left out and listed in [`EvalReport::skipped`].
//!
//! # Example
//! ```no_run
//! use wae_train::evaluate::{EvalOptions, evaluate};
//! use wae_train::{DeviceChoice, TrainedRun};
//!
//! # fn main() -> wae_train::Result<()> {
//! let run = TrainedRun::load(std::path::Path::new("runs/mmd"), &DeviceChoice::Cpu.open()?)?;
//! let report = evaluate(&run, &EvalOptions { n: 2000, ..EvalOptions::default() })?;
//! println!("reconstruction {:.4}", report.reconstruction_sq_l2);
//! report.save(&run.run_dir.join(wae_train::EVAL_FILE))?;
//! # Ok(())
//! # }
//! ```

mod disentanglement;
mod features;
mod full;
mod prior_match;
mod training;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use disentanglement::FACTOR_VAE;
pub use features::{batched_features, feature_scores};
pub use full::{EvalOptions, GmmSampler, evaluate};
pub use training::{EndOfTraining, end_of_training};

use crate::{Error, Result};

/// Name of the evaluation file in a run directory.
pub const EVAL_FILE: &str = "eval.json";

/// Version of the `eval.json` schema [`EvalReport`] writes. Files without the field
/// (written before it existed) read as version 0; their fields are a subset of these.
pub const SCHEMA_VERSION: u32 = 1;

/// The content of `eval.json`, whoever wrote it. Fields an evaluation did not compute
/// are left out of the file (and `None` here); [`EvalReport::skipped`] says why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Version of this schema ([`SCHEMA_VERSION`] when written; 0 for older files, which
    /// are written back without the field, as they were).
    #[serde(default, skip_serializing_if = "is_version_zero")]
    pub schema_version: u32,
    /// Training steps of the checkpoint evaluated.
    pub step: u64,
    /// Test images (and samples) used.
    pub examples: usize,
    /// Mean over images of `||x - G(E(x))||^2` summed over pixels (pixels in [0, 1]),
    /// codes the encoder means, evaluation mode.
    pub reconstruction_sq_l2: f64,
    /// The same divided by the number of pixel values (mean squared error per pixel).
    pub reconstruction_mse_per_pixel: f64,
    /// Mean over images of `||x - G(E(x))||_1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconstruction_l1: Option<f64>,
    /// MMD^2 (IMQ, scales 0.1..10, U-statistic) between the test codes and as many prior
    /// samples.
    pub mmd_codes_vs_prior: f64,
    /// The same estimator between two independent prior samples: the value a perfect
    /// match gives, up to noise.
    pub mmd_prior_vs_prior: f64,
    /// Laplace sharpness of `examples` samples G(z), z from the prior.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharpness_samples: Option<f64>,
    /// Laplace sharpness of the reconstructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharpness_reconstructions: Option<f64>,
    /// Laplace sharpness of the test images themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharpness_test_images: Option<f64>,
    /// Random (Gaussian or uniform-noise) encoders only: MMD^2 between codes drawn from
    /// Q(z|x) (one per test image) and the prior, the quantity a random-encoder WAE
    /// matches (`mmd_codes_vs_prior` uses the encoder means).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mmd_sampled_codes_vs_prior: Option<f64>,
    /// Samples vs test images in the MNIST classifier's feature space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier: Option<FeatureScores>,
    /// Samples vs test images in Inception-v3's pool3 space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inception: Option<FeatureScores>,
    /// Permutation test and intrinsic dimension of the codes against the prior.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior_match: Option<PriorMatch>,
    /// Scores of the post-hoc mixture sampler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gmm_sampler: Option<GmmSamplerScores>,
    /// FactorVAE, MIG and beta-VAE-metric scores (dSprites runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disentanglement: Option<Disentanglement>,
    /// Metrics not computed, with the reason.
    #[serde(default)]
    pub skipped: Vec<Skipped>,
    /// The run directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// The checkpoint directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// The split the images came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// Seed of the prior draws (`None`: the trainer's, drawn from the run's seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl EvalReport {
    /// Writes the report as pretty JSON to `path` (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::InvalidInput(format!("cannot write eval report: {e}")))?;
        wae_io::write_atomic(path, format!("{text}\n").as_bytes())?;
        Ok(())
    }

    /// Reads an `eval.json` (any schema version up to [`SCHEMA_VERSION`]).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let report: Self = serde_json::from_str(&text).map_err(|e| {
            Error::InvalidInput(format!("{} is not an eval.json: {e}", path.display()))
        })?;
        if report.schema_version > SCHEMA_VERSION {
            return Err(Error::InvalidInput(format!(
                "{} has eval.json schema version {}, newer than this version's {SCHEMA_VERSION}",
                path.display(),
                report.schema_version
            )));
        }
        Ok(report)
    }
}

/// Whether a report is of version 0 (a file from before the field existed).
fn is_version_zero(version: &u32) -> bool {
    *version == 0
}

/// A metric left out, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// The metric's key.
    pub metric: String,
    /// Why it was not computed.
    pub reason: String,
}

/// FID and precision/recall in one feature space.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
    /// unbiased polynomial-kernel MMD^2, mean over random subsets, with its spread);
    /// `None` in files written before it was computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<wae_metrics::Kid>,
}

/// Samples decoded from a post-hoc Gaussian mixture fitted to training codes
/// (`eval.json` field `gmm_sampler`), scored as the prior's samples are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GmmSamplerScores {
    /// Mixture components K.
    pub components: usize,
    /// Training images whose encoder means the mixture was fitted to (as asked for).
    pub fit_images: usize,
    /// Laplace sharpness of the mixture's samples.
    pub sharpness_samples: f64,
    /// The mixture's samples vs test images in the MNIST classifier's feature space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier: Option<FeatureScores>,
    /// The mixture's samples vs test images in Inception-v3's pool3 space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inception: Option<FeatureScores>,
}

/// Does the codes' distribution match the prior? (`eval.json` field `prior_match`)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// Disentanglement scores of the encoder means on dSprites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// The beta-VAE metric on the last 4 factors (scale, orientation, posX, posY);
    /// `None` in files written before it was computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta_vae_4_factors: Option<BetaVaeMetric>,
    /// The beta-VAE metric on all 5 factors (`None` in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta_vae_5_factors: Option<BetaVaeMetric>,
}

/// The beta-VAE metric (Higgins et al. 2017) as Rubenstein et al.'s
/// `disentanglement_metric.py` computes it (`wae_metrics::beta_vae_metric`): training
/// accuracy of a linear softmax classifier that names the factor shared within pairs
/// from the mean absolute code difference of 30 pairs of fresh images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `eval.json` committed under docs/results (both writers, every version so
    /// far) reads into the one report type, and writes back to the same JSON.
    #[test]
    fn committed_eval_files_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/results");
        let mut stack = vec![root];
        let mut read = 0;
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("docs/results") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with("eval.json"))
                {
                    let report = EvalReport::read(&path)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    assert!(report.examples > 0, "{}", path.display());
                    // Nothing is lost or added: written back, it is the file's JSON (what
                    // `cargo xtask reproduce` relies on when it copies a report), but for
                    // an empty `skipped` list where the trainer's evaluation had none.
                    let mut file: serde_json::Value =
                        serde_json::from_str(&std::fs::read_to_string(&path).expect("read"))
                            .expect("json");
                    if let Some(fields) = file.as_object_mut() {
                        fields.entry("skipped").or_insert(serde_json::json!([]));
                    }
                    assert_eq!(
                        serde_json::to_value(&report).expect("to_value"),
                        file,
                        "{}: read and written back it differs",
                        path.display()
                    );
                    read += 1;
                }
            }
        }
        assert!(read >= 60, "read {read} eval.json files");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(EVAL_FILE);
        let text = r#"{"schema_version": 99, "step": 1, "examples": 2,
            "reconstruction_sq_l2": 1.0, "reconstruction_mse_per_pixel": 0.1,
            "mmd_codes_vs_prior": 0.0, "mmd_prior_vs_prior": 0.0}"#;
        std::fs::write(&path, text).expect("write");
        let err = EvalReport::read(&path).expect_err("version 99").to_string();
        assert!(err.contains("schema version 99"), "{err}");
    }
}
