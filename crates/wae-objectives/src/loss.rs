//! The objectives as functions over tensors, and the small trait any auto-encoder
//! implements to be trained with them.
//!
//! Nothing here knows a network: each objective takes the encoder's codes, what the
//! decoder made of them, the input batch and the prior draws, and returns its named
//! parts. [`Objective::losses`] runs an [`AutoEncoder`] (`wae_train::Model` or a
//! user's own candle networks) and picks the right function.

use candle_core::{D, DType, Device, Tensor};
use rand::rngs::StdRng;

use crate::config::{
    InfoVaeConfig, Likelihood, ObjectiveConfig, PriorConfig, SwaeConfig, VaeConfig, WaeGanConfig,
    WaeMmdConfig,
};
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
    /// The sliced-Wasserstein auto-encoder's random directions, `(d_z, L)` unit columns;
    /// `None` for the other objectives.
    pub projections: Option<Tensor>,
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

impl Codes {
    /// The codes of a deterministic encoder: `z` is the mean, no log-variances.
    pub fn deterministic(z: Tensor) -> Self {
        Self {
            mean: z.clone(),
            z,
            logvar: None,
        }
    }
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

/// What the decoder made of the codes, in the form the objective's cost needs
/// ([`ObjectiveConfig::wants_logits`] says which).
#[derive(Debug, Clone, Copy)]
pub enum Decoded<'a> {
    /// The decoder's pre-activation output (Bernoulli cross-entropy, computed stably).
    Logits(&'a Tensor),
    /// The decoder's output after its activation (squared L2, L2, L1, Gaussian likelihood).
    Output(&'a Tensor),
}

impl<'a> Decoded<'a> {
    fn logits(self, what: &str) -> Result<&'a Tensor> {
        match self {
            Decoded::Logits(t) => Ok(t),
            Decoded::Output(_) => Err(Error::Config(format!(
                "{what} is computed from the decoder's logits; pass Decoded::Logits"
            ))),
        }
    }

    fn output(self, what: &str) -> Result<&'a Tensor> {
        match self {
            Decoded::Output(t) => Ok(t),
            Decoded::Logits(_) => Err(Error::Config(format!(
                "{what} is computed from the decoder's output; pass Decoded::Output"
            ))),
        }
    }
}

/// `scale * E c(x, G(z))`: the cross-entropy cost from logits (numerically stable),
/// the others from the decoder's output.
pub fn wae_reconstruction(
    x: &Tensor,
    decoded: Decoded,
    cost: CostKind,
    scale: f64,
) -> Result<Tensor> {
    if cost == CostKind::CrossEntropy {
        let nll = bernoulli_nll(x, decoded.logits("the cross-entropy cost")?)?;
        return Ok((nll * scale)?);
    }
    reconstruction_cost(x, decoded.output("this cost")?, cost, scale)
}

/// `E sum_d |log sigma_d^2|`, Rubenstein et al.'s random-encoder penalty (unweighted).
pub fn logvar_l1(logvar: &Tensor) -> Result<Tensor> {
    Ok(logvar.abs()?.sum(D::Minus1)?.mean_all()?)
}

/// Adds `weight * logvar_l1` to `total` (when the weight is > 0) and names it among
/// the extras (whenever the encoder has log-variances).
fn with_logvar_l1(
    reconstruction: Tensor,
    penalty: Tensor,
    lambda: f64,
    codes: &Codes,
    weight: f64,
) -> Result<LossParts> {
    let mut total = (&reconstruction + (&penalty * lambda)?)?;
    let mut extra = Vec::new();
    if let Some(lv) = &codes.logvar {
        let l1 = logvar_l1(lv)?;
        if weight > 0.0 {
            total = (total + (&l1 * weight)?)?;
        }
        extra.push(("logvar_l1", l1));
    }
    Ok(LossParts {
        total,
        reconstruction,
        penalty,
        extra,
    })
}

