//! An auto-encoder (encoder, decoder, optional discriminator, prior) and its losses.

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use wae_nets::{Decoder, Discriminator, Encoder, EncoderKind};

use crate::config::{ModelConfig, ObjectiveConfig, PriorConfig};
use crate::loss::{AutoEncoder, Codes, DiscriminatorLoss, LossParts, Objective, StepNoise};
use crate::{Error, Result};

/// Encoder, decoder, optional discriminator, prior and objective.
#[derive(Debug, Clone)]
pub struct Model {
    config: ModelConfig,
    objective: Objective,
    /// Q(z|x).
    pub encoder: Encoder,
    /// G(z).
    pub decoder: Decoder,
    /// The latent discriminator (WAE-GAN only).
    pub discriminator: Option<Discriminator>,
}

fn host_normal(n: usize, rng: &mut StdRng) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let v: f32 = StandardNormal.sample(rng);
            v
        })
        .collect()
}

/// `n` draws of N(0, std^2) truncated at 2 std (re-drawn beyond, as TensorFlow's
/// `truncated_normal`).
fn host_truncated_normal(n: usize, std: f64, rng: &mut StdRng) -> Vec<f32> {
    (0..n)
        .map(|_| {
            loop {
                let v: f64 = StandardNormal.sample(rng);
                if v.abs() <= 2.0 {
                    break (v * std) as f32;
                }
            }
        })
        .collect()
}

impl Model {
    /// Builds the networks under the root `vb` (`encoder.*`, `decoder.*`, and
    /// `discriminator.*` for WAE-GAN) after checking the configs fit together.
    pub fn new(config: &ModelConfig, objective: &ObjectiveConfig, vb: VarBuilder) -> Result<Self> {
        config.validate(objective)?;
        let encoder = Encoder::new(&config.encoder, vb.clone())?;
        let decoder = Decoder::new(&config.decoder, vb.clone())?;
        let discriminator = if objective.is_adversarial() {
            Some(Discriminator::new(&config.discriminator, vb)?)
        } else {
            None
        };
        Ok(Self {
            config: config.clone(),
            objective: Objective::new(objective.clone(), config.prior)?,
            encoder,
            decoder,
            discriminator,
        })
    }

    /// The model config.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The objective config.
    pub fn objective(&self) -> &ObjectiveConfig {
        &self.objective.config
    }

    /// The objective with its prior, as [`Objective::losses`] takes it.
    pub fn loss(&self) -> &Objective {
        &self.objective
    }

    /// Latent dimension d_z.
    pub fn latent_dim(&self) -> usize {
        self.config.latent_dim()
    }

    /// Draws `n` prior samples `(n, d_z)` with `rng`, on `device`.
    pub fn sample_prior(&self, n: usize, rng: &mut StdRng, device: &Device) -> Result<Tensor> {
        Ok(self
            .config
            .prior
            .sampler()
            .sample(n, self.latent_dim(), rng, device, DType::F32)?)
    }

    /// Draws everything a training step on a batch of `n` images needs, in a fixed
    /// order (prior, encoder noise, input noise), from `rng`.
    pub fn draw_noise(&self, n: usize, rng: &mut StdRng, device: &Device) -> Result<StepNoise> {
        let d = self.latent_dim();
        let prior = self.sample_prior(n, rng, device)?;
        let encoder_eps = match self.config.encoder.kind {
            EncoderKind::Deterministic => None,
            EncoderKind::Gaussian | EncoderKind::Implicit => Some(
                Tensor::from_vec(host_normal(n * d, rng), (n, d), &Device::Cpu)?
                    .to_device(device)?,
            ),
            EncoderKind::UniformNoise => {
                let u: Vec<f32> = (0..n * d).map(|_| rng.random::<f32>()).collect();
                Some(Tensor::from_vec(u, (n, d), &Device::Cpu)?.to_device(device)?)
            }
        };
        let input_noise = if self.config.input_noise_std > 0.0 {
            let (c, h, w) = self.config.encoder.architecture.image_shape();
            let v = host_truncated_normal(n * c * h * w, self.config.input_noise_std, rng);
            Some(Tensor::from_vec(v, (n, c, h, w), &Device::Cpu)?.to_device(device)?)
        } else {
            None
        };
        let projections = self.objective.draw_projections(d, rng, device)?;
        Ok(StepNoise {
            prior,
            encoder_eps,
            input_noise,
            projections,
        })
    }

    fn project(&self, z: Tensor) -> Result<Tensor> {
        Ok(match self.config.prior {
            PriorConfig::Normal { .. } | PriorConfig::UniformBox { squash: false, .. } => z,
            PriorConfig::UniformBox { half_width, .. } => (z.tanh()? * half_width)?,
            PriorConfig::Sphere => {
                let norm = (z.sqr()?.sum_keepdim(D::Minus1)? + 1e-12)?.sqrt()?;
                z.broadcast_div(&norm)?
            }
        })
    }

