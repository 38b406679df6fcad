//! Exact resumption of a run: [`resume`] for the project's `Model`, [`resume_with`] for
//! any [`TrainableModel`], and what may change when resuming ([`ResumeOverrides`]).

use candle_nn::VarBuilder;
use tracing::{info, warn};

use super::{Run, TrainOptions, TrainSummary, prepare_run_dir, project_model};
use crate::checkpoint::{self, CONFIG_FILE, MODEL_FILE, OPTIMIZER_FILE};
use crate::config::TrainConfig;
use crate::metrics::MetricsLog;
use crate::run_dir::RunDir;
use crate::run_lock::RunLock;
use crate::trainable::TrainableModel;
use crate::{Error, Result};

/// What may be changed when resuming.
#[derive(Debug, Clone, Default)]
pub struct ResumeOverrides {
    /// A config given again on the command line: its data, model, objective, seed and
    /// batch size must equal the checkpoint's; the rest (epochs, optimiser, logging) is taken from it.
    pub config: Option<TrainConfig>,
    /// New total number of epochs.
    pub epochs: Option<u64>,
    /// A seed given on the command line: must equal the run's.
    pub seed: Option<u64>,
}

fn differing_sections(a: &TrainConfig, b: &TrainConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    if a.model != b.model {
        out.push("model (architecture, widths, prior)");
    }
    if a.objective != b.objective {
        out.push("objective");
    }
    if a.data != b.data {
        out.push("data");
    }
    if a.seed != b.seed {
        out.push("seed");
    }
    if a.training.batch_size != b.training.batch_size {
        out.push("training.batch_size");
    }
    out
}

/// Continues a run exactly: the same steps, data order and noise as a run that
/// never stopped. `opts.run_dir` is the run directory (resumed from its newest
/// checkpoint) or one of its checkpoint folders `RUN/checkpoints/step-N` (resumed
/// from that step: the newer checkpoints are removed, with a warning naming them,
/// once it has loaded). `metrics.jsonl` is appended to (lines logged after the
/// checkpoint are dropped first). Holds the run directory's [`RunLock`] throughout.
/// The model is the project's [`Model`](crate::Model) of the run's config.
pub fn resume(opts: &TrainOptions, overrides: &ResumeOverrides) -> Result<TrainSummary> {
    resume_with(opts, overrides, project_model)
}

/// [`resume`] for a run started by [`train_with`](super::train_with): `build` makes the
/// model from the run's config (as the checkpoint saved it, with `overrides` applied) and
/// the root [`VarBuilder`]; the checkpoint's weights then replace the initial ones, and
/// every variable of the checkpoint must be one of the model's (and the other way round).
pub fn resume_with<M: TrainableModel>(
    opts: &TrainOptions,
    overrides: &ResumeOverrides,
    build: impl FnOnce(&TrainConfig, VarBuilder<'static>) -> Result<M>,
) -> Result<TrainSummary> {
    let from_step_dir = checkpoint::run_dir_of_checkpoint(&opts.run_dir);
    let run_dir = from_step_dir
        .clone()
        .unwrap_or_else(|| opts.run_dir.clone());
    if !run_dir.is_dir() {
        return Err(Error::Io {
            path: run_dir.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no checkpoint to resume from: the directory does not exist",
            ),
        });
    }
    let _lock = RunLock::acquire(&run_dir, "wae train --resume")?;
    let dir = match &from_step_dir {
        Some(_) => opts.run_dir.clone(),
        None => checkpoint::resume_checkpoint_dir(&run_dir)?,
    };
    let opts = &TrainOptions {
        run_dir: run_dir.clone(),
        ..opts.clone()
    };
    let ck = checkpoint::load_checkpoint(&dir, &opts.device)?;
    let ck_config_path = dir.join(CONFIG_FILE);
    let ck_cfg = TrainConfig::from_toml_str(&ck.config_text, &ck_config_path)?;
    let mut cfg = match &overrides.config {
        Some(given) => {
            let diff = differing_sections(&ck_cfg, given);
            if !diff.is_empty() {
                return Err(Error::CheckpointMismatch {
                    path: ck_config_path,
                    reason: format!(
                        "the configuration given differs from the checkpoint's in: {}; \
                         resume without --config/--preset, or start a new run",
                        diff.join(", ")
                    ),
                });
            }
            given.clone()
        }
        None => ck_cfg,
    };
    if let Some(seed) = overrides.seed
        && seed != cfg.seed
    {
        return Err(Error::CheckpointMismatch {
            path: ck_config_path,
            reason: format!("the run was made with seed {}, not {seed}", cfg.seed),
        });
    }
    if let Some(e) = overrides.epochs {
        cfg.training.epochs = e;
    }
    let build_cfg = cfg.clone();
    let mut run = Run::new(cfg, opts, |vb| build(&build_cfg, vb))?;
    checkpoint::restore_vars(&run.vars.named_vars(), &ck.model, &dir.join(MODEL_FILE))?;
    let optim_path = dir.join(OPTIMIZER_FILE);
    run.step
        .autoencoder_optimizer_mut()
        .load_state(&ck.optimizer, "ae.", &optim_path)?;
    if let Some(d) = run.step.discriminator_optimizer_mut() {
        d.load_state(&ck.optimizer, "disc.", &optim_path)?;
    } else if ck.optimizer.keys().any(|k| k.starts_with("disc.")) {
        return Err(Error::CheckpointMismatch {
            path: optim_path,
            reason: "it holds a discriminator's optimiser but the model has no discriminator"
                .into(),
        });
    }
    let st = ck.state;
    if st.train_examples != run.state.train_examples
        || st.batches_per_epoch != run.state.batches_per_epoch
    {
        return Err(Error::CheckpointMismatch {
            path: dir.join(checkpoint::STATE_FILE),
            reason: format!(
                "the run had {} training images in {} batches per epoch; the data now gives {} in {}",
                st.train_examples,
                st.batches_per_epoch,
                run.state.train_examples,
                run.state.batches_per_epoch
            ),
        });
    }
    if st.step != st.epoch * st.batches_per_epoch + st.batch_in_epoch {
        return Err(Error::CorruptCheckpoint {
            path: dir.join(checkpoint::STATE_FILE),
            reason: format!(
                "step {} does not equal epoch {} * {} + batch {}",
                st.step, st.epoch, st.batches_per_epoch, st.batch_in_epoch
            ),
        });
    }
    if st.step != run.step.autoencoder_optimizer().steps_taken() {
        warn!(
            state_step = st.step,
            optimiser_steps = run.step.autoencoder_optimizer().steps_taken(),
            "the optimiser's step count differs from the run's step"
        );
    }
    run.state = st;
    run.last_checkpoint = Some(dir.clone());
    run.saved_step = Some(run.state.step);
    if from_step_dir.is_some() {
        let newer: Vec<String> = checkpoint::complete_checkpoints(&run_dir)
            .into_iter()
            .filter(|(s, _)| *s > run.state.step)
            .map(|(_, p)| p.display().to_string())
            .collect();
        if !newer.is_empty() {
            warn!(
                "resuming from step {}: removing the newer checkpoints {} (they continue the \
                 run past the step it now restarts from)",
                run.state.step,
                newer.join(", ")
            );
        }
        checkpoint::rewind_to(&run_dir, &dir, run.state.step)?;
    }
    prepare_run_dir(&opts.run_dir, &run.config_text)?;
    let metrics = MetricsLog::open(&RunDir::new(&opts.run_dir).metrics(), Some(run.state.step))?;
    info!(checkpoint = %dir.display(), step = run.state.step, "resuming");
    run.run(opts, metrics)
}
