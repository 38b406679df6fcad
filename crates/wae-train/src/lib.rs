//! Training of Wasserstein auto-encoders and VAEs: configs and presets, Adam
//! with saveable state, learning-rate schedules, encoder pretraining, atomic and
//! verified checkpoints, exact resumption, `metrics.jsonl` logging, and the evaluation
//! of a trained model with its one `eval.json` schema ([`evaluate`]).
//!
//! # Reproducibility
//! Every random number of a run is drawn from a `StdRng` derived from the run's
//! seed and the step (or epoch, or parameter name), see [`rng`]. No RNG state
//! is checkpointed because none is carried from step to step: a run stopped
//! after step 10 and resumed gives bit-for-bit the weights and losses of a run
//! that never stopped (same device and thread count).
//!
//! # Example: a few steps of the smoke preset
//! ```no_run
//! use wae_train::{TrainOptions, preset, train};
//!
//! # fn main() -> wae_train::Result<()> {
//! let mut cfg = preset("mnist-wae-mmd-smoke")?;
//! cfg.training.max_steps = Some(4);
//! let summary = train(&cfg, &TrainOptions::new("runs/smoke"))?;
//! println!("{} steps, last losses {:?}", summary.steps, summary.last_losses);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod adam;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod device;
mod error;
pub mod evaluate;
pub mod init;
pub mod metrics;
pub mod model;
pub mod presets;
pub mod progress;
pub mod rng;
pub mod run_dir;
pub mod run_lock;
pub mod schedule;
pub mod selftest;
pub mod step;
pub mod trainable;
pub mod trained;
pub mod trainer;

pub use adam::{Adam, AdamConfig};
pub use config::{
    DEFAULT_SPLIT_SEED, DEFAULT_TEST_FRACTION, DataConfig, DatasetKind, OptimizerConfig,
    PretrainConfig, SplitKind, TrainConfig, TrainingConfig,
};
pub use device::DeviceChoice;
pub use error::{Error, Result};
pub use model::{Model, ModelConfig};
pub use presets::{PRESETS, preset, preset_summary};
pub use run_dir::{DONE_FILE, RunDir};
pub use run_lock::RunLock;
pub use schedule::{Milestone, Schedule, ScheduleState, StepMilestone};
pub use step::{StepReport, StepSeconds, TrainStep};
pub use trainable::TrainableModel;
pub use trained::{Network, Split, TrainedRun};
pub use trainer::{
    BuiltModel, EVAL_FILE, EvalReport, ResumeOverrides, TrainOptions, TrainSummary, build_model,
    load_data, load_trained, load_user_data, loss_values, model_batch, resume, resume_with,
    symmetric_pixels, train, train_with,
};

/// The process's peak resident set size in MiB (`VmHWM` of `/proc/self/status`), where
/// the system reports it (Linux); `None` elsewhere.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
