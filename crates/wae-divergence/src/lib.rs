//! Latent-space divergences for auto-encoders on [candle](https://github.com/huggingface/candle).
//!
//! The penalties of Wasserstein auto-encoders (Tolstikhin et al. 2018) and relatives, as
//! differentiable candle ops that work on any device, in f32 and f64:
//!
//! - [`mmd()`]: MMD^2 with inverse-multiquadratic or RBF kernels **summed** over scales,
//!   kernel constants `C_s = 2 * d * prior_variance * s`, unbiased U-statistic (diagonals
//!   excluded) or V-statistic. On the CPU a fused kernel with an analytic backward is used.
//! - [`mmd_blockwise`]: the same value in bounded memory for tens of thousands of codes.
//! - [`mmd_permutation_test`], [`median_heuristic_scale`]: a two-sample test and the
//!   median-distance bandwidth heuristic.
//! - [`sliced_wasserstein`]: sliced Wasserstein distance with seeded projections.
//! - [`kl_to_standard_normal`]: the VAE's KL term.
//! - [`discriminator_loss`], [`encoder_adversarial_loss`]: the WAE-GAN (adversarial JS)
//!   losses on discriminator logits, stable for logits of any size.
//! - [`Prior`]: normal, uniform-box and sphere priors sampled from a seeded RNG, with the
//!   rule that makes an MMD kernel constant of each ([`Prior::kernel_variance`],
//!   [`KernelConstant`]).
//!
//! The fused CPU pass uses AVX-512 or AVX2 + FMA where the CPU has them ([`simd_level`],
//! `WAE_SIMD`).
//!
//! All invalid inputs give an [`Error`]; nothing panics on user input.
#![deny(missing_docs)]

mod check;
mod error;
mod fused;
mod losses;
mod mmd;
mod prior;
mod simd;
mod sliced;
mod stats;

pub use error::{Error, Result};
pub use losses::{
    discriminator_loss, encoder_adversarial_loss, kl_to_standard_normal, log_sigmoid, softplus,
};
pub use mmd::{
    Estimator, Kernel, MmdConfig, MmdImplementation, force_fallback, mmd, mmd_blockwise,
    mmd_blockwise_with, mmd_with, set_force_fallback,
};
pub use prior::{KernelConstant, Prior};
pub use simd::{SimdLevel, set_max_simd, simd_level};
pub use sliced::{random_projections, sliced_wasserstein, sliced_wasserstein_with_projections};
pub use stats::{
    PermutationTest, median_heuristic_scale, median_pairwise_squared_distance, mmd_permutation_test,
};
