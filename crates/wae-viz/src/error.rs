//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while drawing or saving a picture.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed (e.g. moving images to the host).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// An input had the wrong shape, size or values.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// Encoding a PNG failed.
    #[error("cannot encode PNG: {0}")]
    Encode(#[from] image::ImageError),

    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file (or the directory it should go in).
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