/// VAE / beta-VAE: `E[-log p(x|z)] + beta * KL(N(mean, exp(logvar)) || N(0, prior_variance I))`.
/// Needs log-variances in `codes`; Bernoulli takes [`Decoded::Logits`], Gaussian
/// [`Decoded::Output`].
pub fn vae(
    x: &Tensor,
    decoded: Decoded,
    codes: &Codes,
    cfg: &VaeConfig,
    prior_variance: f64,
) -> Result<LossParts> {
    let Some(logvar) = &codes.logvar else {
        return Err(Error::Config(
            "a VAE needs a Gaussian encoder (codes with log-variances)".into(),
        ));
    };
    let reconstruction = nll(x, decoded, cfg.likelihood)?;
    let kl = kl(codes, logvar, prior_variance)?;
    let total = (&reconstruction + (&kl * cfg.beta)?)?;
    Ok(LossParts {
        total,
        reconstruction,
        penalty: kl,
        extra: Vec::new(),
    })
}

/// WAE-MMD: `scale * E c(x, G(z)) + lambda * MMD^2(codes.z, prior_draws)` (+ the
/// log-variance L1 term when configured). `mmd` is the divergence crate's config for
/// this prior and d_z ([`WaeMmdConfig::mmd_config`]).
pub fn wae_mmd(
    x: &Tensor,
    decoded: Decoded,
    codes: &Codes,
    prior_draws: &Tensor,
    cfg: &WaeMmdConfig,
    mmd: &wae_divergence::MmdConfig,
) -> Result<LossParts> {
    let reconstruction = wae_reconstruction(x, decoded, cfg.cost, cfg.cost_scale)?;
    let penalty = wae_divergence::mmd(&codes.z, prior_draws, mmd)?;
    with_logvar_l1(reconstruction, penalty, cfg.lambda, codes, cfg.logvar_l1)
}

/// WAE-GAN's auto-encoder loss: `scale * E c(x, G(z)) + lambda * (-E log D(z))`, with
/// the discriminator's logits on the codes (gradients flow to the encoder through them).
pub fn wae_gan(
    x: &Tensor,
    decoded: Decoded,
    codes: &Codes,
    discriminator_logits: &Tensor,
    cfg: &WaeGanConfig,
) -> Result<LossParts> {
    let reconstruction = wae_reconstruction(x, decoded, cfg.cost, cfg.cost_scale)?;
    let penalty = wae_divergence::encoder_adversarial_loss(discriminator_logits)?;
    with_logvar_l1(reconstruction, penalty, cfg.lambda, codes, cfg.logvar_l1)
}

/// WAE-GAN's discriminator loss from its logits on prior draws and on (detached) codes.
pub fn wae_gan_discriminator(
    logits_prior: &Tensor,
    logits_codes: &Tensor,
    cfg: &WaeGanConfig,
) -> Result<DiscriminatorLoss> {
    let js = wae_divergence::discriminator_loss(logits_prior, logits_codes)?;
    let total = (&js * cfg.lambda)?;
    Ok(DiscriminatorLoss { total, js })
}

/// The negative log-likelihood of `x` under the decoder: Bernoulli from logits,
/// Gaussian from the output.
fn nll(x: &Tensor, decoded: Decoded, likelihood: Likelihood) -> Result<Tensor> {
    match likelihood {
        Likelihood::Bernoulli => bernoulli_nll(x, decoded.logits("the Bernoulli likelihood")?),
        Likelihood::Gaussian { variance } => {
            gaussian_nll(x, decoded.output("the Gaussian likelihood")?, variance)
        }
    }
}

/// KL(N(mean, exp(logvar)) || N(0, prior_variance I)), mean over the batch.
fn kl(codes: &Codes, logvar: &Tensor, prior_variance: f64) -> Result<Tensor> {
    // KL(N(mu, s2) || N(0, v)) = KL(N(mu / sqrt(v), s2 / v) || N(0, 1)).
    Ok(wae_divergence::kl_to_standard_normal(
        &(&codes.mean / prior_variance.sqrt())?,
        &(logvar - prior_variance.ln())?,
    )?)
}

