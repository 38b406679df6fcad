//! One training step of any auto-encoder: the step `wae train`, `cargo xtask bench` and
//! a library user's own loop all call.
//!
//! [`TrainStep::step`] takes a model implementing [`wae_objectives::AutoEncoder`] (the
//! built-in [`crate::Model`] or your own candle networks), the
//! [`Objective`], a batch and this step's noise; it computes the loss parts, checks them
//! and the gradient norms for NaN / infinity *before* touching a weight, and applies the
//! Adam updates (the auto-encoder's, then the WAE-GAN discriminator's, both from the
//! same forward pass, as the reference code does).

use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::{DType, Tensor};
use wae_objectives::{AutoEncoder, Objective, StepNoise};

use crate::adam::Adam;
use crate::{Error, Result};

/// Wall-clock seconds of the phases of one step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepSeconds {
    /// Forward passes and the loss values read back.
    pub forward: f64,
    /// Gradients and their norms.
    pub backward: f64,
    /// The optimiser updates.
    pub update: f64,
}

/// What one step computed.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// Every loss part by name (`total`, `reconstruction`, `penalty`, extras such as
    /// `logvar_l1`), `grad_norm`, and for WAE-GAN `disc_total`, `disc_js`,
    /// `grad_norm_discriminator`; the norms are taken before the update.
    pub values: BTreeMap<String, f64>,
    /// Where the time went.
    pub seconds: StepSeconds,
}

/// The optimisers of an auto-encoder (and its latent discriminator for WAE-GAN) and the
/// step that uses them.
///
/// ```no_run
/// # use candle_core::{DType, Device, Tensor};
/// # use rand::{SeedableRng, rngs::StdRng};
/// # use wae_objectives::{Objective, ObjectiveConfig};
/// # use wae_train::{Model, ModelConfig};
/// # use wae_train::{Adam, AdamConfig, TrainStep, init::SeededVarMap};
/// # fn main() -> wae_train::Result<()> {
/// let device = Device::Cpu;
/// let vars = SeededVarMap::new(0);
/// let config = ModelConfig::default().with_width_div(8);
/// let model = Model::new(&config, &ObjectiveConfig::default(), vars.var_builder(DType::F32, &device))?;
/// let adam = Adam::new(wae_nets::trainable_vars(vars.var_map(), ""), AdamConfig::default())?;
/// let mut train = TrainStep::new(adam, None);
/// let x = Tensor::zeros((16, 1, 28, 28), DType::F32, &device)?;
/// for step in 0..10 {
///     let noise = model.draw_noise(16, &mut StdRng::seed_from_u64(step), &device)?;
///     let report = train.step(&model, model.loss(), &x, &noise, step)?;
///     println!("{step}: {:.4}", report.values["total"]);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TrainStep {
    autoencoder: Adam,
    discriminator: Option<Adam>,
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

fn finite(step: u64, part: &str, value: f64) -> Result<()> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Error::NonFinite {
            step,
            part: part.to_string(),
            value,
            last_checkpoint: "not known to the step (see the caller's checkpoints)".into(),
        })
    }
}

impl TrainStep {
    /// The step with an optimiser over the auto-encoder's variables and, for WAE-GAN,
    /// one over the discriminator's.
    pub fn new(autoencoder: Adam, discriminator: Option<Adam>) -> Self {
        Self {
            autoencoder,
            discriminator,
        }
    }

    /// The auto-encoder's optimiser.
    pub fn autoencoder_optimizer(&self) -> &Adam {
        &self.autoencoder
    }

    /// The auto-encoder's optimiser, to change its learning rate or load its state.
    pub fn autoencoder_optimizer_mut(&mut self) -> &mut Adam {
        &mut self.autoencoder
    }

    /// The discriminator's optimiser (WAE-GAN).
    pub fn discriminator_optimizer(&self) -> Option<&Adam> {
        self.discriminator.as_ref()
    }

    /// The discriminator's optimiser, to change its learning rate or load its state.
    pub fn discriminator_optimizer_mut(&mut self) -> Option<&mut Adam> {
        self.discriminator.as_mut()
    }

    /// One step on batch `x` with `noise` (drawn by the caller from its seeded RNG).
    /// `step` only names the step in an error: a NaN or infinite loss part or gradient
    /// norm returns [`Error::NonFinite`] before any weight changes.
    pub fn step<M: AutoEncoder + ?Sized>(
        &mut self,
        model: &M,
        objective: &Objective,
        x: &Tensor,
        noise: &StepNoise,
        step: u64,
    ) -> Result<StepReport> {
        let t0 = Instant::now();
        let (parts, codes) = objective.losses(model, x, noise, true)?;
        let mut values = BTreeMap::new();
        for (name, t) in parts.named() {
            let v = scalar(t)?;
            finite(step, name, v)?;
            values.insert(name.to_string(), v);
        }
        let t1 = Instant::now();
        let grads = parts.total.backward()?;
        let gn = self.autoencoder.grad_norm(&grads)?;
        finite(step, "grad_norm", gn)?;
        values.insert("grad_norm".into(), gn);
        let mut t2 = Instant::now();
        let mut forward = (t1 - t0).as_secs_f64();
        let mut backward = (t2 - t1).as_secs_f64();
        if let Some(disc) = &mut self.discriminator {
            let dl = objective.discriminator_loss(model, &codes.z, &noise.prior)?;
            let d_total = scalar(&dl.total)?;
            finite(step, "disc_total", d_total)?;
            let t3 = Instant::now();
            let d_grads = dl.total.backward()?;
            let d_gn = disc.grad_norm(&d_grads)?;
            finite(step, "grad_norm_discriminator", d_gn)?;
            values.insert("disc_total".into(), d_total);
            values.insert("disc_js".into(), scalar(&dl.js)?);
            values.insert("grad_norm_discriminator".into(), d_gn);
            let t4 = Instant::now();
            forward += (t3 - t2).as_secs_f64();
            backward += (t4 - t3).as_secs_f64();
            t2 = t4;
            // Alternating updates: the auto-encoder first, then the discriminator, both
            // from this step's forward pass (gradients computed before either update).
            self.autoencoder.step(&grads)?;
            disc.step(&d_grads)?;
        } else {
            self.autoencoder.step(&grads)?;
        }
        let update = t2.elapsed().as_secs_f64();
        Ok(StepReport {
            values,
            seconds: StepSeconds {
                forward,
                backward,
                update,
            },
        })
    }
}
