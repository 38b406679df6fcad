//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while computing a metric.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from candle (tensor ops, shapes, devices).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// An error from wae-divergence (MMD, priors).
    #[error(transparent)]
    Divergence(#[from] wae_divergence::Error),

    /// An error from wae-kernels (shapes reaching a CPU kernel).
    #[error(transparent)]
    Kernels(#[from] wae_kernels::Error),

    /// An input had the wrong shape, size or values.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A linear-algebra routine failed (e.g. an eigen-solver did not converge).
    #[error("linear algebra: {0}")]
    LinearAlgebra(String),

    /// The matrix square root in the Frechet distance has an imaginary part
    /// larger than pytorch-fid tolerates (1e-3): the covariances are not
    /// positive semi-definite.
    #[error(
        "imaginary component {0:e} in sqrtm(sigma1 sigma2): the covariances are not positive semi-definite"
    )]
    ImaginaryComponent(f64),

    /// The Inception weights file does not exist.
    #[error(
        "Inception weights not found at {}: run `cargo xtask download inception` to download \
         pt_inception-2015-12-05-6726825d.pth and convert it to safetensors, or pass \
         `--weights FILE` with a local copy (.pth or .safetensors)",
        path.display()
    )]
    MissingWeights {
        /// Where the weights were expected.
        path: PathBuf,
    },

    /// A file could not be read or written.
    #[error("i/o error on {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A legacy torch `.pth` file could not be parsed.
    #[error("torch pickle {}: {message}", path.display())]
    Pickle {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },

    /// A safetensors file could not be parsed or written.
    #[error("safetensors: {0}")]
    SafeTensors(#[from] safetensors::SafeTensorError),

    /// A file's sha256 is not the expected one.
    #[error("sha256 of {} is {actual}, expected {expected}", path.display())]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The expected digest (hex).
        expected: String,
        /// The digest of the file (hex).
        actual: String,
    },

    /// A cached statistics file was made for another dataset, split or weights.
    #[error("cached statistics {} do not match: {message}", path.display())]
    StaleCache {
        /// The cache file.
        path: PathBuf,
        /// What differs.
        message: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<wae_io::Error> for Error {
    /// A failed atomic write or file digest: the file the failing step touched.
    fn from(e: wae_io::Error) -> Self {
        let (path, source) = e.into_parts();
        Error::Io { path, source }
    }
}
