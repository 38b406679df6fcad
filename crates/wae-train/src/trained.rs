//! A trained model put to use: its config and weights, batched encoding and decoding on
//! the host, its data splits, codes drawn from a random encoder, and the post-hoc
//! Gaussian-mixture sampler fitted to its training codes. What `wae eval` and the picture
//! commands share, and what [`crate::evaluate`] reads.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use wae_data::Dataset;
use wae_nets::{Activation, EncoderKind};
use wae_objectives::PriorConfig;

use crate::checkpoint::{self, CHECKPOINTS_DIR, CONFIG_FILE, LATEST_FILE, MODEL_FILE, STATE_FILE};
use crate::config::TrainConfig;
use crate::model::Model;
use crate::trainer::{BuiltModel, build_model};
use crate::{Error, Result};

/// Images (and codes) pushed through the networks at once.
pub const BATCH: usize = 250;

/// Which split of the run's data to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Split {
    /// The run's test split.
    Test,
    /// The run's training split.
    Train,
}

impl Split {
    /// The name used in messages and file metadata (`test`, `train`).
    pub fn name(self) -> &'static str {
        match self {
            Split::Test => "test",
            Split::Train => "train",
        }
    }
}

/// A network a use of a trained model needs its checkpoint to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Q(z|x): needed to encode images.
    Encoder,
    /// G(z): needed to draw anything.
    Decoder,
}

impl Network {
    /// The prefix of its variables' names in a checkpoint.
    pub fn prefix(self) -> &'static str {
        match self {
            Network::Encoder => "encoder.",
            Network::Decoder => "decoder.",
        }
    }

    /// What it is, with what it is needed for.
    pub fn what(self) -> &'static str {
        match self {
            Network::Encoder => "an encoder (to map images to codes)",
            Network::Decoder => "a decoder (to turn codes into images)",
        }
    }
}

