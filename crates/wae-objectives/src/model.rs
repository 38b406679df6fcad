//! An auto-encoder (encoder, decoder, optional discriminator, prior) and its losses.

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use wae_nets::{Decoder, Discriminator, Encoder, EncoderKind};

use crate::config::{Likelihood, ModelConfig, ObjectiveConfig, PriorConfig};
use crate::cost::{CostKind, bernoulli_nll, gaussian_nll, reconstruction_cost};
use crate::{Error, Result};

/// The random numbers one training step needs, drawn on the host from a seeded RNG.
#[derive(Debug, Clone)]
pub struct StepNoise {
    /// Samples of the prior, `(N, d_z)`.
    pub prior: Tensor,
    /// Noise of a random encoder, `(N, d_z)`: standard normal for a Gaussian encoder's
    /// reparameterisation or an implicit encoder's input, uniform on [0, 1] for a
    /// uniform-noise encoder; `None` for deterministic encoders.
    pub encoder_eps: Option<Tensor>,
    /// Truncated-normal noise added to the encoder input, `(N, C, H, W)`;
    /// `None` when `input_noise_std` is 0.
    pub input_noise: Option<Tensor>,
}

/// Codes of a batch.
#[derive(Debug, Clone)]
pub struct Codes {
    /// The sampled codes z, `(N, d_z)` (what the penalty and decoder see).
    pub z: Tensor,
    /// The encoder's mean / deterministic output, `(N, d_z)`.
    pub mean: Tensor,
    /// Clipped log-variances of a Gaussian or uniform-noise encoder, `(N, d_z)`.
    pub logvar: Option<Tensor>,
}

