//! The training loop: fresh runs, exact resumption, evaluation.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde_json::{Map, Value};
use tracing::info;
use wae_data::Dataset;
use wae_objectives::{LossParts, Objective};

use crate::adam::{Adam, AdamConfig};
use crate::checkpoint::{self, CONFIG_FILE, CheckpointData, STATE_FORMAT, TrainState};
use crate::config::TrainConfig;
use crate::init::SeededVarMap;
use crate::metrics::MetricsLog;
use crate::model::Model;
use crate::progress::step_bar;
use crate::rng::{Stream, derived_rng};
use crate::run_dir::RunDir;
use crate::run_lock::RunLock;
use crate::schedule::ScheduleState;
use crate::step::TrainStep;
use crate::trainable::TrainableModel;
use crate::{Error, Result};

mod resume;

pub use crate::evaluate::{EVAL_FILE, EvalReport};
pub use resume::{ResumeOverrides, resume, resume_with};

/// Text stored in `state.json` to say how randomness is reproduced.
pub const RNG_NOTE: &str = "no RNG state is saved: step s draws its noise from \
    StdRng(seed, StepNoise, s), epoch e's data order is wae_data::epoch_permutation(n, seed, e), \
    pretraining step k uses StdRng(seed, Pretrain, k), weights StdRng(seed, Init, fnv1a(name))";

/// Run-time options that are not part of the configuration.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The run directory (created if needed).
    pub run_dir: PathBuf,
    /// Where tensors live.
    pub device: Device,
    /// Data directory, overriding `data.dir`.
    pub data_dir: Option<PathBuf>,
    /// Stop once this many steps are done in total (overrides `training.max_steps`,
    /// not saved in the run's config).
    pub max_steps: Option<u64>,
    /// Draw a progress bar (only when stdout is a terminal).
    pub progress: bool,
    /// A stop request the trainer polls between steps: once it holds a non-zero value
    /// (the binary stores the number of the signal it received), the current step is
    /// finished, a checkpoint is written at it and the run returns with
    /// [`TrainSummary::stopped_by`] set to that value. The library installs no signal
    /// handler itself.
    pub stop: Option<Arc<AtomicUsize>>,
}

impl TrainOptions {
    /// Options for `run_dir` on the CPU, no overrides, progress bar on.
    pub fn new(run_dir: impl Into<PathBuf>) -> Self {
        Self {
            run_dir: run_dir.into(),
            device: Device::Cpu,
            data_dir: None,
            max_steps: None,
            progress: true,
            stop: None,
        }
    }
}

/// What a finished (or stopped) run returns.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Steps done in total.
    pub steps: u64,
    /// Steps the run aims at (epochs * batches per epoch, capped by max_steps).
    pub target_steps: u64,
    /// Loss parts of the last step.
    pub last_losses: BTreeMap<String, f64>,
    /// The newest checkpoint.
    pub checkpoint: PathBuf,
    /// The evaluation, when the run reached its end and `eval_examples > 0`.
    pub eval: Option<EvalReport>,
    /// The value of [`TrainOptions::stop`] when the run stopped because it was asked to
    /// (`None` when it ran to its target).
    pub stopped_by: Option<usize>,
    /// The run directory (the parent of the checkpoint folder when resuming from one).
    pub run_dir: PathBuf,
}

pub use crate::data::{
    TEST_DATA_SEED, TRAIN_DATA_SEED, dsprites_rows, dsprites_test_factors, load_data,
    load_user_data,
};

/// Whether the model works on pixels in [-1, 1] (a tanh decoder) rather than [0, 1].
pub fn symmetric_pixels(cfg: &TrainConfig) -> bool {
    cfg.model.decoder.activation == wae_nets::Activation::Tanh
}

/// A batch of `data` at `indices` in the model's pixel range: [0, 1], or [-1, 1] for
/// a tanh decoder (`2 x - 1`).
pub fn model_batch(
    cfg: &TrainConfig,
    data: &Dataset,
    indices: &[usize],
    device: &Device,
) -> Result<Tensor> {
    let x = data.batch(indices, device)?;
    Ok(if symmetric_pixels(cfg) {
        x.affine(2.0, -1.0)?
    } else {
        x
    })
}