/// A trained model loaded for use (evaluation mode throughout).
pub struct TrainedRun {
    /// The run's configuration.
    pub cfg: TrainConfig,
    /// The model with its trained weights.
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

/// The checkpoint directory to load for `path` (a run directory or a checkpoint
/// directory) and the run directory outputs go to.
fn locate(path: &Path) -> Result<(PathBuf, PathBuf)> {
    if !path.exists() {
        return Err(Error::InvalidInput(format!(
            "run directory {} does not exist (make one with `wae train --preset \
             mnist-wae-mmd-cpu --out {}`)",
            path.display(),
            path.display()
        )));
    }
    if !path.is_dir() {
        return Err(Error::InvalidInput(format!(
            "{} is a file, not a run directory: give the directory `wae train` wrote (or \
             one of its checkpoints/step-* directories)",
            path.display()
        )));
    }
    if path.join(STATE_FILE).is_file() {
        // A checkpoint directory RUN/checkpoints/step-N: outputs go to RUN.
        let run_dir = match path.parent() {
            Some(p) if p.file_name().is_some_and(|n| n == CHECKPOINTS_DIR) => p
                .parent()
                .map_or_else(|| path.to_path_buf(), Path::to_path_buf),
            _ => path.to_path_buf(),
        };
        return Ok((path.to_path_buf(), run_dir));
    }
    let problem = match checkpoint::latest_checkpoint_dir(path) {
        Ok(Some(dir)) => return Ok((dir, path.to_path_buf())),
        Ok(None) => format!("no {CHECKPOINTS_DIR}/{LATEST_FILE}"),
        Err(e) => e.to_string(),
    };
    let complete = checkpoint::complete_checkpoints(path);
    Err(Error::InvalidInput(match complete.last() {
        Some((_, newest)) => format!(
            "{} has no usable pointer to its newest checkpoint ({problem}); its complete \
             checkpoints are: {}. Give one of them in place of the run directory, e.g. {}",
            path.display(),
            complete
                .iter()
                .map(|(_, p)| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            newest.display()
        ),
        None => format!(
            "{} holds no checkpoint ({problem}): it is not a run directory of `wae train`, \
             or the run stopped before its first checkpoint",
            path.display()
        ),
    }))
}

/// Codes drawn from a Gaussian mixture fitted to a model's training codes.
#[derive(Debug, Clone)]
pub struct GmmCodes {
    /// The draws, `(n, d_z)` on the host.
    pub codes: Tensor,
    /// Training codes the mixture was fitted to.
    pub fit_points: usize,
    /// EM iterations run.
    pub iterations: usize,
    /// Mean log-likelihood of the fitted codes under the mixture.
    pub log_likelihood: f64,
}

impl TrainedRun {
    /// Loads the model at `path` into a fresh model on `device`: a run directory (its
    /// newest checkpoint) or one of its `checkpoints/step-*` directories (outputs then
    /// go to the run directory). Each error says what `path` is instead.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Self::load_needing(path, device, &[])
    }

    /// [`TrainedRun::load`], after checking that the checkpoint holds the networks in
    /// `needs`: a checkpoint of another kind of model is refused naming what it holds,
    /// before anything is built.
    pub fn load_needing(path: &Path, device: &Device, needs: &[Network]) -> Result<Self> {
        let (dir, run_dir) = locate(path)?;
        let ck = checkpoint::load_checkpoint(&dir, device)?;
        let cfg =
            TrainConfig::from_toml_str(&ck.config_text, &dir.join(CONFIG_FILE)).map_err(|e| {
                Error::InvalidInput(format!(
                    "checkpoint {} was not written by this version of `wae train` (its config \
                     does not parse): {e}",
                    dir.display()
                ))
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
                return Err(Error::InvalidInput(format!(
                    "this use needs {}, but checkpoint {} holds no `{}*` variables (it \
                     holds: {}); it was made for another kind of model",
                    need.what(),
                    dir.join(MODEL_FILE).display(),
                    need.prefix(),
                    if held.is_empty() {
                        "nothing".to_string()
                    } else {
                        held.join(", ")
                    }
                )));
            }
        }
        let built = build_model(&cfg, device)?;
        checkpoint::restore_vars(&built.vars.named_vars(), &ck.model, &dir.join(MODEL_FILE))?;
        Ok(Self {
            cfg,
            built,
            checkpoint_dir: dir,
            step: ck.state.step,
            run_dir,
            device: device.clone(),
        })
    }

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

    /// Loads the run's data (`data_dir` overriding the config's) and returns `split`,
    /// with at most `limit` images (the first ones).
    pub fn data(
        &self,
        split: Split,
        data_dir: Option<&Path>,
        limit: Option<usize>,
    ) -> Result<Dataset> {
        let (train, test) = crate::data::load_data(&self.cfg, data_dir)?;
        let set = match split {
            Split::Test => test,
            Split::Train => train,
        };
        if set.is_empty() {
            return Err(Error::InvalidInput(format!(
                "the {} split of this run's data is empty",
                split.name()
            )));
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
            return Err(Error::InvalidInput("no images to encode".into()));
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
            return Err(Error::InvalidInput("no codes to decode".into()));
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// Codes given as host vectors, as a `(N, d_z)` tensor on the host.
    pub fn codes_tensor(&self, codes: &[Vec<f32>]) -> Result<Tensor> {
        let d = self.latent_dim();
        let flat: Vec<f32> = codes.iter().flatten().copied().collect();
        Ok(Tensor::from_vec(flat, (codes.len(), d), &Device::Cpu)?)
    }

    /// The post-hoc sampler: fits a `components`-component full-covariance Gaussian
    /// mixture by EM (seeded with `seed`) to the encoder means of the images of
    /// `fit_data`, and draws `n` codes from it (`seed`).
    pub fn gmm_codes(
        &self,
        fit_data: &Dataset,
        components: usize,
        n: usize,
        seed: u64,
    ) -> Result<GmmCodes> {
        let indices: Vec<usize> = (0..fit_data.len()).collect();
        let (means, _) = self.encode(fit_data, &indices)?;
        let points = wae_metrics::disentanglement::codes_from_tensor(&means)?;
        let (rows, d) = points.dim();
        let cfg = wae_metrics::gmm::GmmConfig {
            seed,
            ..wae_metrics::gmm::GmmConfig::new(components)
        };
        let gmm = wae_metrics::gmm::GaussianMixture::fit(&points, &cfg)?;
        let draws = gmm.sample(n, seed);
        let flat: Vec<f32> = draws.iter().map(|&v| v as f32).collect();
        Ok(GmmCodes {
            codes: Tensor::from_vec(flat, (n, d), &Device::Cpu)?,
            fit_points: rows,
            iterations: gmm.iterations,
            log_likelihood: gmm.log_likelihood,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_or_one_of_its_checkpoints_loads_and_anything_else_says_what_it_is() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        let mut cfg = crate::preset("mnist-wae-mmd-smoke").unwrap();
        cfg.training.max_steps = Some(2);
        cfg.training.eval_examples = 16;
        let mut opts = crate::TrainOptions::new(&run);
        opts.progress = false;
        opts.data_dir = Some(wae_data::testing::mnist_dir());
        crate::train(&cfg, &opts).unwrap();

        let by_run = TrainedRun::load(&run, &Device::Cpu).unwrap();
        assert_eq!((by_run.step, by_run.run_dir.as_path()), (2, run.as_path()));
        // A checkpoint directory: the same weights, outputs in the run directory.
        let by_checkpoint = TrainedRun::load_needing(
            &by_run.checkpoint_dir,
            &Device::Cpu,
            &[Network::Encoder, Network::Decoder],
        )
        .unwrap();
        assert_eq!(by_checkpoint.run_dir, run);
        assert_eq!(by_checkpoint.checkpoint_dir, by_run.checkpoint_dir);

        let err = |path: &Path| {
            TrainedRun::load(path, &Device::Cpu)
                .err()
                .unwrap()
                .to_string()
        };
        assert!(err(&tmp.path().join("none")).contains("does not exist"));
        assert!(err(&run.join("config.toml")).contains("is a file, not a run directory"));
        assert!(err(tmp.path()).contains("holds no checkpoint"));
        // `latest` lost: the complete checkpoints are named.
        std::fs::remove_file(run.join(CHECKPOINTS_DIR).join(LATEST_FILE)).unwrap();
        let e = err(&run);
        assert!(
            e.contains("no usable pointer")
                && e.contains(&by_run.checkpoint_dir.display().to_string()),
            "{e}"
        );
    }
}
