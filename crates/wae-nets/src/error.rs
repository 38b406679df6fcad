//! The crate's one error type.

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong while building or running a network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid network config: {0}")]
    Config(String),

    /// A tensor handed to a network does not have the shape it expects.
    #[error("{network}: expected input of shape {expected}, got {got:?}")]
    InputShape {
        /// Which network and which input (e.g. `encoder input x`).
        network: &'static str,
        /// The expected shape, with `N` for any batch size.
        expected: String,
        /// The shape that was passed.
        got: Vec<usize>,
    },

    /// `forward_t` was called on an implicit encoder, which needs its noise.
    #[error(
        "an implicit encoder needs its noise: call `forward_with_noise_t(x, noise, train)` \
         with noise of shape (N, latent_dim) drawn from a seeded RNG"
    )]
    NoiseRequired,

    /// `forward_with_noise_t` was called on an encoder that takes no noise.
    #[error("only implicit encoders take noise; this encoder is {0:?}: call `forward_t(x, train)`")]
    NoiseNotAccepted(crate::EncoderKind),

    /// Batch statistics cannot be computed from a single value per channel.
    #[error(
        "batch norm in training mode needs more than one value per channel, got input of shape \
         {0:?}; use a batch of at least 2 or evaluation mode"
    )]
    BatchTooSmall(Vec<usize>),

    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