/// Sliced-Wasserstein auto-encoder (Kolouri et al. 2019):
/// `scale * E c(x, G(z)) + lambda * SW_p^p(codes.z, prior_draws)` along the given unit
/// `projections` `(d_z, L)`.
pub fn swae(
    x: &Tensor,
    decoded: Decoded,
    codes: &Codes,
    prior_draws: &Tensor,
    projections: &Tensor,
    cfg: &SwaeConfig,
) -> Result<LossParts> {
    let reconstruction = wae_reconstruction(x, decoded, cfg.cost, cfg.cost_scale)?;
    let penalty = wae_divergence::sliced_wasserstein_with_projections(
        &codes.z,
        prior_draws,
        projections,
        cfg.power,
    )?;
    let total = (&reconstruction + (&penalty * cfg.lambda)?)?;
    Ok(LossParts {
        total,
        reconstruction,
        penalty,
        extra: Vec::new(),
    })
}

/// InfoVAE with the MMD divergence (Zhao et al. 2019):
/// `E[-log p(x|z)] + (1 - alpha) KL + (alpha + lambda - 1) MMD^2(codes.z, prior_draws)`.
/// `penalty` is the MMD^2 (unweighted); the KL is the extra part `kl`.
pub fn info_vae(
    x: &Tensor,
    decoded: Decoded,
    codes: &Codes,
    prior_draws: &Tensor,
    cfg: &InfoVaeConfig,
    prior_variance: f64,
    mmd: &wae_divergence::MmdConfig,
) -> Result<LossParts> {
    let Some(logvar) = &codes.logvar else {
        return Err(Error::Config(
            "InfoVAE needs a Gaussian encoder (codes with log-variances)".into(),
        ));
    };
    let reconstruction = nll(x, decoded, cfg.likelihood)?;
    let kl = kl(codes, logvar, prior_variance)?;
    let penalty = wae_divergence::mmd(&codes.z, prior_draws, mmd)?;
    let total = ((&reconstruction + (&kl * cfg.kl_weight())?)? + (&penalty * cfg.mmd_weight())?)?;
    Ok(LossParts {
        total,
        reconstruction,
        penalty,
        extra: vec![("kl", kl)],
    })
}

/// What an objective needs from an auto-encoder. Implement it for your own candle
/// networks to train them with [`Objective::losses`] (and `wae_train::TrainStep`).
pub trait AutoEncoder {
    /// Latent dimension d_z.
    fn latent_dim(&self) -> usize;

    /// Codes of a batch `x`. During training `noise` holds this step's draws (a random
    /// encoder samples with `noise.encoder_eps`); `train` switches BatchNorm and the like.
    fn encode(&self, x: &Tensor, noise: Option<&StepNoise>, train: bool) -> Result<Codes>;

    /// The decoder's pre-activation output for codes `z`.
    fn decode_logits(&self, z: &Tensor, train: bool) -> Result<Tensor>;

    /// The decoder's output (after its activation). The default is the sigmoid of
    /// [`AutoEncoder::decode_logits`], right for images in [0, 1].
    fn decode(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        Ok(candle_nn::ops::sigmoid(&self.decode_logits(z, train)?)?)
    }

    /// The latent discriminator's logits `(N, 1)` on codes `z` (WAE-GAN only).
    fn discriminate(&self, _z: &Tensor) -> Result<Tensor> {
        Err(Error::Config(
            "WAE-GAN needs a latent discriminator: implement AutoEncoder::discriminate".into(),
        ))
    }
}

/// An objective with the prior it pushes the codes towards: computes the loss of any
/// [`AutoEncoder`] on a batch.
#[derive(Debug, Clone)]
pub struct Objective {
    /// Which objective, with its weights.
    pub config: ObjectiveConfig,
    /// The prior P_Z.
    pub prior: PriorConfig,
}