    /// Encodes images `x` `(N, C, H, W)`.
    ///
    /// With `noise` (training): input noise is added, random encoders' codes are sampled
    /// (`z = mean + exp(logvar / 2) * eps` Gaussian, `mean + exp(logvar) * u` uniform
    /// noise, see [`wae_nets::EncoderOutput::sample`]), implicit encoders get their eps.
    /// Without (evaluation): `z` is the mean (implicit encoders get zero noise).
    /// Codes are mapped onto the prior's support for the sphere prior and the squashed box.
    pub fn encode(&self, x: &Tensor, noise: Option<&StepNoise>, train: bool) -> Result<Codes> {
        let n = x.dim(0)?;
        let d = self.latent_dim();
        let x_in = match noise.and_then(|s| s.input_noise.as_ref()) {
            Some(e) => (x + e)?,
            None => x.clone(),
        };
        let eps = noise.and_then(|s| s.encoder_eps.as_ref());
        let out = match self.config.encoder.kind {
            EncoderKind::Implicit => {
                let zeros;
                let e = match eps {
                    Some(e) => e,
                    None => {
                        zeros = Tensor::zeros((n, d), DType::F32, x.device())?;
                        &zeros
                    }
                };
                self.encoder.forward_with_noise_t(&x_in, e, train)?
            }
            _ => self.encoder.forward_t(&x_in, train)?,
        };
        // The encoder has already clipped the log-variances to its `logvar_clip`.
        let z = match (&out.logvar, eps) {
            (Some(_), Some(e)) => out.sample(e)?,
            _ => out.mean.clone(),
        };
        Ok(Codes {
            z: self.project(z)?,
            mean: self.project(out.mean)?,
            logvar: out.logvar,
        })
    }

    /// Decoded images `(N, C, H, W)` after the output activation.
    pub fn decode(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.decoder.forward_t(z, train)?)
    }

    /// Reconstructions of `x` in evaluation mode (mean codes, BatchNorm running statistics).
    pub fn reconstruct(&self, x: &Tensor) -> Result<Tensor> {
        let codes = self.encode(x, None, false)?;
        self.decode(&codes.mean, false)
    }

    /// The auto-encoder loss on a batch `x` `(N, C, H, W)` with this step's `noise`
    /// ([`Objective::losses`] with this model's objective and prior).
    /// Returns the loss parts and the codes (for the discriminator step).
    pub fn losses(&self, x: &Tensor, noise: &StepNoise, train: bool) -> Result<(LossParts, Codes)> {
        self.objective.losses(self, x, noise, train)
    }

    /// The WAE-GAN discriminator's loss on `codes` `(N, d_z)` (detached here, so no
    /// gradient reaches the encoder) against `prior` samples `(M, d_z)`.
    pub fn discriminator_loss(&self, codes: &Tensor, prior: &Tensor) -> Result<DiscriminatorLoss> {
        self.objective.discriminator_loss(self, codes, prior)
    }

    /// Encoder pretraining loss (reference code): with codes q and prior samples p of
    /// the same count n, `mean((mean(p) - mean(q))^2) + mean((cov(p) - cov(q))^2)`,
    /// covariances normalised by n - 1.
    pub fn pretrain_loss(&self, x: &Tensor, noise: &StepNoise) -> Result<Tensor> {
        let codes = self.encode(x, Some(noise), true)?;
        moment_matching_loss(&codes.z, &noise.prior)
    }
}

impl AutoEncoder for Model {
    fn latent_dim(&self) -> usize {
        self.config.latent_dim()
    }

    fn encode(&self, x: &Tensor, noise: Option<&StepNoise>, train: bool) -> Result<Codes> {
        Model::encode(self, x, noise, train)
    }

    fn decode_logits(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.decoder.forward_logits_t(z, train)?)
    }

    fn decode(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        Model::decode(self, z, train)
    }

    fn discriminate(&self, z: &Tensor) -> Result<Tensor> {
        match &self.discriminator {
            Some(d) => Ok(d.forward(z)?),
            None => Err(Error::Config(
                "WAE-GAN model built without a discriminator".into(),
            )),
        }
    }
}

/// `mean((mean(p) - mean(q))^2) + mean((cov(p) - cov(q))^2)` for `q`, `p` of shape
/// `(n, d)` (n >= 2), covariances with the n - 1 normaliser.
pub fn moment_matching_loss(q: &Tensor, p: &Tensor) -> Result<Tensor> {
    let (n, d) = q.dims2()?;
    if p.dims() != [n, d] || n < 2 {
        return Err(Error::Shape {
            what: "moment matching inputs",
            expected: format!("two equal shapes (n >= 2, d), the first is ({n}, {d})"),
            got: p.dims().to_vec(),
        });
    }
    let mean_q = q.mean_keepdim(0)?;
    let mean_p = p.mean_keepdim(0)?;
    let mean_loss = (&mean_p - &mean_q)?.sqr()?.mean_all()?;
    let cq = q.broadcast_sub(&mean_q)?;
    let cp = p.broadcast_sub(&mean_p)?;
    let cov_q = (cq.t()?.matmul(&cq)? / (n as f64 - 1.0))?;
    let cov_p = (cp.t()?.matmul(&cp)? / (n as f64 - 1.0))?;
    let cov_loss = (cov_p - cov_q)?.sqr()?.mean_all()?;
    Ok((mean_loss + cov_loss)?)
}