/// The named parts of an auto-encoder loss; all are scalars.
#[derive(Debug, Clone)]
pub struct LossParts {
    /// What is minimised: `reconstruction + weight * penalty (+ extras' weighted terms)`.
    pub total: Tensor,
    /// The reconstruction term: scaled cost c (WAE) or negative log-likelihood (VAE).
    pub reconstruction: Tensor,
    /// The unweighted divergence term: MMD^2 (WAE-MMD), the encoder's non-saturating
    /// adversarial loss (WAE-GAN) or KL (VAE).
    pub penalty: Tensor,
    /// Further named terms (e.g. `logvar_l1`), unweighted.
    pub extra: Vec<(&'static str, Tensor)>,
}

impl LossParts {
    /// All parts as `(name, tensor)`: total, reconstruction, penalty, then extras.
    pub fn named(&self) -> Vec<(&'static str, &Tensor)> {
        let mut out = vec![
            ("total", &self.total),
            ("reconstruction", &self.reconstruction),
            ("penalty", &self.penalty),
        ];
        out.extend(self.extra.iter().map(|(n, t)| (*n, t)));
        out
    }
}

/// The discriminator's loss in WAE-GAN, scalars.
#[derive(Debug, Clone)]
pub struct DiscriminatorLoss {
    /// `lambda * js`, what the discriminator minimises (the reference code scales it by lambda).
    pub total: Tensor,
    /// `-E log D(z_prior) - E log(1 - D(z_codes))`, unweighted.
    pub js: Tensor,
}

/// Encoder, decoder, optional discriminator, prior and objective.
#[derive(Debug, Clone)]
pub struct Model {
    config: ModelConfig,
    objective: ObjectiveConfig,
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
            objective: objective.clone(),
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
        Ok(StepNoise {
            prior,
            encoder_eps,
            input_noise,
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

    fn logvar_l1(codes: &Codes) -> Result<Option<Tensor>> {
        Ok(match &codes.logvar {
            Some(lv) => Some(lv.abs()?.sum(D::Minus1)?.mean_all()?),
            None => None,
        })
    }

    /// `scale * E c(x, G(z))`; the cross-entropy cost is computed from the decoder's
    /// logits (numerically stable), the others from its output.
    fn wae_reconstruction(
        &self,
        x: &Tensor,
        z: &Tensor,
        cost: CostKind,
        scale: f64,
        train: bool,
    ) -> Result<Tensor> {
        if cost == CostKind::CrossEntropy {
            let nll = bernoulli_nll(x, &self.decoder.forward_logits_t(z, train)?)?;
            return Ok((nll * scale)?);
        }
        let x_hat = self.decoder.forward_t(z, train)?;
        reconstruction_cost(x, &x_hat, cost, scale)
    }

    /// The auto-encoder loss on a batch `x` `(N, C, H, W)` with this step's `noise`.
    /// Returns the loss parts and the codes (for the discriminator step).
    pub fn losses(&self, x: &Tensor, noise: &StepNoise, train: bool) -> Result<(LossParts, Codes)> {
        let codes = self.encode(x, Some(noise), train)?;
        let parts = match &self.objective {
            ObjectiveConfig::Vae(v) => {
                let (Some(logvar), PriorConfig::Normal { variance }) =
                    (&codes.logvar, self.config.prior)
                else {
                    return Err(Error::Config(
                        "a VAE needs a Gaussian encoder and a normal prior".into(),
                    ));
                };
                let reconstruction = match v.likelihood {
                    Likelihood::Bernoulli => {
                        bernoulli_nll(x, &self.decoder.forward_logits_t(&codes.z, train)?)?
                    }
                    Likelihood::Gaussian { variance } => {
                        gaussian_nll(x, &self.decoder.forward_t(&codes.z, train)?, variance)?
                    }
                };
                // KL(N(mu, s2) || N(0, v)) = KL(N(mu / sqrt(v), s2 / v) || N(0, 1)).
                let kl = wae_divergence::kl_to_standard_normal(
                    &(&codes.mean / variance.sqrt())?,
                    &(logvar - variance.ln())?,
                )?;
                let total = (&reconstruction + (&kl * v.beta)?)?;
                LossParts {
                    total,
                    reconstruction,
                    penalty: kl,
                    extra: Vec::new(),
                }
            }
            ObjectiveConfig::WaeMmd(w) => {
                let reconstruction =
                    self.wae_reconstruction(x, &codes.z, w.cost, w.cost_scale, train)?;
                let cfg = w.mmd_config(&self.config.prior, self.latent_dim());
                let penalty = wae_divergence::mmd(&codes.z, &noise.prior, &cfg)?;
                let mut total = (&reconstruction + (&penalty * w.lambda)?)?;
                let mut extra = Vec::new();
                if let Some(l1) = Self::logvar_l1(&codes)? {
                    if w.logvar_l1 > 0.0 {
                        total = (total + (&l1 * w.logvar_l1)?)?;
                    }
                    extra.push(("logvar_l1", l1));
                }
                LossParts {
                    total,
                    reconstruction,
                    penalty,
                    extra,
                }
            }
            ObjectiveConfig::WaeGan(w) => {
                let Some(disc) = &self.discriminator else {
                    return Err(Error::Config(
                        "WAE-GAN model built without a discriminator".into(),
                    ));
                };
                let reconstruction =
                    self.wae_reconstruction(x, &codes.z, w.cost, w.cost_scale, train)?;
                let logits_codes = disc.forward(&codes.z)?;
                let penalty = wae_divergence::encoder_adversarial_loss(&logits_codes)?;
                let mut total = (&reconstruction + (&penalty * w.lambda)?)?;
                let mut extra = Vec::new();
                if let Some(l1) = Self::logvar_l1(&codes)? {
                    if w.logvar_l1 > 0.0 {
                        total = (total + (&l1 * w.logvar_l1)?)?;
                    }
                    extra.push(("logvar_l1", l1));
                }
                LossParts {
                    total,
                    reconstruction,
                    penalty,
                    extra,
                }
            }
        };
        Ok((parts, codes))
    }

    /// The WAE-GAN discriminator's loss on `codes` `(N, d_z)` (detached here, so no
    /// gradient reaches the encoder) against `prior` samples `(M, d_z)`.
    pub fn discriminator_loss(&self, codes: &Tensor, prior: &Tensor) -> Result<DiscriminatorLoss> {
        let (Some(disc), ObjectiveConfig::WaeGan(w)) = (&self.discriminator, &self.objective)
        else {
            return Err(Error::Config(
                "discriminator_loss needs a WAE-GAN model".into(),
            ));
        };
        let logits_prior = disc.forward(prior)?;
        let logits_codes = disc.forward(&codes.detach())?;
        let js = wae_divergence::discriminator_loss(&logits_prior, &logits_codes)?;
        let total = (&js * w.lambda)?;
        Ok(DiscriminatorLoss { total, js })
    }

    /// Encoder pretraining loss (reference code): with codes q and prior samples p of
    /// the same count n, `mean((mean(p) - mean(q))^2) + mean((cov(p) - cov(q))^2)`,
    /// covariances normalised by n - 1.
    pub fn pretrain_loss(&self, x: &Tensor, noise: &StepNoise) -> Result<Tensor> {
        let codes = self.encode(x, Some(noise), true)?;
        moment_matching_loss(&codes.z, &noise.prior)
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