/// A model and its variables, built from a config with seeded initial weights.
pub struct BuiltModel {
    /// The variables (all of them, BatchNorm statistics included).
    pub vars: SeededVarMap,
    /// The networks and objective.
    pub model: Model,
}

/// Builds the model of `cfg` on `device`, weights initialised from `cfg.seed`.
pub fn build_model(cfg: &TrainConfig, device: &Device) -> Result<BuiltModel> {
    let vars = SeededVarMap::new(cfg.seed);
    let model = project_model(cfg, vars.var_builder(DType::F32, device))?;
    Ok(BuiltModel { vars, model })
}

/// Loads the newest checkpoint of a run directory into a fresh model: the
/// config, the model with its trained weights (use it in evaluation mode), and
/// the checkpoint directory it came from.
pub fn load_trained(run_dir: &Path, device: &Device) -> Result<(TrainConfig, BuiltModel, PathBuf)> {
    let run = crate::trained::TrainedRun::load(run_dir, device)?;
    Ok((run.cfg, run.built, run.checkpoint_dir))
}

struct Run<M> {
    cfg: TrainConfig,
    config_text: String,
    device: Device,
    /// The variables (all of them, BatchNorm statistics included).
    vars: SeededVarMap,
    /// The model being trained (the project's [`Model`] or a user's own).
    model: M,
    /// `cfg.objective` with `cfg.model.prior`.
    objective: Objective,
    /// The optimisers and the step (the same one a library user calls).
    step: TrainStep,
    train: Dataset,
    test: Dataset,
    state: TrainState,
    run_dir: PathBuf,
    last_checkpoint: Option<PathBuf>,
    /// Step of the newest checkpoint this process wrote or resumed from.
    saved_step: Option<u64>,
    /// The stop request this run was given, and the value it held when the run stopped.
    stop: Option<Arc<AtomicUsize>>,
    stopped_by: Option<usize>,
}

fn optimiser_for(vars_of: &SeededVarMap, prefixes: &[&str], cfg: AdamConfig) -> Result<Adam> {
    Adam::new(vars_of.trainable_vars(prefixes), cfg)
}

fn batches_per_epoch(train_len: usize, batch: usize) -> Result<u64> {
    let b = (train_len / batch) as u64;
    if b == 0 {
        return Err(Error::InvalidConfig(format!(
            "the training set has {train_len} images, fewer than one batch of {batch}"
        )));
    }
    Ok(b)
}

pub(crate) fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

