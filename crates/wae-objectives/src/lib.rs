//! The objectives of the Wasserstein auto-encoder papers on candle: VAE and
//! beta-VAE (Bernoulli or Gaussian decoder), WAE-MMD, WAE-GAN (the adversarial
//! auto-encoder when the cost is squared L2), the random-encoder WAE with the
//! L1 penalty on log-variances, the sliced-Wasserstein auto-encoder (SWAE) and
//! InfoVAE with the MMD divergence. Each returns its named parts
//! ([`LossParts`]: total, reconstruction, penalty, extras) so they can be logged.
//!
//! The losses are functions over tensors ([`loss`]: the codes, what the decoder made of
//! them, the input and prior draws), so they work with any networks. Implement
//! [`AutoEncoder`] for your own candle encoder and decoder and [`Objective::losses`] runs
//! them (`wae_train::train_with` then trains them with `wae train`'s loop and run
//! directory, or `wae_train::TrainStep` in a loop of your own; see `wae-train`'s
//! `custom_model` example); `wae_train::Model` is the implementation for the papers' networks. This
//! crate knows no network (it does not depend on `wae-nets`).
//!
//! All randomness a step needs is drawn on the host from a caller's seeded
//! `StdRng` ([`Objective::draw_noise`]), so the same seed gives the same numbers.
//!
//! # Example: the WAE-MMD loss of a batch, from tensors
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use rand::{SeedableRng, rngs::StdRng};
//! use wae_objectives::loss::{self, Decoded};
//! use wae_objectives::{Codes, Objective, ObjectiveConfig, PriorConfig, WaeMmdConfig};
//!
//! # fn main() -> wae_objectives::Result<()> {
//! let device = Device::Cpu;
//! let cfg = WaeMmdConfig::default(); // lambda 10, IMQ, cost 0.05 * ||.||^2
//! let objective = Objective::new(ObjectiveConfig::WaeMmd(cfg.clone()), PriorConfig::default())?;
//! let noise = objective.draw_noise(4, 8, &mut StdRng::seed_from_u64(0), &device)?;
//! let x = Tensor::zeros((4, 1, 28, 28), DType::F32, &device)?; // the batch
//! let x_hat = Tensor::full(0.5f32, (4, 1, 28, 28), &device)?; // your decoder's output
//! let codes = Codes::deterministic(Tensor::zeros((4, 8), DType::F32, &device)?); // your encoder's
//! let mmd = cfg.mmd_config(&PriorConfig::default(), 8);
//! let parts = loss::wae_mmd(&x, Decoded::Output(&x_hat), &codes, &noise.prior, &cfg, &mmd)?;
//! assert_eq!(parts.total.dims(), &[] as &[usize]);
//! for (name, value) in parts.named() {
//!     println!("{name} = {}", value.to_scalar::<f32>()?);
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod bernoulli;
mod config;
pub mod cost;
mod error;
pub mod loss;

pub use config::{
    InfoVaeConfig, Likelihood, ObjectiveConfig, PriorConfig, SwaeConfig, VaeConfig, WaeGanConfig,
    WaeMmdConfig,
};
pub use cost::{CostKind, bernoulli_nll, gaussian_nll, per_image_cost, reconstruction_cost};
pub use error::{Error, Result};
pub use loss::{
    AutoEncoder, Codes, Decoded, DiscriminatorLoss, LossParts, Objective, StepNoise,
    moment_matching_loss,
};
/// The MMD settings and the prior are `wae_divergence`'s own types (its `serde` feature),
/// re-exported so a config can be written with this crate alone.
pub use wae_divergence::{Estimator, Kernel, KernelConstant, Prior};
