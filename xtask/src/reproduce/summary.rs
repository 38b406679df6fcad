//! What a finished run records in its `done.json`: [`RunSummary`] for a reproduction's
//! runs, and [`DoneConfig`], the part every `done.json` (a sweep's too) shares.

use serde::{Deserialize, Serialize};
use wae_train::evaluate::EvalReport;

/// One finished (model, seed) of a reproduction: its `done.json`, and its entry under
/// `models.<model>.seeds.<seed>` in `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The full-size preset the model's config is made from.
    pub preset: String,
    /// The model's label in tables.
    pub label: String,
    /// The config's description.
    pub description: String,
    /// The seed it was trained with.
    pub seed: u64,
    /// Training steps done.
    pub steps: u64,
    /// The config's epochs.
    pub epochs: u64,
    /// Wall-clock seconds of training (the newest checkpoint's).
    pub training_seconds: f64,
    /// Its `eval.json`.
    pub eval: EvalReport,
    /// The untrained baseline's test reconstruction error (`null`: not a finite number).
    pub untrained_reconstruction_sq_l2: Option<f64>,
    /// The untrained baseline's MMD^2 of the codes to the prior (`null`: not finite).
    pub untrained_mmd_codes_vs_prior: Option<f64>,
    /// The quantities logged as NaN or infinite in `metrics.jsonl`.
    pub non_finite_metrics: Vec<String>,
    /// Its pictures, relative to the output folder.
    pub pictures: Vec<String>,
    /// The config it was trained with (TOML): a re-run skips it only for the same one.
    pub config_toml: String,
}

/// What every `done.json` holds whoever wrote it (a reproduction's [`RunSummary`] or a
/// sweep's marker): the config the run was trained with, `None` where it is missing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DoneConfig {
    /// The config's TOML.
    #[serde(default)]
    pub config_toml: Option<String>,
}
