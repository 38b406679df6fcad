//! The papers' auto-encoder: the `wae-nets` encoder, decoder and latent discriminator
//! with a prior and an objective ([`Model`], built from a [`ModelConfig`]), one
//! implementation of [`AutoEncoder`] among any a user writes.
//!
//! Its methods return `wae_objectives`' errors, as [`AutoEncoder`] does: a network's
//! own error arrives as [`Error::Network`].

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use wae_nets::{
    Activation, Architecture, Decoder, DecoderConfig, Discriminator, DiscriminatorConfig, Encoder,
    EncoderConfig, EncoderKind,
};
use wae_objectives::{
    AutoEncoder, Codes, CostKind, DiscriminatorLoss, Error, Likelihood, LossParts, Objective,
    ObjectiveConfig, PriorConfig, Result, StepNoise, moment_matching_loss,
};

/// A `wae-nets` error as the objectives' [`Error::Network`].
fn net(e: wae_nets::Error) -> Error {
    Error::Network(Box::new(e))
}

/// The networks and prior of an auto-encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// The prior P_Z.
    pub prior: PriorConfig,
    /// Encoder Q(z|x).
    pub encoder: EncoderConfig,
    /// Decoder G(z).
    pub decoder: DecoderConfig,
    /// Latent discriminator (used by WAE-GAN only).
    pub discriminator: DiscriminatorConfig,
    /// Standard deviation of the truncated-normal noise added to the encoder's input
    /// in training (the reference code's `e_noise = "add_noise"`,
    /// [`DEFAULT_INPUT_NOISE_STD`], also when the key is left out); 0 = none.
    /// The reconstruction target stays the clean image.
    pub input_noise_std: f64,
}

/// The encoder's input noise of the paper's code (`e_noise = "add_noise"`): what
/// `input_noise_std` is when a config leaves it out, with or without a `[model]` table.
pub const DEFAULT_INPUT_NOISE_STD: f64 = 0.01;

/// The paper's MNIST networks (as [`ModelConfig::for_architecture`]) with the paper
/// code's input noise, [`DEFAULT_INPUT_NOISE_STD`]. Also what serde fills in for the
/// keys a `[model]` table leaves out, so that `TrainConfig::default().model` and a
/// `[model]` table without `input_noise_std` agree.
impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            input_noise_std: DEFAULT_INPUT_NOISE_STD,
            ..Self::for_architecture(Architecture::MnistDcgan)
        }
    }
}

impl ModelConfig {
    /// The paper's networks for `architecture` with a standard normal prior, no input noise.
    pub fn for_architecture(architecture: Architecture) -> Self {
        let encoder = EncoderConfig::for_architecture(architecture);
        let discriminator = DiscriminatorConfig {
            latent_dim: encoder.latent_dim,
            ..DiscriminatorConfig::default()
        };
        Self {
            prior: PriorConfig::default(),
            decoder: DecoderConfig::for_architecture(architecture),
            encoder,
            discriminator,
            input_noise_std: 0.0,
        }
    }

    /// Sets the latent dimension of all three networks.
    pub fn with_latent_dim(mut self, d: usize) -> Self {
        self.encoder.latent_dim = d;
        self.decoder.latent_dim = d;
        self.discriminator.latent_dim = d;
        self
    }

    /// Sets `width_div` of all three networks.
    pub fn with_width_div(mut self, k: usize) -> Self {
        self.encoder.width_div = k;
        self.decoder.width_div = k;
        self.discriminator.width_div = k;
        self
    }

    /// The latent dimension d_z.
    pub fn latent_dim(&self) -> usize {
        self.encoder.latent_dim
    }

