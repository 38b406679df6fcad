//! Evaluation of generative models on candle: FID with the real Inception-v3
//! of TTUR / pytorch-fid, Laplace sharpness, improved precision and recall,
//! reconstruction error, and disentanglement scores (FactorVAE, MIG, the beta-VAE metric).
//!
//! The main entry points:
//! - [`laplace_sharpness`]: variance of the Laplace-filtered grey image (the
//!   paper's sharpness column).
//! - [`GaussianStats`] and [`frechet_distance`]: the Gaussians fitted to two
//!   feature sets and the distance between them, as pytorch-fid computes it.
//!
//! ```
//! use ndarray::Array2;
//! use wae_metrics::{frechet_distance, GaussianStats};
//! let real = Array2::from_shape_fn((100, 3), |(i, j)| ((i * 13 + j * 5) % 17) as f64);
//! let fake = real.mapv(|v| v + 1.0);
//! let fid = frechet_distance(
//!     &GaussianStats::from_features(&real)?,
//!     &GaussianStats::from_features(&fake)?,
//! )?;
//! // Shifting every feature by 1 moves the mean by (1, 1, 1): distance 3.
//! assert!((fid - 3.0).abs() < 1e-9);
//! # Ok::<(), wae_metrics::Error>(())
//! ```
#![deny(missing_docs)]

pub mod batches;
pub mod beta_vae_metric;
pub mod disentanglement;
mod error;
pub mod frechet;
pub mod gmm;
pub mod inception;
pub mod mnist_classifier;
pub mod precision_recall;
pub mod prior_match;
pub mod reconstruction;
pub mod sharpness;
pub mod softmax_regression;
pub mod stats_cache;
pub mod testing;

pub use batches::map_batches;
pub use beta_vae_metric::{BetaVaeConfig, BetaVaeScore, beta_vae_score};
pub use error::{Error, Result};
pub use frechet::{GaussianStats, frechet_distance};
pub use inception::{InceptionConfig, InceptionV3};
pub use precision_recall::{PrecisionRecall, PrecisionRecallConfig, precision_recall};
pub use prior_match::{Kid, KidConfig, kid, polynomial_mmd, two_nn_dimension};
pub use reconstruction::{ReconstructionError, latent_mmd, reconstruction_error};
pub use sharpness::laplace_sharpness;
pub use stats_cache::{StatsKey, load_or_compute_stats, load_stats, save_stats};
