//! The training configuration: plain serde structs read from TOML.
//!
//! Every struct denies unknown keys (a typo is an error naming the key and the
//! file, never silently ignored) and every field has a default, so a config
//! file only needs the keys it changes. The defaults are the paper's MNIST
//! WAE-MMD run (see `docs/training.md` for every key).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wae_objectives::ObjectiveConfig;

use crate::model::ModelConfig;

use crate::adam::AdamConfig;
use crate::schedule::Schedule;
use crate::{Error, Result};

/// Which dataset to train on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    /// MNIST, 1x28x28, pixels in [0, 1].
    #[default]
    Mnist,
    /// CelebA 64x64, from the cache `cargo xtask download celeba` builds (`data/celeba/celeba64.bin`).
    Celeba,
    /// Fading squares (Rubenstein et al. 2018), 1x32x32, generated: a centred 16-pixel
    /// square whose grey level (uniform in [0, 1]) is the only factor. Sizes:
    /// `train_examples` (default 10,000) and `test_examples` (default 2,000), drawn with
    /// the fixed data seeds 1 (train) and 2 (test). Labels: the grey level's decile, 0..9.
    FadingSquares,
    /// dSprites, 1x64x64: rows of the official file drawn without replacement with the
    /// fixed data seed 1 (first `train_examples`, default 100,000, then `test_examples`,
    /// default 10,000). Rendered by the procedural generator, or read from the official
    /// npz when `dir` (or `--data-dir`) names it or its folder. Labels: the shape class.
    Dsprites,
    /// Your own images: every PNG / JPEG / BMP / WebP below the folder `path` (sorted by
    /// relative path), converted to `channels`, centre-cropped and resized to
    /// `size x size`; labels from first-level class folders. Test set: `test_path`, or a
    /// `test_fraction` drawn with `split_seed`. Decoded once into a memory-mapped cache
    /// (see `wae_data::images`).
    Images,
    /// Your own arrays: the `.npy` / `.npz` file `path`, shape (N, H, W) or (N, H, W, C),
    /// uint8 or floats in [0, 1]; labels from a `labels` array in the `.npz`.
    Arrays,
    /// A Hugging Face Hub image dataset (cargo feature `wae-data/hub`): the parquet
    /// `files` of the dataset `repo`, images in column `column` (default `image`).
    Hub,
}

impl DatasetKind {
    /// Whether this is one of the user-data kinds (images, arrays, Hub), whose shape is
    /// given by `data.size` and `data.channels`.
    pub fn is_user_data(self) -> bool {
        matches!(
            self,
            DatasetKind::Images | DatasetKind::Arrays | DatasetKind::Hub
        )
    }
}

/// Which train/test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SplitKind {
    /// The dataset's official split (MNIST: 60k / 10k; the generated sets have only one).
    Standard,
    /// The WAE code's split: all images merged, shuffled with seed 123, last 10k as test.
    #[default]
    Paper,
}

/// `[data]`: where the examples come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// The dataset.
    pub dataset: DatasetKind,
    /// The split.
    pub split: SplitKind,
    /// Directory of the data files (for CelebA: the cache file or its directory);
    /// unset = the default place (MNIST: `WAE_DATA_DIR`, else `data/mnist`; CelebA:
    /// `data/celeba/celeba64.bin`; both under the current directory).
    pub dir: Option<PathBuf>,
    /// Use only the first N training examples of the split (for quick runs); unset = all.
    pub train_examples: Option<usize>,
    /// Use only the first N test examples for the final evaluation; unset = all.
    pub test_examples: Option<usize>,
    /// Images / arrays: the folder or the `.npy` / `.npz` file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Images / arrays / Hub: side of the square images (required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    /// Images / arrays / Hub: 1 (grey) or 3 (RGB) (required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<usize>,
    /// Images / arrays / Hub: a separate test folder or file (instead of a fraction).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_path: Option<PathBuf>,
    /// Images / arrays / Hub: share of the examples held out as the test set when there
    /// is no `test_path` (default 0.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_fraction: Option<f64>,
    /// Seed of the test-set draw (default 123).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_seed: Option<u64>,
    /// Images / Hub: leave out (and count) files that cannot be decoded or are smaller
    /// than `size`, instead of stopping at the first (`wae train --skip-bad-images`).
    #[serde(skip_serializing_if = "is_false")]
    pub skip_bad_images: bool,
    /// Arrays: the array inside a `.npz` (default: the first of images, imgs, x, arr_0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub array: Option<String>,
    /// Hub: the dataset's repository id, e.g. `user/faces`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// Hub: parquet files of the training data inside the repository.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Hub: parquet files of the test data (default: a `test_fraction` of `files`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub test_files: Vec<String>,
    /// Hub: the image column (default `image`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// Default share of user data held out for testing.
