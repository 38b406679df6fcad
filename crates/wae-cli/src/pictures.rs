//! What the commands that use a trained model share: finding and loading a
//! run (or one of its checkpoints) with clear errors, checking the networks a
//! command needs are there, loading the run's data, encoding and decoding in
//! batches, and saving pictures.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor};
use clap::{Args, ValueEnum};
use image::RgbImage;
use wae_data::Dataset;
use wae_nets::{Activation, EncoderKind};
use wae_objectives::{Model, PriorConfig};
use wae_train::checkpoint::{self, CONFIG_FILE, MODEL_FILE, STATE_FILE};
use wae_train::{BuiltModel, RunLock, TrainConfig};

use wae_train::DeviceChoice;

/// Images (and codes) pushed through the networks at once.
pub const BATCH: usize = 250;

/// The arguments every model command takes.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Run directory of `wae train` (its newest checkpoint is used), or one of
    /// its `checkpoints/step-*` directories.
    #[arg(value_name = "RUN")]
    pub run: PathBuf,
    /// Device to run the networks on.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Directory holding the MNIST files (default: WAE_DATA_DIR, data/mnist, ../shared/data/mnist).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Which split of the run's data a command reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    /// The run's test split.
    Test,
    /// The run's training split.
    Train,
}

impl SplitArg {
    /// The name used in messages and file metadata.
    pub fn name(self) -> &'static str {
        match self {
            SplitArg::Test => "test",
            SplitArg::Train => "train",
        }
    }
}

/// The networks a command uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Q(z|x): needed to encode images.
    Encoder,
    /// G(z): needed to draw anything.
    Decoder,
}

impl Network {
    fn prefix(self) -> &'static str {
        match self {
            Network::Encoder => "encoder.",
            Network::Decoder => "decoder.",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Network::Encoder => "an encoder (to map images to codes)",
            Network::Decoder => "a decoder (to turn codes into images)",
        }
    }
}

/// A trained model loaded for use.
pub struct LoadedRun {
    /// The run's configuration.
    pub cfg: TrainConfig,
    /// The model with its trained weights (use in evaluation mode).
    pub built: BuiltModel,
    /// The checkpoint directory the weights came from.
    pub checkpoint_dir: PathBuf,
    /// Training steps done when the checkpoint was written.
    pub step: u64,
    /// The run directory (where outputs go by default).
    pub run_dir: PathBuf,
    /// Where the networks run.
    pub device: Device,
}

impl LoadedRun {
    /// The model.
    pub fn model(&self) -> &Model {
        &self.built.model
    }

    /// Latent dimension d_z.
    pub fn latent_dim(&self) -> usize {
        self.built.model.latent_dim()
    }

    /// Pixel values the decoder produces (and the data uses): `(0, 1)` for a
    /// sigmoid or identity output, `(-1, 1)` for tanh.
    pub fn value_range(&self) -> (f32, f32) {
        match self.cfg.model.decoder.activation {
            Activation::Tanh => (-1.0, 1.0),
            _ => (0.0, 1.0),
        }
    }

    /// `images` mapped to [0, 1] (what the metrics expect).
    pub fn to_unit_range(&self, images: &Tensor) -> Result<Tensor> {
        let (lo, hi) = self.value_range();
        Ok(images.affine(1.0 / (hi - lo) as f64, -(lo as f64) / (hi - lo) as f64)?)
    }

    /// `default_name` inside the run directory unless `out` is given.
    pub fn output_path(&self, out: Option<&Path>, default_name: &str) -> PathBuf {
        out.map(Path::to_path_buf)
            .unwrap_or_else(|| self.run_dir.join(default_name))
    }

    /// A one-line description of the prior, e.g. `N(0, 1 I_8)`.
    pub fn prior_text(&self) -> String {
        let d = self.latent_dim();
        match self.cfg.model.prior {
            PriorConfig::Normal { variance } => format!("N(0, {variance} I_{d})"),
            PriorConfig::UniformBox { half_width, .. } => {
                format!("uniform on [-{half_width}, {half_width}]^{d}")
            }
            PriorConfig::Sphere => format!("uniform on the unit sphere in R^{d}"),
        }
    }