impl<M: TrainableModel> Run<M> {
    fn new(
        cfg: TrainConfig,
        opts: &TrainOptions,
        build: impl FnOnce(VarBuilder<'static>) -> Result<M>,
    ) -> Result<Self> {
        cfg.validate()?;
        let (train, test) = load_data(&cfg, opts.data_dir.as_deref())?;
        let bpe = batches_per_epoch(train.len(), cfg.training.batch_size)?;
        let vars = SeededVarMap::new(cfg.seed);
        let model = build(vars.var_builder(DType::F32, &opts.device))?;
        if model.latent_dim() != cfg.model.latent_dim() {
            return Err(Error::InvalidConfig(format!(
                "the model's latent dimension is {} but the config's is {} (model.encoder.latent_dim): \
                 set it with ModelConfig::with_latent_dim so that the prior draws and config.toml match the model",
                model.latent_dim(),
                cfg.model.latent_dim()
            )));
        }
        let objective = Objective::new(cfg.objective.clone(), cfg.model.prior)?;
        let ae_opt = optimiser_for(
            &vars,
            model.autoencoder_prefixes(),
            cfg.optimizer.autoencoder.clone(),
        )?;
        let disc_opt = if cfg.objective.is_adversarial() {
            Some(optimiser_for(
                &vars,
                model.discriminator_prefixes(),
                cfg.optimizer.discriminator.clone(),
            )?)
        } else {
            None
        };
        let state = TrainState {
            format: STATE_FORMAT,
            step: 0,
            epoch: 0,
            batch_in_epoch: 0,
            batches_per_epoch: bpe,
            train_examples: train.len() as u64,
            seed: cfg.seed,
            rng: RNG_NOTE.into(),
            schedule: ScheduleState::default(),
            pretrain_done: !cfg.pretrain.enabled,
            epoch_loss_sum: 0.0,
            epoch_loss_count: 0,
            elapsed_seconds: 0.0,
            files: BTreeMap::new(),
        };
        let config_text = cfg.to_toml_string()?;
        Ok(Self {
            cfg,
            config_text,
            device: opts.device.clone(),
            vars,
            model,
            objective,
            step: TrainStep::new(ae_opt, disc_opt),
            train,
            test,
            state,
            run_dir: opts.run_dir.clone(),
            last_checkpoint: None,
            saved_step: None,
            stop: opts.stop.clone(),
            stopped_by: None,
        })
    }

    fn target_steps(&self, opts: &TrainOptions) -> u64 {
        let full = self.cfg.training.epochs * self.state.batches_per_epoch;
        match opts.max_steps.or(self.cfg.training.max_steps) {
            Some(m) => full.min(m),
            None => full,
        }
    }

    fn last_checkpoint_text(&self) -> String {
        match &self.last_checkpoint {
            Some(p) => p.display().to_string(),
            None => "none (no checkpoint was written before this step)".into(),
        }
    }

    fn save(&mut self, elapsed: f64) -> Result<PathBuf> {
        let model: HashMap<String, Tensor> = self
            .vars
            .named_vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        let mut optimizer = HashMap::new();
        for (k, v) in self.step.autoencoder_optimizer().state_tensors()? {
            optimizer.insert(format!("ae.{k}"), v);
        }
        if let Some(d) = self.step.discriminator_optimizer() {
            for (k, v) in d.state_tensors()? {
                optimizer.insert(format!("disc.{k}"), v);
            }
        }
        let mut state = self.state.clone();
        state.elapsed_seconds = elapsed;
        let dir = checkpoint::save_checkpoint(
            &self.run_dir,
            CheckpointData {
                state,
                config_text: &self.config_text,
                model: &model,
                optimizer: &optimizer,
            },
            self.cfg.training.keep_checkpoints,
        )?;
        self.last_checkpoint = Some(dir.clone());
        self.saved_step = Some(self.state.step);
        Ok(dir)
    }

    /// The value of the stop request, when one was made.
    fn stop_requested(&self) -> Option<usize> {
        self.stop
            .as_ref()
            .map(|s| s.load(Ordering::SeqCst))
            .filter(|&v| v != 0)
    }

    fn pretrain(&mut self) -> Result<()> {
        let p = self.cfg.pretrain.clone();
        let mut opt = optimiser_for(
            &self.vars,
            self.model.pretrain_prefixes(),
            AdamConfig {
                lr: p.lr,
                ..self.cfg.optimizer.autoencoder.clone()
            },
        )?;
        let n = p.sample_size.min(self.train.len());
        info!(
            sample_size = n,
            max_steps = p.max_steps,
            "pretraining the encoder"
        );
        let mut last = f64::NAN;
        for k in 0..p.max_steps {
            if let Some(value) = self.stop_requested() {
                // Nothing is saved: the first checkpoint comes after pretraining, and a
                // partly pretrained encoder would make the run differ from an
                // uninterrupted one. A new start repeats the pretraining.
                info!(
                    step = k,
                    "stopped during the encoder's pretraining, before the first checkpoint: \
                     nothing is saved; start the run again (not --resume)"
                );
                self.stopped_by = Some(value);
                return Ok(());
            }
            let mut rng = derived_rng(self.cfg.seed, Stream::Pretrain, k);
            let idx = rand::seq::index::sample(&mut rng, self.train.len(), n).into_vec();
            let x = model_batch(&self.cfg, &self.train, &idx, &self.device)?;
            let noise = self
                .model
                .draw_noise(&self.objective, n, &mut rng, &self.device)?;
            let Some(loss) = self.model.pretrain_loss(&x, &noise)? else {
                return Err(Error::InvalidConfig(
                    "pretrain.enabled = true but this model has no pretraining \
                     (TrainableModel::pretrain_loss returns None): set pretrain.enabled = false"
                        .into(),
                ));
            };
            last = scalar(&loss)?;
            if !last.is_finite() {
                return Err(Error::NonFinite {
                    step: k,
                    part: "pretrain_loss".into(),
                    value: last,
                    last_checkpoint: self.last_checkpoint_text(),
                });
            }
            opt.step(&loss.backward()?)?;
            if last < p.stop_below {
                info!(step = k, loss = last, "pretraining reached its target");
                break;
            }
        }
        info!(loss = last, "pretraining done");
        Ok(())
    }

    fn set_learning_rates(&mut self) {
        let f = self.state.schedule.lr_factor;
        self.step
            .autoencoder_optimizer_mut()
            .set_learning_rate(self.cfg.optimizer.autoencoder.lr * f);
        if let Some(d) = self.step.discriminator_optimizer_mut() {
            d.set_learning_rate(self.cfg.optimizer.discriminator.lr * f);
        }
    }

    fn loop_until(
        &mut self,
        target: u64,
        metrics: &mut MetricsLog,
        opts: &TrainOptions,
    ) -> Result<BTreeMap<String, f64>> {
        let started = Instant::now();
        let elapsed_before = self.state.elapsed_seconds;
        let bpe = self.state.batches_per_epoch;
        let batch = self.cfg.training.batch_size;
        let seed = self.cfg.seed;
        let bar = step_bar(target, self.state.step, !opts.progress);
        let mut order: Option<(u64, Vec<usize>)> = None;
        let mut last_losses = BTreeMap::new();
        while self.state.step < target {
            if let Some(value) = self.stop_requested() {
                // Between steps: the last one is finished; save it unless just saved.
                if self.saved_step != Some(self.state.step) {
                    let elapsed = elapsed_before + started.elapsed().as_secs_f64();
                    self.save(elapsed)?;
                }
                self.stopped_by = Some(value);
                break;
            }
            let step = self.state.step;
            let epoch = step / bpe;
            let pos = (step % bpe) as usize;
            self.state.schedule.start_step(
                &self.cfg.optimizer.schedule,
                step,
                epoch,
                self.cfg.training.epochs,
            );
            self.set_learning_rates();
            if order.as_ref().map(|o| o.0) != Some(epoch) {
                order = Some((
                    epoch,
                    wae_data::epoch_permutation(self.train.len(), seed, epoch),
                ));
            }
            let indices = match &order {
                Some((_, o)) => &o[pos * batch..(pos + 1) * batch],
                None => &[][..],
            };
            let x = model_batch(&self.cfg, &self.train, indices, &self.device)?;
            let mut rng = derived_rng(seed, Stream::StepNoise, step);
            let noise = self
                .model
                .draw_noise(&self.objective, batch, &mut rng, &self.device)?;
            let values = self
                .step
                .step(&self.model, &self.objective, &x, &noise, step)
                .map_err(|e| match e {
                    Error::NonFinite {
                        step, part, value, ..
                    } => Error::NonFinite {
                        step,
                        part,
                        value,
                        last_checkpoint: self.last_checkpoint_text(),
                    },
                    other => other,
                })?
                .values;
            self.state.epoch_loss_sum += values["total"];
            self.state.epoch_loss_count += 1;
            self.state.step += 1;
            self.state.epoch = self.state.step / bpe;
            self.state.batch_in_epoch = self.state.step % bpe;
            let epoch_done = self.state.step.is_multiple_of(bpe);
            let elapsed = elapsed_before + started.elapsed().as_secs_f64();
            if self
                .state
                .step
                .is_multiple_of(self.cfg.training.log_every_steps)
                || self.state.step == target
            {
                let mut rec = Map::new();
                rec.insert("step".into(), Value::from(self.state.step));
                rec.insert("epoch".into(), Value::from(epoch));
                for (k, v) in &values {
                    rec.insert(k.clone(), Value::from(*v));
                }
                rec.insert(
                    "lr".into(),
                    Value::from(self.step.autoencoder_optimizer().learning_rate()),
                );
                if let Some(d) = self.step.discriminator_optimizer() {
                    rec.insert("lr_discriminator".into(), Value::from(d.learning_rate()));
                }
                rec.insert("seconds".into(), Value::from(elapsed));
                metrics.write(&rec)?;
            }
            bar.set_position(self.state.step);
            bar.set_message(format!(
                "loss {:.4} rec {:.4} pen {:.4}",
                values["total"], values["reconstruction"], values["penalty"]
            ));
            if epoch_done {
                let mean = self.state.epoch_loss_sum / self.state.epoch_loss_count.max(1) as f64;
                info!(epoch, mean_loss = mean, seconds = elapsed, "epoch done");
                if self
                    .state
                    .schedule
                    .end_epoch(&self.cfg.optimizer.schedule, epoch, mean)
                {
                    info!(
                        lr_factor = self.state.schedule.lr_factor,
                        "plateau: learning rate reduced"
                    );
                }
                self.state.epoch_loss_sum = 0.0;
                self.state.epoch_loss_count = 0;
            }
            let every = self.cfg.training.checkpoint_every_steps;
            let due = if every == 0 {
                epoch_done
            } else {
                self.state.step.is_multiple_of(every)
            };
            if due || self.state.step == target {
                let dir = self.save(elapsed)?;
                tracing::debug!(checkpoint = %dir.display(), "checkpoint saved");
            }
            last_losses = values;
        }
        bar.finish_and_clear();
        Ok(last_losses)
    }

    fn evaluate(&self) -> Result<EvalReport> {
        let mut report = crate::evaluate::end_of_training(
            &self.model,
            &crate::evaluate::EndOfTraining::of(&self.cfg),
            &self.test,
            &self.device,
            self.state.step,
        )?;
        report.run = Some(self.run_dir.display().to_string());
        report.checkpoint = self
            .last_checkpoint
            .as_ref()
            .map(|p| p.display().to_string());
        Ok(report)
    }

    fn run(mut self, opts: &TrainOptions, mut metrics: MetricsLog) -> Result<TrainSummary> {
        let target = self.target_steps(opts);
        info!(
            objective = self.cfg.objective.name(),
            parameters = wae_nets::parameter_count(self.vars.var_map(), ""),
            train_examples = self.train.len(),
            batches_per_epoch = self.state.batches_per_epoch,
            from_step = self.state.step,
            to_step = target,
            run_dir = %self.run_dir.display(),
            "training"
        );
        if !self.state.pretrain_done {
            self.pretrain()?;
            if self.stopped_by.is_some() {
                return Ok(TrainSummary {
                    steps: 0,
                    target_steps: target,
                    last_losses: BTreeMap::new(),
                    checkpoint: self.run_dir.clone(),
                    eval: None,
                    stopped_by: self.stopped_by,
                    run_dir: self.run_dir.clone(),
                });
            }
            self.state.pretrain_done = true;
            self.save(self.state.elapsed_seconds)?;
        }
        let last_losses = self.loop_until(target, &mut metrics, opts)?;
        if self.last_checkpoint.is_none() {
            self.save(self.state.elapsed_seconds)?;
        }
        let full = self.cfg.training.epochs * self.state.batches_per_epoch;
        let finished = self.state.step >= target && self.stopped_by.is_none();
        let eval = if finished && self.cfg.training.eval_examples >= 2 && self.test.len() >= 2 {
            let report = self.evaluate()?;
            info!(
                step = report.step,
                examples = report.examples,
                reconstruction_sq_l2 = report.reconstruction_sq_l2,
                mmd_codes_vs_prior = report.mmd_codes_vs_prior,
                mmd_prior_vs_prior = report.mmd_prior_vs_prior,
                "evaluation on the test set"
            );
            report.save(&RunDir::new(&self.run_dir).eval())?;
            Some(report)
        } else {
            None
        };
        if self.stopped_by.is_some() {
            info!(
                step = self.state.step,
                checkpoint = %self.last_checkpoint_text(),
                "stopped on request; continue with --resume"
            );
        } else if self.state.step < full {
            info!(
                step = self.state.step,
                of = full,
                "stopped before the end of training; continue with --resume"
            );
        }
        let checkpoint = self
            .last_checkpoint
            .clone()
            .unwrap_or_else(|| self.run_dir.clone());
        Ok(TrainSummary {
            steps: self.state.step,
            target_steps: target,
            last_losses,
            checkpoint,
            eval,
            stopped_by: self.stopped_by,
            run_dir: self.run_dir.clone(),
        })
    }
}

fn prepare_run_dir(run_dir: &Path, config_text: &str) -> Result<()> {
    std::fs::create_dir_all(run_dir).map_err(|source| Error::Io {
        path: run_dir.to_path_buf(),
        source,
    })?;
    Ok(wae_io::write_atomic(
        &run_dir.join(CONFIG_FILE),
        config_text.as_bytes(),
    )?)
}

/// The project's [`Model`] of `cfg`, built under `vb` (what [`train`] and [`resume()`]
/// pass to [`train_with`] and [`resume_with`]).
fn project_model(cfg: &TrainConfig, vb: VarBuilder<'static>) -> Result<Model> {
    Ok(Model::new(&cfg.model, &cfg.objective, vb)?)
}

/// Starts a new run of `cfg` in `opts.run_dir` with the project's [`Model`] built from
/// `cfg.model`. Refuses a directory that already holds a checkpoint (continue it with
/// [`resume()`] instead).
pub fn train(cfg: &TrainConfig, opts: &TrainOptions) -> Result<TrainSummary> {
    train_with(cfg, opts, project_model)
}

/// Starts a new run of `cfg` in `opts.run_dir` with any model: `build` makes it from
/// `cfg` and the root [`VarBuilder`] of the run's variables (weights drawn from
/// `cfg.seed`, [`SeededVarMap`]). The run is the one [`train`] runs: the same data order,
/// noise streams, loop, checkpoints, `metrics.jsonl`, run lock and end-of-training
/// `eval.json`; continue it with [`resume_with`] and the same `build`.
///
/// `config.toml` records `cfg` whole. Of its `[model]` section the trainer reads only
/// the prior (`model.prior`: noise and evaluation), the latent dimension
/// (`model.encoder.latent_dim`, which must equal the model's
/// [`AutoEncoder::latent_dim`](wae_objectives::AutoEncoder::latent_dim)) and the pixel
/// range (`model.decoder.activation = "tanh"` for [-1, 1] images); the rest describes
/// the project's networks, is still validated against the objective and the data's
/// image shape, and is otherwise unused: leave it at its default for the data set.
pub fn train_with<M: TrainableModel>(
    cfg: &TrainConfig,
    opts: &TrainOptions,
    build: impl FnOnce(&TrainConfig, VarBuilder<'static>) -> Result<M>,
) -> Result<TrainSummary> {
    cfg.validate()?;
    let created = !opts.run_dir.exists();
    std::fs::create_dir_all(&opts.run_dir).map_err(|source| Error::Io {
        path: opts.run_dir.clone(),
        source,
    })?;
    let lock = RunLock::acquire(&opts.run_dir, "wae train")?;
    if let Some(existing) = checkpoint::latest_checkpoint_dir(&opts.run_dir)? {
        return Err(Error::InvalidConfig(format!(
            "{} already holds a run (checkpoint {}); continue it with --resume {} or choose another output directory",
            opts.run_dir.display(),
            existing.display(),
            opts.run_dir.display()
        )));
    }
    let run = match Run::new(cfg.clone(), opts, |vb| build(cfg, vb)) {
        Ok(run) => run,
        Err(e) => {
            // Missing data or a model that does not build: nothing was written, so a
            // folder made just now goes again instead of staying behind empty.
            if created {
                remove_if_only_lock(&opts.run_dir, lock);
            }
            return Err(e);
        }
    };
    prepare_run_dir(&opts.run_dir, &run.config_text)?;
    let metrics = MetricsLog::open(&RunDir::new(&opts.run_dir).metrics(), None)?;
    // `lock` is held until the run returns.
    run.run(opts, metrics)
}

/// Removes `run_dir` when it holds nothing but its lock file (best effort: a failure
/// leaves the folder as it is). The lock file goes first, while `lock` still holds it.
fn remove_if_only_lock(run_dir: &Path, lock: RunLock) {
    let only_lock = std::fs::read_dir(run_dir).is_ok_and(|entries| {
        entries
            .into_iter()
            .all(|e| e.is_ok_and(|e| e.file_name() == crate::run_lock::LOCK_FILE))
    });
    if only_lock {
        let _ = std::fs::remove_file(run_dir.join(crate::run_lock::LOCK_FILE));
        drop(lock);
        let _ = std::fs::remove_dir(run_dir);
    }
}

/// The loss parts of `parts` as numbers (a convenience for callers logging them).
pub fn loss_values(parts: &LossParts) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for (name, t) in parts.named() {
        out.insert(name.to_string(), scalar(t)?);
    }
    Ok(out)
}
