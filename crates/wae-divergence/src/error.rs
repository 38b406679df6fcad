//! The crate's error type.

use candle_core::DType;

/// Everything that can go wrong in `wae-divergence`.
///
/// Invalid inputs (wrong rank, mismatched dimensions, bad configuration values,
/// integer tensors) are reported here instead of panicking.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error raised by candle while running a tensor operation.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// A tensor had the wrong rank.
    #[error("`{name}` must be a rank-{expected} tensor, got shape {shape:?}")]
    Rank {
        /// The argument's name.
        name: &'static str,
        /// The rank that was expected.
        expected: usize,
        /// The shape that was passed.
        shape: Vec<usize>,
    },

    /// Two tensors that must agree in shape do not.
    #[error("shape mismatch: {0}")]
    ShapeMismatch(String),

    /// Too few samples for the requested estimator (the U-statistic needs n >= 2).
    #[error("`{name}` has {got} sample(s); at least {needed} are needed")]
    TooFewSamples {
        /// The argument's name.
        name: &'static str,
        /// How many rows are needed.
        needed: usize,
        /// How many rows were passed.
        got: usize,
    },

    /// `MmdConfig::scales` was empty.
    #[error("the list of kernel scales is empty")]
    EmptyScales,

    /// A kernel scale was zero, negative or not finite.
    #[error("kernel scale {0} must be positive and finite")]
    NonPositiveScale(f64),

    /// A variance (prior variance, normal prior) was zero, negative or not finite.
    #[error("variance {0} must be positive and finite")]
    NonPositiveVariance(f64),

    /// A tensor had an integer dtype where a float dtype is needed.
    #[error("`{name}` has dtype {dtype:?}; a float dtype (f16, bf16, f32, f64) is needed")]
    NonFloatDType {
        /// The argument's name.
        name: &'static str,
        /// The dtype that was passed.
        dtype: DType,
    },

    /// Any other invalid argument (zero projections, zero permutations, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