pub const DEFAULT_TEST_FRACTION: f64 = 0.1;
/// Default seed of the user-data test split.
pub const DEFAULT_SPLIT_SEED: u64 = 123;

impl DataConfig {
    /// The image shape `(channels, size, size)` of user data (`None` for the built-in sets
    /// or when `size` is missing).
    pub fn user_image_shape(&self) -> Option<(usize, usize, usize)> {
        let size = self.size?;
        Some((self.channels.unwrap_or(3), size, size))
    }
}

/// `[optimizer]`: Adam for the auto-encoder and for the discriminator, and the schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    /// Adam of the encoder and decoder (paper: lr 1e-3, beta1 0.5).
    pub autoencoder: AdamConfig,
    /// Adam of the WAE-GAN discriminator (paper MNIST: lr 5e-4, beta1 0.5).
    pub discriminator: AdamConfig,
    /// Learning-rate schedule, applied to both.
    pub schedule: Schedule,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            autoencoder: AdamConfig::default(),
            discriminator: AdamConfig {
                lr: 5e-4,
                ..AdamConfig::default()
            },
            schedule: Schedule::paper_mnist(),
        }
    }
}

/// `[pretrain]`: match the codes' mean and covariance to the prior before training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainConfig {
    /// Whether to pretrain the encoder (reference code: on).
    pub enabled: bool,
    /// Images (and prior samples) per pretraining step (reference: 1000 MNIST, 256 CelebA).
    pub sample_size: usize,
    /// At most this many steps (reference: 200).
    pub max_steps: u64,
    /// Stop as soon as the loss is below this (reference: 0.1).
    pub stop_below: f64,
    /// Learning rate of the pretraining Adam (beta1 as the auto-encoder's; reference: the
    /// auto-encoder's base lr).
    pub lr: f64,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sample_size: 1000,
            max_steps: 200,
            stop_below: 0.1,
            lr: 1e-3,
        }
    }
}

/// `[training]`: length, batches, logging and checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingConfig {
    /// Passes over the training set (paper MNIST: 100).
    pub epochs: u64,
    /// Images per step (paper: 100). Each epoch has floor(train / batch_size) steps.
    pub batch_size: usize,
    /// Stop after this many steps in total (counting steps before a resume); unset = no limit.
    pub max_steps: Option<u64>,
    /// Append a line to `metrics.jsonl` every this many steps (and at the last step).
    pub log_every_steps: u64,
    /// Save a checkpoint every this many steps; 0 = at the end of each epoch.
    /// One is always saved at the end of the run.
    pub checkpoint_every_steps: u64,
    /// How many checkpoints to keep (the newest).
    pub keep_checkpoints: usize,
    /// Test images used by the evaluation at the end of the run (0 = no evaluation).
    pub eval_examples: usize,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 100,
            max_steps: None,
            log_every_steps: 50,
            checkpoint_every_steps: 0,
            keep_checkpoints: 2,
            eval_examples: 10_000,
        }
    }
}