    /// Standard deviation of one prior coordinate.
    pub fn prior_std(&self) -> f64 {
        let d = self.latent_dim().max(1) as f64;
        match self.cfg.model.prior {
            PriorConfig::Normal { variance } => variance.sqrt(),
            PriorConfig::UniformBox { half_width, .. } => half_width / 3f64.sqrt(),
            PriorConfig::Sphere => 1.0 / d.sqrt(),
        }
    }

    /// Loads the run's data and returns the split asked for, with at most
    /// `limit` images (the first ones).
    pub fn dataset(
        &self,
        split: SplitArg,
        data_dir: Option<&Path>,
        limit: Option<usize>,
    ) -> Result<Dataset> {
        let (train, test) = wae_train::load_data(&self.cfg, data_dir)
            .context("while loading the run's data (pass --data-dir if it is elsewhere)")?;
        let set = match split {
            SplitArg::Test => test,
            SplitArg::Train => train,
        };
        if set.is_empty() {
            bail!("the {} split of this run's data is empty", split.name());
        }
        Ok(match limit {
            Some(n) if n < set.len() => set.subset(&(0..n).collect::<Vec<_>>())?,
            _ => set,
        })
    }

    /// Codes drawn from a random encoder of `kind` (see
    /// [`wae_nets::EncoderOutput::sample`]): `z = mean + exp(logvar / 2) * eps` with
    /// `eps ~ N(0, I)` for a Gaussian encoder, `z = mean + exp(logvar) * u` with
    /// `u ~ U[0, 1]^d` for a uniform-noise one, from `StdRng::seed_from_u64(seed)` (host,
    /// f32): samples of the aggregated posterior Q_Z, which is what a random-encoder WAE
    /// matches to the prior.
    pub fn sample_codes(
        kind: EncoderKind,
        mean: &Tensor,
        logvar: &Tensor,
        seed: u64,
    ) -> Result<Tensor> {
        use rand::{Rng, SeedableRng};
        let (n, d) = mean.dims2()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let eps = match kind {
            EncoderKind::UniformNoise => {
                let u: Vec<f32> = (0..n * d).map(|_| rng.random::<f32>()).collect();
                Tensor::from_vec(u, (n, d), &Device::Cpu)?.to_dtype(mean.dtype())?
            }
            _ => wae_divergence::Prior::Normal { variance: 1.0 }.sample(
                n,
                d,
                &mut rng,
                &Device::Cpu,
                mean.dtype(),
            )?,
        };
        let q = wae_nets::EncoderOutput {
            mean: mean.clone(),
            logvar: Some(logvar.clone()),
            kind,
        };
        Ok(q.sample(&eps)?)
    }

    /// Mean codes `(N, d_z)` (evaluation mode) of the images at `indices`, on the host,
    /// and the log-variances of a Gaussian encoder.
    pub fn encode(&self, data: &Dataset, indices: &[usize]) -> Result<(Tensor, Option<Tensor>)> {
        let mut means = Vec::new();
        let mut logvars = Vec::new();
        for chunk in indices.chunks(BATCH) {
            let x = data.batch(chunk, &self.device)?;
            let codes = self.model().encode(&x, None, false)?;
            // Detached: an output of the trainable weights keeps every activation of
            // its forward pass alive for a backward pass (gigabytes over a test set).
            means.push(codes.mean.detach().to_device(&Device::Cpu)?);
            if let Some(lv) = codes.logvar {
                logvars.push(lv.detach().to_device(&Device::Cpu)?);
            }
        }
        if means.is_empty() {
            bail!("no images to encode");
        }
        let logvar = if logvars.is_empty() {
            None
        } else {
            Some(Tensor::cat(&logvars, 0)?)
        };
        Ok((Tensor::cat(&means, 0)?, logvar))
    }

    /// Decoded images `(N, C, H, W)` of codes `(N, d_z)` (evaluation mode), on the host.
    pub fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        let n = codes.dim(0)?;
        let mut parts = Vec::new();
        let mut start = 0;
        while start < n {
            let len = BATCH.min(n - start);
            let z = codes.narrow(0, start, len)?.to_device(&self.device)?;
            parts.push(
                self.model()
                    .decode(&z, false)?
                    .detach()
                    .to_device(&Device::Cpu)?,
            );
            start += len;
        }
        if parts.is_empty() {
            bail!("no codes to decode");
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// Codes given as host vectors, as a `(N, d_z)` tensor on the host.
    pub fn codes_tensor(&self, codes: &[Vec<f32>]) -> Result<Tensor> {
        let d = self.latent_dim();
        let flat: Vec<f32> = codes.iter().flatten().copied().collect();
        Ok(Tensor::from_vec(flat, (codes.len(), d), &Device::Cpu)?)
    }
}

/// The rows of a host `(N, d)` tensor as vectors.
pub fn rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(t.to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .to_vec2::<f32>()?)
}

