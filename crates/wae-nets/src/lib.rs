//! The encoders, decoders and latent discriminators of the Wasserstein
//! auto-encoder papers (Tolstikhin et al. 2018; Rubenstein et al. 2018), in
//! candle-nn style: a serde config per network, a constructor taking a
//! `VarBuilder`, and a forward pass with a `train` flag for BatchNorm.
//!
//! # Architectures
//! See [`Architecture`]: the MNIST and CelebA DCGAN networks of the WAE paper,
//! the WAE code's MLP and dSprites networks, and the fully connected
//! fading-squares networks of Rubenstein et al. `width_div` divides every
//! hidden channel / unit count (1 is the paper's width).
//!
//! Convolutions use TensorFlow's `'SAME'` padding (see [`layers`]), as the
//! reference code: e.g. MNIST's 7 -> 4 convolution pads (1, 2), and the last
//! stride-1 transposed convolution (k = 4) crops 29 -> 28.
//!
//! # candle modules
//! The networks are candle modules too: [`Decoder`] and [`Encoder`] implement
//! `candle_nn::ModuleT` (images after the output activation; the encoder's codes, the
//! mean for a random encoder) and [`Discriminator`] implements `candle_nn::Module`
//! (logits), so they compose with candle-nn layers. The inherent methods say more (the
//! decoder's logits, the encoder's log-variances, an implicit encoder's noise).
//!
//! # Variable names (stable across versions)
//! Each network adds its own prefix, so pass the root `VarBuilder`:
//!
//! | network | variables |
//! | --- | --- |
//! | DCGAN encoder | `encoder.conv{i}.{weight,bias}`, `encoder.bn{i}.{weight,bias,running_mean,running_var}` (i = 0..4), `encoder.fc.{weight,bias}` |
//! | MLP / FC encoder | `encoder.fc{i}.*`, `encoder.bn{i}.*` (MLP only), `encoder.fc.*` |
//! | Gaussian encoders | also `encoder.fc_logvar.*` (`encoder.fc` is the mean head) |
//! | implicit encoders | also `encoder.noise_fc{0,1,2}.*`, `encoder.noise_matrix.*` |
//! | DCGAN decoder | `decoder.fc.*`, `decoder.deconv{i}.*`, `decoder.bn{i}.*`; the last `deconv` (stride 1) has no BN |
//! | MLP / FC decoder | `decoder.fc{i}.*`, `decoder.bn{i}.*` (MLP only), `decoder.fc_out.*` |
//! | discriminator | `discriminator.fc{i}.*`, `discriminator.fc_out.*` |
//!
//! Conv weights are `(out, in, k, k)`, transposed-conv weights `(in, out, k, k)`
//! and linear weights `(out, in)`, as in PyTorch. BatchNorm running
//! statistics are variables of the `VarMap` (they never get gradients), so
//! `VarMap::save` writes them; use [`trainable_vars`] to hand only the
//! trainable ones to an optimiser.
//!
//! # Example
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use wae_nets::{Decoder, DecoderConfig, Encoder, EncoderConfig, EncoderKind};
//!
//! # fn main() -> wae_nets::Result<()> {
//! let device = Device::Cpu;
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
//! // The MNIST networks at 1/16 of the paper's width, Gaussian encoder.
//! let enc_cfg = EncoderConfig { width_div: 16, kind: EncoderKind::Gaussian, ..Default::default() };
//! let dec_cfg = DecoderConfig { width_div: 16, ..Default::default() };
//! let encoder = Encoder::new(&enc_cfg, vb.clone())?;
//! let decoder = Decoder::new(&dec_cfg, vb)?;
//!
//! let x = Tensor::zeros((2, 1, 28, 28), DType::F32, &device)?;
//! let q = encoder.forward_t(&x, true)?;
//! assert_eq!(q.mean.dims(), &[2, 8]);
//! assert!(q.logvar.is_some());
//! let x_hat = decoder.forward_t(&q.mean, true)?; // sigmoid output
//! assert_eq!(x_hat.dims(), &[2, 1, 28, 28]);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod config;
mod decoder;
mod discriminator;
mod encoder;
mod error;
pub mod layers;
mod module;

pub use config::{
    Activation, Architecture, BatchNormConfig, DEFAULT_LOGVAR_CLIP, DcganSpec, DecoderConfig,
    DiscriminatorConfig, EncoderConfig, EncoderKind, PAPER_INIT, WeightInit,
};
pub use decoder::Decoder;
pub use discriminator::Discriminator;
pub use encoder::{Encoder, EncoderOutput};
pub use error::{Error, Result};

use candle_core::Var;
use candle_nn::VarMap;

/// Whether a variable name is a BatchNorm running statistic (state, not a parameter).
pub fn is_running_stat(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

/// The trainable variables of `varmap` whose names start with `prefix`
/// (e.g. `"encoder."`; `""` for all), sorted by name, without BatchNorm
/// running statistics.
pub fn trainable_vars(varmap: &VarMap, prefix: &str) -> Vec<(String, Var)> {
    let data = match varmap.data().lock() {
        Ok(d) => d,
        Err(poisoned) => poisoned.into_inner(),
    };
    let mut vars: Vec<(String, Var)> = data
        .iter()
        .filter(|(name, _)| name.starts_with(prefix) && !is_running_stat(name))
        .map(|(name, var)| (name.clone(), var.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Number of trainable scalars under `prefix` (what PyTorch's
/// `sum(p.numel() for p in m.parameters())` counts).
pub fn parameter_count(varmap: &VarMap, prefix: &str) -> usize {
    trainable_vars(varmap, prefix)
        .iter()
        .map(|(_, v)| v.as_tensor().elem_count())
        .sum()
}