/// A complete training configuration (what `config.toml` in a run directory holds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Free text: where this config comes from (e.g. the preset name).
    pub description: String,
    /// Seed of every random draw of the run (weights, data order, noise).
    pub seed: u64,
    /// `[data]`.
    pub data: DataConfig,
    /// `[model]`: prior, encoder, decoder, discriminator, input noise.
    pub model: ModelConfig,
    /// `[objective]`: VAE, WAE-MMD or WAE-GAN and their weights.
    pub objective: ObjectiveConfig,
    /// `[optimizer]`.
    pub optimizer: OptimizerConfig,
    /// `[pretrain]`.
    pub pretrain: PretrainConfig,
    /// `[training]`.
    pub training: TrainingConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            description: "paper MNIST WAE-MMD".into(),
            seed: 0,
            data: DataConfig::default(),
            model: ModelConfig::default(),
            objective: ObjectiveConfig::default(),
            optimizer: OptimizerConfig::default(),
            pretrain: PretrainConfig::default(),
            training: TrainingConfig::default(),
        }
    }
}

impl TrainConfig {
    /// Parses TOML text; `origin` names the file in errors.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self> {
        let cfg: TrainConfig = toml::from_str(text).map_err(|e| Error::ConfigFile {
            path: origin.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.validate().map_err(|e| match e {
            Error::InvalidConfig(m) => Error::ConfigFile {
                path: origin.to_path_buf(),
                message: m,
            },
            other => other,
        })?;
        Ok(cfg)
    }

    /// Reads and parses a TOML file.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text, path)
    }

