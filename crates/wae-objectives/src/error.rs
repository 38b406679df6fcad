//! The crate's error type.

/// Errors of building a model or computing an objective.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A network of an [`AutoEncoder`](crate::AutoEncoder) could not be built or run
    /// (`wae_train::Model`'s `wae-nets` networks, or a user's own).
    #[error(transparent)]
    Network(Box<dyn std::error::Error + Send + Sync>),
    /// A divergence could not be computed.
    #[error(transparent)]
    Divergence(#[from] wae_divergence::Error),
    /// The model / objective configuration is inconsistent.
    #[error("invalid objective configuration: {0}")]
    Config(String),
    /// An input has the wrong shape.
    #[error("{what}: expected shape {expected}, got {got:?}")]
    Shape {
        /// Which input.
        what: &'static str,
        /// Expected shape in words.
        expected: String,
        /// The shape passed.
        got: Vec<usize>,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
