//! What the trainer needs of a model beyond [`AutoEncoder`]: how a step's noise is drawn,
//! which variables each optimiser updates, and (optionally) the encoder pretraining.
//!
//! Every method has a default, so a user's own candle auto-encoder that names its
//! variables `encoder.*` and `decoder.*` (`vb.pp("encoder")`, `vb.pp("decoder")`) needs
//! only `impl TrainableModel for MyModel {}` to go through [`crate::train_with`] and
//! [`crate::resume_with`]: the same loop, checkpoints, exact resume, `metrics.jsonl`
//! and end-of-training evaluation as `wae train`. The project's [`crate::Model`] is one
//! implementation.

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use wae_objectives::{AutoEncoder, Objective, Result, StepNoise};

/// The variable-name prefixes of the auto-encoder's optimiser by default.
pub const AUTOENCODER_PREFIXES: &[&str] = &["encoder.", "decoder."];
/// The variable-name prefixes of the WAE-GAN discriminator's optimiser by default.
pub const DISCRIMINATOR_PREFIXES: &[&str] = &["discriminator."];
/// The variable-name prefixes encoder pretraining updates by default.
pub const PRETRAIN_PREFIXES: &[&str] = &["encoder."];

/// An [`AutoEncoder`] the trainer can train, checkpoint and resume.
pub trait TrainableModel: AutoEncoder {
    /// Everything step `s` on a batch of `n` images needs, drawn from `rng`
    /// (`StdRng(seed, StepNoise, s)`, or `StdRng(seed, Pretrain, k)` in pretraining) in a
    /// fixed order, on `device`. The default draws what a deterministic encoder needs:
    /// `n` prior samples of [`AutoEncoder::latent_dim`] dimensions, then (SWAE) the
    /// random directions ([`Objective::draw_noise`]).
    fn draw_noise(
        &self,
        objective: &Objective,
        n: usize,
        rng: &mut StdRng,
        device: &Device,
    ) -> Result<StepNoise> {
        objective.draw_noise(n, self.latent_dim(), rng, device)
    }

    /// Prefixes of the names of the variables the auto-encoder's optimiser updates
    /// (default `encoder.` and `decoder.`; `""` takes every variable).
    fn autoencoder_prefixes(&self) -> &[&str] {
        AUTOENCODER_PREFIXES
    }

    /// Prefixes of the names of the WAE-GAN discriminator's variables (default
    /// `discriminator.`); used only with an adversarial objective.
    fn discriminator_prefixes(&self) -> &[&str] {
        DISCRIMINATOR_PREFIXES
    }

    /// Prefixes of the names of the variables encoder pretraining updates (default
    /// `encoder.`).
    fn pretrain_prefixes(&self) -> &[&str] {
        PRETRAIN_PREFIXES
    }

    /// The encoder-pretraining loss on `x` with `noise`, or `None` when the model has no
    /// pretraining (the default; a config with `pretrain.enabled = true` is then refused).
    fn pretrain_loss(&self, x: &Tensor, noise: &StepNoise) -> Result<Option<Tensor>> {
        let _ = (x, noise);
        Ok(None)
    }
}