    /// The config as TOML (what is written into run directories).
    pub fn to_toml_string(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::InvalidConfig(format!("cannot write TOML: {e}")))
    }

    /// Checks ranges and that the parts fit together.
    pub fn validate(&self) -> Result<()> {
        self.model
            .validate(&self.objective)
            .map_err(|e| Error::InvalidConfig(e.to_string()))?;
        self.optimizer
            .autoencoder
            .validate("optimizer.autoencoder")?;
        self.optimizer
            .discriminator
            .validate("optimizer.discriminator")?;
        self.optimizer.schedule.validate()?;
        let t = &self.training;
        if t.batch_size < 2 {
            return Err(Error::InvalidConfig(format!(
                "training.batch_size must be at least 2 (BatchNorm and the MMD U-statistic need it), got {}",
                t.batch_size
            )));
        }
        if t.epochs == 0 {
            return Err(Error::InvalidConfig(
                "training.epochs must be at least 1".into(),
            ));
        }
        if t.log_every_steps == 0 {
            return Err(Error::InvalidConfig(
                "training.log_every_steps must be at least 1".into(),
            ));
        }
        if t.keep_checkpoints == 0 {
            return Err(Error::InvalidConfig(
                "training.keep_checkpoints must be at least 1".into(),
            ));
        }
        let p = &self.pretrain;
        if p.enabled && (p.sample_size < 2 || !(p.lr.is_finite() && p.lr > 0.0)) {
            return Err(Error::InvalidConfig(format!(
                "pretrain needs sample_size >= 2 and lr > 0, got {} and {}",
                p.sample_size, p.lr
            )));
        }
        let arch = self.model.encoder.architecture;
        let d = &self.data;
        if d.dataset.is_user_data() {
            let kind = format!("{:?}", d.dataset).to_lowercase();
            let Some(size) = d.size else {
                return Err(Error::InvalidConfig(format!(
                    "data.dataset = \"{kind}\" needs data.size (the side of the square images, e.g. 64)"
                )));
            };
            let channels = d.channels.unwrap_or(3);
            if channels != 1 && channels != 3 {
                return Err(Error::InvalidConfig(format!(
                    "data.channels must be 1 (grey) or 3 (RGB), got {channels}"
                )));
            }
            match d.dataset {
                DatasetKind::Images | DatasetKind::Arrays if d.path.is_none() => {
                    return Err(Error::InvalidConfig(format!(
                        "data.dataset = \"{kind}\" needs data.path (the {})",
                        if d.dataset == DatasetKind::Images {
                            "folder of images"
                        } else {
                            ".npy / .npz file"
                        }
                    )));
                }
                DatasetKind::Hub if d.repo.is_none() || d.files.is_empty() => {
                    return Err(Error::InvalidConfig(
                        "data.dataset = \"hub\" needs data.repo (e.g. \"user/faces\") and \
                         data.files (its parquet files, e.g. [\"data/train-00000-of-00001.parquet\"])"
                            .into(),
                    ));
                }
                _ => {}
            }
            if let Some(f) = d.test_fraction
                && !(0.0..1.0).contains(&f)
            {
                return Err(Error::InvalidConfig(format!(
                    "data.test_fraction must be in [0, 1), got {f}"
                )));
            }
            if arch.image_shape() != (channels, size, size) {
                let (c, s, _) = arch.image_shape();
                return Err(Error::InvalidConfig(format!(
                    "model architecture {arch:?} reads {c}x{s}x{s} images, but the data is \
                     {channels}x{size}x{size}: set model.encoder.architecture and \
                     model.decoder.architecture to {{ dcgan = {{ channels = {channels}, side = {size} }} }} \
                     (side a multiple of 16) or {{ fc = {{ channels = {channels}, side = {size} }} }}"
                )));
            }
            return Ok(());
        }
        let arch_ok = match self.data.dataset {
            DatasetKind::Mnist => arch.image_shape() == (1, 28, 28),
            DatasetKind::Celeba => arch.image_shape() == (3, 64, 64),
            DatasetKind::FadingSquares => arch.image_shape() == (1, 32, 32),
            DatasetKind::Dsprites => arch.image_shape() == (1, 64, 64),
            DatasetKind::Images | DatasetKind::Arrays | DatasetKind::Hub => true,
        };
        if !arch_ok {
            return Err(Error::InvalidConfig(format!(
                "model architecture {arch:?} reads images of shape {:?}, which is not the shape of {:?}",
                arch.image_shape(),
                self.data.dataset
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips_through_toml() {
        let cfg = TrainConfig::default();
        let text = cfg.to_toml_string().unwrap();
        let back = TrainConfig::from_toml_str(&text, Path::new("x.toml")).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let text = "seed = 3\n[training]\nepochs = 2\nbatch_sise = 10\n";
        let err = TrainConfig::from_toml_str(text, Path::new("runs/my.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("runs/my.toml"), "{err}");
        assert!(err.contains("batch_sise"), "{err}");
        let nested = "[model.encoder]\nwidth_dvi = 4\n";
        let err = TrainConfig::from_toml_str(nested, Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("width_dvi") && err.contains("a.toml"), "{err}");
    }

    #[test]
    fn partial_file_takes_defaults() {
        let cfg = TrainConfig::from_toml_str("seed = 9\n", Path::new("p.toml")).unwrap();
        assert_eq!(cfg.seed, 9);
        assert_eq!(cfg.training.batch_size, 100);
    }

    /// The omitted `input_noise_std` is the paper code's 0.01 whether or not the file has
    /// a `[model]` table (it was 0.0 as soon as any `[model]` key was given).
    #[test]
    fn omitted_input_noise_is_the_same_with_and_without_a_model_table() {
        let parse = |text: &str| {
            TrainConfig::from_toml_str(text, Path::new("n.toml"))
                .unwrap()
                .model
                .input_noise_std
        };
        let without_model = parse("seed = 1\n");
        assert_eq!(without_model, crate::model::DEFAULT_INPUT_NOISE_STD);
        assert_eq!(without_model, TrainConfig::default().model.input_noise_std);
        for text in [
            "[model]\n",
            "[model.encoder]\nwidth_div = 4\n",
            "[model.prior]\nkind = \"normal\"\nvariance = 2.0\n",
        ] {
            assert_eq!(parse(text), without_model, "{text}");
        }
        // Given explicitly, it is kept.
        assert_eq!(parse("[model]\ninput_noise_std = 0.0\n"), 0.0);
        assert_eq!(
            toml::from_str::<ModelConfig>("").unwrap(),
            ModelConfig::default()
        );
    }

    #[test]
    fn invalid_values_name_the_file() {
        let err = TrainConfig::from_toml_str("[training]\nbatch_size = 1\n", Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("b.toml") && err.contains("batch_size"),
            "{err}"
        );
    }
}
