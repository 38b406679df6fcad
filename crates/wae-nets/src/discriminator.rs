//! The latent-space discriminator of WAE-GAN.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::Result;
use crate::config::{DiscriminatorConfig, check_width};
use crate::layers::{Linear, check_input};

/// `hidden_layers` x [Linear, ReLU] then Linear 1: codes `(N, d_z)` to
/// logits `(N, 1)` of "z was drawn from the prior".
#[derive(Debug, Clone)]
pub struct Discriminator {
    cfg: DiscriminatorConfig,
    hidden: Vec<Linear>,
    output: Linear,
}

impl Discriminator {
    /// Builds the discriminator, creating `discriminator.fc{i}` and
    /// `discriminator.fc_out` in `vb` (pass the root builder; the prefix is added here).
    pub fn new(cfg: &DiscriminatorConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let vb = vb.pp("discriminator");
        let units = check_width(cfg.hidden_units, cfg.width_div, "discriminator")?;
        let mut hidden = Vec::new();
        let mut d_in = cfg.latent_dim;
        for i in 0..cfg.hidden_layers {
            hidden.push(Linear::new(
                d_in,
                units,
                &cfg.init,
                vb.pp(format!("fc{i}")),
            )?);
            d_in = units;
        }
        let output = Linear::new(d_in, 1, &cfg.init, vb.pp("fc_out"))?;
        Ok(Self {
            cfg: cfg.clone(),
            hidden,
            output,
        })
    }

    /// The config this discriminator was built from.
    pub fn config(&self) -> &DiscriminatorConfig {
        &self.cfg
    }

    /// Logits `(N, 1)` for codes `z` `(N, d_z)`. With `prior_trick_variance`
    /// = s^2, adds log N(z; 0, s^2 I) = -|z|^2 / (2 s^2) - d_z / 2 * log(2 pi s^2).
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        check_input(z, &[self.cfg.latent_dim], "discriminator input z")?;
        let mut h = z.clone();
        for lin in &self.hidden {
            h = crate::layers::relu(&lin.forward(&h)?)?;
        }
        let logits = self.output.forward(&h)?;
        match self.cfg.prior_trick_variance {
            None => Ok(logits),
            Some(var) => {
                let d = self.cfg.latent_dim as f64;
                let log_density = z.sqr()?.sum_keepdim(1)?.affine(
                    -0.5 / var,
                    -0.5 * d * (2.0 * std::f64::consts::PI * var).ln(),
                )?;
                Ok((logits + log_density)?)
            }
        }
    }
}