    /// Checks that the parts fit together and with `objective`.
    pub fn validate(&self, objective: &ObjectiveConfig) -> Result<()> {
        self.prior.validate()?;
        // Widths and ranges first: a config is refused before anything is allocated.
        self.encoder.validate().map_err(net)?;
        self.decoder.validate().map_err(net)?;
        if objective.is_adversarial() {
            self.discriminator.validate().map_err(net)?;
        }
        let d = self.encoder.latent_dim;
        if self.decoder.latent_dim != d {
            return Err(Error::Config(format!(
                "encoder.latent_dim = {d} but decoder.latent_dim = {}",
                self.decoder.latent_dim
            )));
        }
        if self.decoder.architecture != self.encoder.architecture {
            return Err(Error::Config(format!(
                "encoder.architecture = {:?} but decoder.architecture = {:?}",
                self.encoder.architecture, self.decoder.architecture
            )));
        }
        if !(self.input_noise_std.is_finite() && self.input_noise_std >= 0.0) {
            return Err(Error::Config(format!(
                "input_noise_std must be >= 0, got {}",
                self.input_noise_std
            )));
        }
        let gaussian = self.encoder.kind == EncoderKind::Gaussian;
        let random = self.encoder.is_random();
        if gaussian && !matches!(self.prior, PriorConfig::Normal { .. }) {
            return Err(Error::Config(
                "a Gaussian encoder needs a normal prior (as in the reference code)".into(),
            ));
        }
        match objective {
            ObjectiveConfig::Vae(v) => {
                if !gaussian {
                    return Err(Error::Config(
                        "a VAE needs encoder.kind = \"gaussian\"".into(),
                    ));
                }
                if !matches!(self.prior, PriorConfig::Normal { .. }) {
                    return Err(Error::Config("a VAE needs a normal prior".into()));
                }
                self.check_likelihood(v.likelihood)?;
            }
            ObjectiveConfig::WaeMmd(w) => {
                if w.logvar_l1 > 0.0 && !random {
                    return Err(Error::Config(
                        "logvar_l1 > 0 needs a random encoder (encoder.kind = \"gaussian\" or \"uniform_noise\")".into(),
                    ));
                }
                self.check_cost(w.cost)?;
            }
            ObjectiveConfig::Swae(w) => self.check_cost(w.cost)?,
            ObjectiveConfig::InfoVae(v) => {
                if !gaussian {
                    return Err(Error::Config(
                        "InfoVAE needs encoder.kind = \"gaussian\"".into(),
                    ));
                }
                self.check_likelihood(v.likelihood)?;
            }
            ObjectiveConfig::WaeGan(w) => {
                if self.discriminator.latent_dim != d {
                    return Err(Error::Config(format!(
                        "encoder.latent_dim = {d} but discriminator.latent_dim = {}",
                        self.discriminator.latent_dim
                    )));
                }
                if w.logvar_l1 > 0.0 && !random {
                    return Err(Error::Config(
                        "logvar_l1 > 0 needs a random encoder (encoder.kind = \"gaussian\" or \"uniform_noise\")".into(),
                    ));
                }
                self.check_cost(w.cost)?;
            }
        }
        objective.validate()
    }

    fn check_likelihood(&self, likelihood: Likelihood) -> Result<()> {
        if likelihood == Likelihood::Bernoulli && self.decoder.activation != Activation::Sigmoid {
            return Err(Error::Config(
                "a Bernoulli decoder needs decoder.activation = \"sigmoid\" (data in [0, 1])"
                    .into(),
            ));
        }
        Ok(())
    }

    fn check_cost(&self, cost: CostKind) -> Result<()> {
        if cost == CostKind::CrossEntropy && self.decoder.activation != Activation::Sigmoid {
            return Err(Error::Config(
                "cost = \"cross_entropy\" needs decoder.activation = \"sigmoid\" (data in [0, 1])"
                    .into(),
            ));
        }
        Ok(())
    }
}

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
        let encoder = Encoder::new(&config.encoder, vb.clone()).map_err(net)?;
        let decoder = Decoder::new(&config.decoder, vb.clone()).map_err(net)?;
        let discriminator = if objective.is_adversarial() {
            Some(Discriminator::new(&config.discriminator, vb).map_err(net)?)
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
                self.encoder
                    .forward_with_noise_t(&x_in, e, train)
                    .map_err(net)?
            }
            _ => self.encoder.forward_t(&x_in, train).map_err(net)?,
        };
        // The encoder has already clipped the log-variances to its `logvar_clip`.
        let z = match (&out.logvar, eps) {
            (Some(_), Some(e)) => out.sample(e).map_err(net)?,
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
        self.decoder.forward_t(z, train).map_err(net)
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
        self.decoder.forward_logits_t(z, train).map_err(net)
    }

    fn decode(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        Model::decode(self, z, train)
    }

    fn discriminate(&self, z: &Tensor) -> Result<Tensor> {
        match &self.discriminator {
            Some(d) => d.forward(z).map_err(net),
            None => Err(Error::Config(
                "WAE-GAN model built without a discriminator".into(),
            )),
        }
    }
}

/// The trainer's view: the noise of [`Model::draw_noise`] (prior, encoder noise, input
/// noise, projections, in that order), the default variable prefixes, and
/// [`Model::pretrain_loss`] as the pretraining.
impl crate::trainable::TrainableModel for Model {
    fn draw_noise(
        &self,
        _objective: &Objective,
        n: usize,
        rng: &mut StdRng,
        device: &Device,
    ) -> Result<StepNoise> {
        Model::draw_noise(self, n, rng, device)
    }

    fn pretrain_loss(&self, x: &Tensor, noise: &StepNoise) -> Result<Option<Tensor>> {
        Model::pretrain_loss(self, x, noise).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wae_objectives::VaeConfig;

    #[test]
    fn toml_round_trip_and_unknown_keys_named() {
        let m = ModelConfig::default().with_width_div(4).with_latent_dim(16);
        let text = toml::to_string(&m).unwrap();
        assert_eq!(toml::from_str::<ModelConfig>(&text).unwrap(), m);
        let err = toml::from_str::<ModelConfig>("input_noise_stdd = 0.1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("input_noise_stdd"), "{err}");
    }

    #[test]
    fn vae_needs_gaussian_encoder() {
        let m = ModelConfig::default();
        let err = m
            .validate(&ObjectiveConfig::Vae(VaeConfig::default()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("gaussian"), "{err}");
    }
}
