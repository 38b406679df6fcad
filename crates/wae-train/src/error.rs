//! The crate's error type.

use std::path::PathBuf;

/// Errors of configuration, checkpointing and training.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The data could not be loaded.
    #[error(transparent)]
    Data(#[from] wae_data::Error),
    /// A model could not be built or an objective computed.
    #[error(transparent)]
    Objective(#[from] wae_objectives::Error),
    /// A network error.
    #[error(transparent)]
    Nets(#[from] wae_nets::Error),
    /// A divergence could not be computed.
    #[error(transparent)]
    Divergence(#[from] wae_divergence::Error),
    /// A fused CPU kernel (the Adam update) failed.
    #[error(transparent)]
    Kernel(#[from] wae_kernels::Error),
    /// An evaluation metric failed.
    #[error(transparent)]
    Metrics(#[from] wae_metrics::Error),
    /// A feature network's weights (the MNIST classifier, Inception-v3) did not load.
    #[error("while loading {what} {path}: {reason}")]
    FeatureWeights {
        /// Which network.
        what: String,
        /// The weights file.
        path: PathBuf,
        /// Why it failed.
        reason: String,
    },
    /// An input that cannot be used (too few images, an impossible setting).
    #[error("{0}")]
    InvalidInput(String),
    /// `--device cuda` in a build without CUDA support.
    #[error(
        "--device cuda: this build has no CUDA support; rebuild with `--features cuda` \
         (e.g. `cargo build --release --features cuda`)"
    )]
    NoCuda,
    /// CUDA device 0 could not be opened.
    #[error(
        "while opening CUDA device 0 (this needs an NVIDIA GPU and its driver: \
         `nvidia-smi` should list the GPU; or run with --device cpu): {source}"
    )]
    CudaDevice {
        /// candle's error.
        source: candle_core::Error,
    },
    /// A device name other than `cpu` or `cuda`.
    #[error("unknown --device {0}: expected cpu or cuda")]
    InvalidDevice(String),
    /// A configuration file could not be parsed or has an unknown key.
    #[error("configuration {path}: {message}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (names the key).
        message: String,
    },
    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// No preset has this name.
    #[error("unknown preset `{name}`; the presets are: {known}")]
    UnknownPreset {
        /// The name asked for.
        name: String,
        /// Comma-separated list of presets.
        known: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A checkpoint file is damaged (truncated, altered or unparsable).
    #[error("checkpoint file {path} is damaged: {reason}")]
    CorruptCheckpoint {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint does not fit the model or configuration it is loaded into.
    #[error("checkpoint {path} does not match the model: {reason}")]
    CheckpointMismatch {
        /// The checkpoint file.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
    /// `checkpoints/latest` is missing or damaged although complete checkpoints exist.
    #[error(
        "{run_dir} has no usable pointer to its newest checkpoint ({problem}); its complete \
         checkpoints are: {complete}. Resume from the newest with: wae train --resume {newest}"
    )]
    NoLatestCheckpoint {
        /// The run directory.
        run_dir: PathBuf,
        /// What is wrong with `latest`.
        problem: String,
        /// The complete checkpoint folders, oldest first, comma-separated.
        complete: String,
        /// The newest of them.
        newest: PathBuf,
    },
    /// Another process holds the run directory's lock.
    #[error(
        "run directory {dir} is in use by {holder}; wait for it to finish or stop it \
         (two writers would overwrite each other's checkpoints and metrics)"
    )]
    RunDirInUse {
        /// The run directory.
        dir: PathBuf,
        /// Who holds it, e.g. "process 1234 (`wae train`)".
        holder: String,
    },
    /// A loss part or gradient became NaN or infinite.
    #[error(
        "training diverged: {part} is {value} at step {step}; stopped without saving. \
         The last good checkpoint is {last_checkpoint} (try a lower learning rate)"
    )]
    NonFinite {
        /// Step at which it happened.
        step: u64,
        /// Which quantity (a loss part name or `grad_norm/<optimiser>`).
        part: String,
        /// The value seen.
        value: f64,
        /// The newest checkpoint left intact, or a note that there is none.
        last_checkpoint: String,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl From<wae_io::Error> for Error {
    /// A failed atomic write: the file the failing step touched.
    fn from(e: wae_io::Error) -> Self {
        let (path, source) = e.into_parts();
        Error::Io { path, source }
    }
}