/// Finds the checkpoint directory for `path` (a run directory or a checkpoint
/// directory) and the run directory outputs go to.
fn locate(path: &Path) -> Result<(PathBuf, PathBuf)> {
    if !path.exists() {
        bail!(
            "run directory {} does not exist (make one with `wae train --preset mnist-wae-mmd-cpu --out {}`)",
            path.display(),
            path.display()
        );
    }
    if !path.is_dir() {
        bail!(
            "{} is a file, not a run directory: give the directory `wae train` wrote \
             (or one of its checkpoints/step-* directories)",
            path.display()
        );
    }
    if path.join(STATE_FILE).is_file() {
        // A checkpoint directory RUN/checkpoints/step-N: outputs go to RUN.
        let run_dir = match path.parent() {
            Some(p)
                if p.file_name()
                    .is_some_and(|n| n == checkpoint::CHECKPOINTS_DIR) =>
            {
                p.parent()
                    .map_or_else(|| path.to_path_buf(), Path::to_path_buf)
            }
            _ => path.to_path_buf(),
        };
        return Ok((path.to_path_buf(), run_dir));
    }
    let problem = match checkpoint::latest_checkpoint_dir(path) {
        Ok(Some(dir)) => return Ok((dir, path.to_path_buf())),
        Ok(None) => format!(
            "no {}/{}",
            checkpoint::CHECKPOINTS_DIR,
            checkpoint::LATEST_FILE
        ),
        Err(e) => e.to_string(),
    };
    let complete = checkpoint::complete_checkpoints(path);
    match complete.last() {
        Some((_, newest)) => bail!(
            "{} has no usable pointer to its newest checkpoint ({problem}); its complete \
             checkpoints are: {}. Give one of them as RUN, e.g. {}",
            path.display(),
            complete
                .iter()
                .map(|(_, p)| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            newest.display()
        ),
        None => bail!(
            "{} holds no checkpoint ({problem}): it is not a run directory of `wae train`, \
             or the run stopped before its first checkpoint",
            path.display()
        ),
    }
}

/// Loads the run or checkpoint at `args.run` for `command`, after checking that
/// its checkpoint holds the networks in `needs`.
pub fn load_run(args: &RunArgs, command: &str, needs: &[Network]) -> Result<LoadedRun> {
    let device = args.device.open()?;
    let (checkpoint_dir, run_dir) = locate(&args.run)?;
    let ck = checkpoint::load_checkpoint(&checkpoint_dir, &device)
        .with_context(|| format!("while loading checkpoint {}", checkpoint_dir.display()))?;
    let config_path = checkpoint_dir.join(CONFIG_FILE);
    let cfg = TrainConfig::from_toml_str(&ck.config_text, &config_path).with_context(|| {
        format!(
            "checkpoint {} was not written by this version of `wae train` (its config does not parse)",
            checkpoint_dir.display()
        )
    })?;
    for need in needs {
        if !ck.model.keys().any(|k| k.starts_with(need.prefix())) {
            let mut held: Vec<&str> = ck
                .model
                .keys()
                .map(|k| k.split('.').next().unwrap_or(k))
                .collect();
            held.sort_unstable();
            held.dedup();
            bail!(
                "`wae {command}` needs {}, but checkpoint {} holds no `{}*` variables \
                 (it holds: {}); it was made for another kind of model",
                need.what(),
                checkpoint_dir.join(MODEL_FILE).display(),
                need.prefix(),
                if held.is_empty() {
                    "nothing".to_string()
                } else {
                    held.join(", ")
                }
            );
        }
    }
    let built = wae_train::build_model(&cfg, &device)
        .with_context(|| format!("while building the model of {}", config_path.display()))?;
    checkpoint::restore_vars(
        &built.vars.named_vars(),
        &ck.model,
        &checkpoint_dir.join(MODEL_FILE),
    )
    .with_context(|| format!("while loading the weights of {}", checkpoint_dir.display()))?;
    Ok(LoadedRun {
        cfg,
        built,
        checkpoint_dir,
        step: ck.state.step,
        run_dir,
        device,
    })
}

/// Before any work starts: locks `run_dir` when `path` lies inside it (another
/// process writing there, e.g. `wae train`, makes this fail naming its PID), then
/// checks `path` can be written. Hold the returned lock until the output is saved.
pub fn claim_output(run_dir: &Path, path: &Path, command: &str) -> Result<Option<RunLock>> {
    let lock = if is_inside(path, run_dir) {
        Some(RunLock::acquire(run_dir, command).with_context(|| {
            format!(
                "`{command}` writes {} into the run directory; give --out FILE elsewhere \
                 to write while another process holds the run",
                path.display()
            )
        })?)
    } else {
        None
    };
    wae_viz::ensure_writable(path)
        .with_context(|| format!("the output {} cannot be written", path.display()))?;
    Ok(lock)
}

/// Whether `path` (which may not exist yet) lies inside the existing directory `dir`,
/// symbolic links resolved.
fn is_inside(path: &Path, dir: &Path) -> bool {
    let Ok(dir) = dir.canonicalize() else {
        return false;
    };
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    // The nearest ancestor that exists, resolved; what is below it cannot be a link.
    absolute
        .ancestors()
        .skip(1)
        .find_map(|a| a.canonicalize().ok())
        .is_some_and(|a| a.starts_with(&dir))
}

/// Saves a picture and says so.
pub fn save_picture(image: &RgbImage, path: &Path, what: &str) -> Result<()> {
    wae_viz::save_png(image, path).with_context(|| format!("while saving {what}"))?;
    println!(
        "wrote {} ({what}, {}x{} pixels)",
        path.display(),
        image.width(),
        image.height()
    );
    Ok(())
}

/// The grid settings of a picture of this run: `columns` per row, scale
/// `scale`, the run's pixel range.
pub fn grid_config(run: &LoadedRun, columns: usize, scale: u32) -> wae_viz::GridConfig {
    wae_viz::GridConfig {
        columns: columns.max(1),
        scale: scale.max(1),
        value_range: run.value_range(),
        ..wae_viz::GridConfig::default()
    }
}

/// Most pixels a picture may have (67 million: 200 MB of RGB), so that a slip such
/// as `--n 100000000` or `--scale 100000` is an error instead of an allocation abort.
pub const MAX_PICTURE_PIXELS: u128 = 1 << 26;
/// Largest `--scale`.
pub const MAX_SCALE: u32 = 64;

/// Checks, before anything is decoded, that a grid of `cells` images of this run in
/// `columns` columns at `scale` stays within [`MAX_PICTURE_PIXELS`]; `flags` names
/// the options that set its size (e.g. `--n 100 --columns 10 --scale 2`) for the error.
pub fn check_picture_size(
    run: &LoadedRun,
    cells: u128,
    columns: u128,
    scale: u32,
    flags: &str,
) -> Result<()> {
    if scale > MAX_SCALE {
        bail!("--scale {scale} is too large: at most {MAX_SCALE}");
    }
    let (_, h, w) = run.cfg.model.decoder.architecture.image_shape();
    let border = u128::from(wae_viz::GridConfig::default().border);
    let scale = u128::from(scale.max(1));
    let columns = columns.max(1);
    let rows = cells.div_ceil(columns);
    let width = columns
        .saturating_mul(w as u128 * scale + border)
        .saturating_add(border);
    let height = rows
        .saturating_mul(h as u128 * scale + border)
        .saturating_add(border);
    let pixels = width.saturating_mul(height);
    if pixels > MAX_PICTURE_PIXELS || width > u128::from(u32::MAX) || height > u128::from(u32::MAX)
    {
        bail!(
            "{flags} asks for a picture of {width} x {height} pixels, more than the {} million \
             a picture may have; ask for fewer images, fewer columns or a smaller --scale",
            MAX_PICTURE_PIXELS / 1_000_000
        );
    }
    Ok(())
}

/// `count` distinct indices below `len`: the first ones, or a seeded random
/// choice when `seed` is given.
pub fn choose_indices(len: usize, count: usize, seed: Option<u64>) -> Vec<usize> {
    let count = count.min(len);
    match seed {
        None => (0..count).collect(),
        Some(seed) => {
            use rand::SeedableRng;
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            rand::seq::index::sample(&mut rng, len, count).into_vec()
        }
    }
}
