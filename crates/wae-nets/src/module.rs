//! candle's [`Module`] / [`ModuleT`] for the networks, so they compose with candle-nn
//! layers (`candle_nn::seq`, your own modules) and code written for any candle module.
//!
//! - [`Decoder`]: [`ModuleT`], codes `(N, d_z)` to images `(N, C, H, W)` after the output
//!   activation (the inherent [`Decoder::forward_t`]; the logits are
//!   [`Decoder::forward_logits_t`]).
//! - [`Discriminator`]: [`Module`] (it has no BatchNorm, so no training flag), codes
//!   `(N, d_z)` to logits `(N, 1)` ([`Discriminator::forward`]).
//! - [`Encoder`]: [`ModuleT`], images `(N, C, H, W)` to the codes `(N, d_z)`: the
//!   deterministic code, or the mean of a Gaussian / uniform-noise encoder (the
//!   `mean` of [`Encoder::forward_t`]). A module returns one tensor, so the log-variances
//!   are left out: use [`Encoder::forward_t`] for them. An implicit encoder needs its
//!   noise and errors ([`crate::Error::NoiseRequired`]).
//!
//! The inherent methods keep their names and this crate's [`crate::Error`]; the traits'
//! methods return candle's error (this crate's errors wrapped, candle's passed through).
//! Where both are in scope call the trait's as `ModuleT::forward_t(&decoder, &z, train)`.

use candle_core::Tensor;
use candle_nn::{Module, ModuleT};

use crate::{Decoder, Discriminator, Encoder, Error};

/// Candle's error for one of ours: candle's own passed through, the others wrapped.
fn to_candle(err: Error) -> candle_core::Error {
    match err {
        Error::Candle(err) => err,
        other => candle_core::Error::wrap(other),
    }
}

impl ModuleT for Decoder {
    fn forward_t(&self, z: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        Decoder::forward_t(self, z, train).map_err(to_candle)
    }
}

impl Module for Discriminator {
    fn forward(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        Discriminator::forward(self, z).map_err(to_candle)
    }
}

impl ModuleT for Encoder {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        Encoder::forward_t(self, x, train)
            .map(|out| out.mean)
            .map_err(to_candle)
    }
}