impl Objective {
    /// Checks the values and returns the objective.
    pub fn new(config: ObjectiveConfig, prior: PriorConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { config, prior })
    }

    /// The draws of a step on `n` images for a deterministic encoder without input noise:
    /// `n` prior samples, then (SWAE) the random directions. `wae_train::Model::draw_noise`
    /// adds what the papers' random encoders need.
    pub fn draw_noise(
        &self,
        n: usize,
        latent_dim: usize,
        rng: &mut StdRng,
        device: &Device,
    ) -> Result<StepNoise> {
        let prior = self
            .prior
            .sampler()
            .sample(n, latent_dim, rng, device, DType::F32)?;
        Ok(StepNoise {
            prior,
            encoder_eps: None,
            input_noise: None,
            projections: self.draw_projections(latent_dim, rng, device)?,
        })
    }

    /// SWAE's random directions for one step, `(latent_dim, L)`; `None` for the others.
    pub fn draw_projections(
        &self,
        latent_dim: usize,
        rng: &mut StdRng,
        device: &Device,
    ) -> Result<Option<Tensor>> {
        Ok(match &self.config {
            ObjectiveConfig::Swae(w) => Some(wae_divergence::random_projections(
                latent_dim,
                w.projections,
                rng,
                device,
                DType::F32,
            )?),
            _ => None,
        })
    }

    /// The auto-encoder loss on a batch `x` with this step's `noise`; returns the parts
    /// and the codes (the WAE-GAN discriminator step needs them).
    pub fn losses<M: AutoEncoder + ?Sized>(
        &self,
        model: &M,
        x: &Tensor,
        noise: &StepNoise,
        train: bool,
    ) -> Result<(LossParts, Codes)> {
        let codes = model.encode(x, Some(noise), train)?;
        let logits = self.config.wants_logits();
        let out = if logits {
            model.decode_logits(&codes.z, train)?
        } else {
            model.decode(&codes.z, train)?
        };
        let decoded = if logits {
            Decoded::Logits(&out)
        } else {
            Decoded::Output(&out)
        };
        let parts = match &self.config {
            ObjectiveConfig::Vae(v) => {
                let PriorConfig::Normal { variance } = self.prior else {
                    return Err(Error::Config(
                        "a VAE needs a Gaussian encoder and a normal prior".into(),
                    ));
                };
                vae(x, decoded, &codes, v, variance)?
            }
            ObjectiveConfig::WaeMmd(w) => {
                let mmd = w.mmd_config(&self.prior, model.latent_dim());
                wae_mmd(x, decoded, &codes, &noise.prior, w, &mmd)?
            }
            ObjectiveConfig::WaeGan(w) => {
                let logits = model.discriminate(&codes.z)?;
                wae_gan(x, decoded, &codes, &logits, w)?
            }
            ObjectiveConfig::Swae(w) => {
                let Some(projections) = &noise.projections else {
                    return Err(Error::Config(
                        "SWAE needs this step's random directions in noise.projections \
                         (Objective::draw_noise draws them)"
                            .into(),
                    ));
                };
                swae(x, decoded, &codes, &noise.prior, projections, w)?
            }
            ObjectiveConfig::InfoVae(v) => {
                let PriorConfig::Normal { variance } = self.prior else {
                    return Err(Error::Config("InfoVAE needs a normal prior".into()));
                };
                let mmd = v.mmd_config(&self.prior, model.latent_dim());
                info_vae(x, decoded, &codes, &noise.prior, v, variance, &mmd)?
            }
        };
        Ok((parts, codes))
    }

    /// WAE-GAN's discriminator loss on `codes` (detached here, so no gradient reaches
    /// the encoder) against `prior` draws.
    pub fn discriminator_loss<M: AutoEncoder + ?Sized>(
        &self,
        model: &M,
        codes: &Tensor,
        prior: &Tensor,
    ) -> Result<DiscriminatorLoss> {
        let ObjectiveConfig::WaeGan(w) = &self.config else {
            return Err(Error::Config(
                "discriminator_loss needs a WAE-GAN objective".into(),
            ));
        };
        let logits_prior = model.discriminate(prior)?;
        let logits_codes = model.discriminate(&codes.detach())?;
        wae_gan_discriminator(&logits_prior, &logits_codes, w)
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
