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
//! them (`wae_train::TrainStep` then trains them; see `wae-train`'s `custom_model`
//! example); [`Model`] is the implementation for the papers' networks.
//!
//! All randomness a step needs is drawn on the host from a caller's seeded
//! `StdRng` ([`Model::draw_noise`]), so the same seed gives the same numbers.
//!
//! # Example: one WAE-MMD loss on a tiny MNIST-shaped model
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use rand::{SeedableRng, rngs::StdRng};
//! use wae_objectives::{Model, ModelConfig, ObjectiveConfig};
//!
//! # fn main() -> wae_objectives::Result<()> {
//! let device = Device::Cpu;
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
//! let config = ModelConfig::default().with_width_div(32); // paper MNIST nets / 32
//! let objective = ObjectiveConfig::default(); // WAE-MMD, lambda 10, IMQ, cost 0.05 * ||.||^2
//! let model = Model::new(&config, &objective, vb)?;
//! let x = Tensor::zeros((4, 1, 28, 28), DType::F32, &device)?;
//! let noise = model.draw_noise(4, &mut StdRng::seed_from_u64(0), &device)?;
//! let (loss, _codes) = model.losses(&x, &noise, true)?;
//! assert_eq!(loss.total.dims(), &[] as &[usize]);
//! for (name, value) in loss.named() {
//!     println!("{name} = {}", value.to_scalar::<f32>()?);
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod config;
pub mod cost;
mod error;
pub mod loss;
mod model;

pub use config::{
    InfoVaeConfig, KernelConstant, Likelihood, MmdEstimator, MmdKernel, ModelConfig,
    ObjectiveConfig, PriorConfig, SwaeConfig, VaeConfig, WaeGanConfig, WaeMmdConfig,
};
pub use cost::{CostKind, bernoulli_nll, gaussian_nll, per_image_cost, reconstruction_cost};
pub use error::{Error, Result};
pub use loss::{AutoEncoder, Codes, Decoded, DiscriminatorLoss, LossParts, Objective, StepNoise};
pub use model::{Model, moment_matching_loss};
