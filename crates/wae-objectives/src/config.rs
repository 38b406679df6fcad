//! Serde configs of the prior and of the objectives (the networks' are `wae-train`'s
//! `ModelConfig`).

use serde::{Deserialize, Serialize};
use wae_divergence::{Estimator, Kernel, KernelConstant, MmdConfig, Prior};

use crate::cost::CostKind;
use crate::{Error, Result};

/// The prior P_Z over the latent space, as a config.
///
/// It is `wae_divergence`'s [`Prior`] plus one model setting, `squash` (how codes are put
/// into the box), which is no part of the distribution; hence a type of its own, turned
/// into the [`Prior`] by [`PriorConfig::sampler`]. Its TOML is [`Prior`]'s (`kind = ...`)
/// with that one key more.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PriorConfig {
    /// N(0, variance * I) (the papers: variance 1 on MNIST, 2 on CelebA).
    Normal {
        /// sigma_z^2, per coordinate.
        variance: f64,
    },
    /// Uniform on the box [-half_width, half_width]^d. With `squash` (the default, as
    /// `tolstikhin/wae` does) codes are mapped into it by `half_width * tanh`; without,
    /// codes are left as the encoder makes them (Rubenstein et al.'s fading squares).
    UniformBox {
        /// Half the side of the box.
        half_width: f64,
        /// Map codes into the box by `half_width * tanh` (left out of saved configs when true).
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        squash: bool,
    },
    /// Uniform on the unit sphere; codes are L2-normalised as in the reference code.
    Sphere,
}

fn yes() -> bool {
    true
}

fn is_true(v: &bool) -> bool {
    *v
}

impl Default for PriorConfig {
    fn default() -> Self {
        PriorConfig::Normal { variance: 1.0 }
    }
}

impl PriorConfig {
    /// The distribution (`wae_divergence`'s [`Prior`]): what is sampled and what the
    /// kernel constant rule ([`Prior::kernel_variance`]) reads.
    pub fn sampler(&self) -> Prior {
        match *self {
            PriorConfig::Normal { variance } => Prior::Normal { variance },
            PriorConfig::UniformBox { half_width, .. } => Prior::UniformBox { half_width },
            PriorConfig::Sphere => Prior::Sphere,
        }
    }

    /// Checks the prior's values (a positive, finite variance or half-width).
    pub fn validate(&self) -> Result<()> {
        self.sampler()
            .validate()
            .map_err(|e| Error::Config(format!("prior {self:?}: {e}")))
    }
}

/// The decoder's likelihood p(x|z) in a VAE.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Likelihood {
    /// Bernoulli with probabilities sigmoid(logits), for data in [0, 1] (MNIST).
    #[default]
    Bernoulli,
    /// Gaussian N(G(z), variance I), for real-valued data (CelebA).
    Gaussian {
        /// Fixed observation variance.
        variance: f64,
    },
}

/// VAE / beta-VAE: E[-log p(x|z)] + beta * KL(Q(z|x) || P_Z).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VaeConfig {
    /// Weight of the KL term (1 = VAE; > 1 = beta-VAE).
    pub beta: f64,
    /// The decoder's likelihood.
    pub likelihood: Likelihood,
}

impl Default for VaeConfig {
    fn default() -> Self {
        Self {
            beta: 1.0,
            likelihood: Likelihood::Bernoulli,
        }
    }
}

fn is_default_constant(k: &KernelConstant) -> bool {
    *k == KernelConstant::default()
}

/// WAE-MMD: E[c(x, G(z))] + lambda * MMD(Q_Z, P_Z) (+ logvar_l1 * E sum |log sigma^2|).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WaeMmdConfig {
    /// Weight lambda of the MMD penalty (paper MNIST: 10).
    pub lambda: f64,
    /// Cost c.
    pub cost: CostKind,
    /// Factor on the cost (the reference code's 0.05 for squared L2; 1 = the plain cost).
    pub cost_scale: f64,
    /// Kernel family.
    pub kernel: Kernel,
    /// Kernel scales s: the kernel is the sum over s of k with the constant C that
    /// `kernel_constant` makes of s (default C = 2 d sigma^2 s).
    pub scales: Vec<f64>,
    /// How each scale becomes a kernel constant (left out of saved configs when the default).
    #[serde(skip_serializing_if = "is_default_constant")]
    pub kernel_constant: KernelConstant,
    /// U- or V-statistic (or the paired U-statistic).
    pub estimator: Estimator,
    /// Weight of the random-encoder penalty E sum_d |log sigma_d^2| (Rubenstein et al.);
    /// 0 = off. Needs a Gaussian or uniform-noise encoder.
    pub logvar_l1: f64,
}

impl WaeMmdConfig {
    /// The divergence crate's MMD config for codes of dimension `latent_dim` under `prior`
    /// (the kernel constant by [`KernelConstant::prior_variance`]).
    pub fn mmd_config(&self, prior: &PriorConfig, latent_dim: usize) -> MmdConfig {
        MmdConfig {
            kernel: self.kernel,
            scales: self.scales.clone(),
            prior_variance: self
                .kernel_constant
                .prior_variance(&prior.sampler(), latent_dim),
            estimator: self.estimator,
        }
    }
}

impl Default for WaeMmdConfig {
    fn default() -> Self {
        Self {
            lambda: 10.0,
            cost: CostKind::SquaredL2,
            cost_scale: CostKind::SquaredL2.reference_scale(),
            kernel: Kernel::InverseMultiquadratic,
            scales: vec![0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0],
            kernel_constant: KernelConstant::TwoDimPriorVariance,
            estimator: Estimator::UStatistic,
            logvar_l1: 0.0,
        }
    }
}

/// WAE-GAN: E[c(x, G(z))] + lambda * JS penalty from a latent discriminator
/// (non-saturating encoder loss); with squared L2 this is the adversarial auto-encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WaeGanConfig {
    /// Weight lambda of the adversarial penalty (reference code MNIST: 10; paper CelebA: 1).
    pub lambda: f64,
    /// Cost c.
    pub cost: CostKind,
    /// Factor on the cost (reference: 0.05 for squared L2).
    pub cost_scale: f64,
    /// Weight of the random-encoder penalty E sum_d |log sigma_d^2|; 0 = off.
    pub logvar_l1: f64,
}

impl Default for WaeGanConfig {
    fn default() -> Self {
        Self {
            lambda: 10.0,
            cost: CostKind::SquaredL2,
            cost_scale: CostKind::SquaredL2.reference_scale(),
            logvar_l1: 0.0,
        }
    }
}

/// Sliced-Wasserstein auto-encoder (Kolouri et al., ICLR 2019):
/// `scale * E c(x, G(z)) + lambda * SW_p^p(Q_Z, P_Z)`, the sliced distance over
/// `projections` random directions drawn afresh every step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwaeConfig {
    /// Weight lambda of the sliced-Wasserstein penalty.
    pub lambda: f64,
    /// Cost c.
    pub cost: CostKind,
    /// Factor on the cost.
    pub cost_scale: f64,
    /// Random directions per step (Kolouri et al.: 50 for MNIST).
    pub projections: usize,
    /// The power p of SW_p^p (Kolouri et al.: 2).
    pub power: f64,
}

impl Default for SwaeConfig {
    fn default() -> Self {
        Self {
            lambda: 10.0,
            cost: CostKind::SquaredL2,
            cost_scale: CostKind::SquaredL2.reference_scale(),
            projections: 50,
            power: 2.0,
        }
    }
}

/// InfoVAE with the MMD divergence (Zhao, Song, Ermon, AAAI 2019; "MMD-VAE" at alpha = 1):
/// `E[-log p(x|z)] + (1 - alpha) KL(Q(z|x) || P_Z) + (alpha + lambda - 1) MMD^2(Q_Z, P_Z)`,
/// the MMD taken on the sampled codes (as pythae's `InfoVAE` and PyTorch-VAE's do).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InfoVaeConfig {
    /// alpha: the KL weight is 1 - alpha (alpha = 1 drops the KL term).
    pub alpha: f64,
    /// lambda: the MMD weight is alpha + lambda - 1 (must be >= 0).
    pub lambda: f64,
    /// The decoder's likelihood.
    pub likelihood: Likelihood,
    /// Kernel family of the MMD.
    pub kernel: Kernel,
    /// Kernel scales, constant `C = 2 d sigma^2 s` as in WAE-MMD.
    pub scales: Vec<f64>,
    /// U- or V-statistic.
    pub estimator: Estimator,
}

impl Default for InfoVaeConfig {
    fn default() -> Self {
        Self {
            alpha: 0.0,
            lambda: 10.0,
            likelihood: Likelihood::Bernoulli,
            kernel: Kernel::InverseMultiquadratic,
            scales: WaeMmdConfig::default().scales,
            estimator: Estimator::UStatistic,
        }
    }
}

impl InfoVaeConfig {
    /// The weight of the KL term, `1 - alpha`.
    pub fn kl_weight(&self) -> f64 {
        1.0 - self.alpha
    }

    /// The weight of the MMD term, `alpha + lambda - 1`.
    pub fn mmd_weight(&self) -> f64 {
        self.alpha + self.lambda - 1.0
    }

    /// The divergence crate's MMD config for codes of dimension `latent_dim` under `prior`.
    pub fn mmd_config(&self, prior: &PriorConfig, latent_dim: usize) -> MmdConfig {
        WaeMmdConfig {
            kernel: self.kernel,
            scales: self.scales.clone(),
            estimator: self.estimator,
            ..WaeMmdConfig::default()
        }
        .mmd_config(prior, latent_dim)
    }
}

/// Which objective to train, with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ObjectiveConfig {
    /// VAE or beta-VAE.
    Vae(VaeConfig),
    /// WAE with the MMD penalty.
    WaeMmd(WaeMmdConfig),
    /// WAE with the adversarial (JS) penalty.
    WaeGan(WaeGanConfig),
    /// Sliced-Wasserstein auto-encoder.
    Swae(SwaeConfig),
    /// InfoVAE / MMD-VAE.
    InfoVae(InfoVaeConfig),
}

impl Default for ObjectiveConfig {
    fn default() -> Self {
        ObjectiveConfig::WaeMmd(WaeMmdConfig::default())
    }
}

impl ObjectiveConfig {
    /// Short name: `vae`, `wae_mmd` or `wae_gan`.
    pub fn name(&self) -> &'static str {
        match self {
            ObjectiveConfig::Vae(_) => "vae",
            ObjectiveConfig::WaeMmd(_) => "wae_mmd",
            ObjectiveConfig::WaeGan(_) => "wae_gan",
            ObjectiveConfig::Swae(_) => "swae",
            ObjectiveConfig::InfoVae(_) => "info_vae",
        }
    }

    /// Whether the reconstruction term is computed from the decoder's logits (Bernoulli
    /// likelihood, cross-entropy cost) rather than its output.
    pub fn wants_logits(&self) -> bool {
        match self {
            ObjectiveConfig::Vae(v) => v.likelihood == Likelihood::Bernoulli,
            ObjectiveConfig::WaeMmd(w) => w.cost == CostKind::CrossEntropy,
            ObjectiveConfig::WaeGan(w) => w.cost == CostKind::CrossEntropy,
            ObjectiveConfig::Swae(w) => w.cost == CostKind::CrossEntropy,
            ObjectiveConfig::InfoVae(v) => v.likelihood == Likelihood::Bernoulli,
        }
    }

    /// Whether a discriminator is trained alongside.
    pub fn is_adversarial(&self) -> bool {
        matches!(self, ObjectiveConfig::WaeGan(_))
    }

    /// Checks value ranges.
    pub fn validate(&self) -> Result<()> {
        let nonneg = |v: f64, what: &str| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "{what} must be finite and >= 0, got {v}"
                )))
            }
        };
        match self {
            ObjectiveConfig::Vae(v) => {
                nonneg(v.beta, "beta")?;
                check_variance(v.likelihood)?;
                Ok(())
            }
            ObjectiveConfig::WaeMmd(w) => {
                nonneg(w.lambda, "lambda")?;
                nonneg(w.cost_scale, "cost_scale")?;
                nonneg(w.logvar_l1, "logvar_l1")?;
                check_scales(&w.scales)?;
                Ok(())
            }
            ObjectiveConfig::WaeGan(w) => {
                nonneg(w.lambda, "lambda")?;
                nonneg(w.cost_scale, "cost_scale")?;
                nonneg(w.logvar_l1, "logvar_l1")
            }
            ObjectiveConfig::Swae(w) => {
                nonneg(w.lambda, "lambda")?;
                nonneg(w.cost_scale, "cost_scale")?;
                if !(1..=100_000).contains(&w.projections) {
                    return Err(Error::Config(format!(
                        "projections must be between 1 and 100000, got {}",
                        w.projections
                    )));
                }
                if !(w.power.is_finite() && w.power >= 1.0) {
                    return Err(Error::Config(format!(
                        "power must be >= 1, got {}",
                        w.power
                    )));
                }
                Ok(())
            }
            ObjectiveConfig::InfoVae(v) => {
                if !(v.alpha.is_finite() && (0.0..=1.0).contains(&v.alpha)) {
                    return Err(Error::Config(format!(
                        "alpha must be in [0, 1] (the KL weight is 1 - alpha), got {}",
                        v.alpha
                    )));
                }
                if !(v.mmd_weight().is_finite() && v.mmd_weight() >= 0.0) {
                    return Err(Error::Config(format!(
                        "the MMD weight alpha + lambda - 1 must be >= 0, got {} (alpha {}, lambda {})",
                        v.mmd_weight(),
                        v.alpha,
                        v.lambda
                    )));
                }
                check_variance(v.likelihood)?;
                check_scales(&v.scales)?;
                Ok(())
            }
        }
    }
}

/// A Gaussian likelihood's variance is finite and > 0.
fn check_variance(likelihood: Likelihood) -> Result<()> {
    if let Likelihood::Gaussian { variance } = likelihood
        && !(variance.is_finite() && variance > 0.0)
    {
        return Err(Error::Config(format!(
            "likelihood variance must be > 0, got {variance}"
        )));
    }
    Ok(())
}

/// MMD kernel scales: a non-empty list of positive numbers.
fn check_scales(scales: &[f64]) -> Result<()> {
    if scales.is_empty() || scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(Error::Config(format!(
            "scales must be a non-empty list of positive numbers, got {scales:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Wrap {
        objective: ObjectiveConfig,
    }

    #[test]
    fn toml_round_trip() {
        let w = Wrap {
            objective: ObjectiveConfig::Vae(VaeConfig {
                beta: 4.0,
                likelihood: Likelihood::Gaussian { variance: 0.5 },
            }),
        };
        let text = toml::to_string(&w).unwrap();
        let back: Wrap = toml::from_str(&text).unwrap();
        assert_eq!(back, w);
    }

    #[test]
    fn unknown_key_in_objective_is_named() {
        let text = "[objective]\nkind = \"wae_mmd\"\nlambda = 3.0\nlamda = 2.0\n";
        let err = toml::from_str::<Wrap>(text).unwrap_err().to_string();
        assert!(err.contains("lamda"), "{err}");
        let ok = toml::from_str::<Wrap>("[objective]\nkind = \"wae_mmd\"\nlambda = 3.0\n").unwrap();
        match ok.objective {
            ObjectiveConfig::WaeMmd(w) => {
                assert_eq!(w.lambda, 3.0);
                assert_eq!(w.cost_scale, 0.05);
            }
            other => panic!("{other:?}"),
        }
    }

    /// The configs' TOML is written with `wae_divergence`'s types: the spellings of the
    /// presets (`kernel = "imq"`, ...) must not change.
    #[test]
    fn divergence_types_keep_the_config_spellings() {
        let w = Wrap {
            objective: ObjectiveConfig::WaeMmd(WaeMmdConfig {
                kernel_constant: KernelConstant::LatentDim,
                estimator: Estimator::PairedUStatistic,
                ..WaeMmdConfig::default()
            }),
        };
        let text = toml::to_string(&w).unwrap();
        assert!(text.contains("kernel = \"imq\"\n"), "{text}");
        assert!(
            text.contains("kernel_constant = \"latent_dim\"\n"),
            "{text}"
        );
        assert!(
            text.contains("estimator = \"paired_u_statistic\"\n"),
            "{text}"
        );
        assert_eq!(toml::from_str::<Wrap>(&text).unwrap(), w);
        // The default constant is left out of saved configs.
        let text = toml::to_string(&Wrap {
            objective: ObjectiveConfig::default(),
        })
        .unwrap();
        assert!(!text.contains("kernel_constant"), "{text}");
        assert!(text.contains("estimator = \"u_statistic\"\n"), "{text}");
        for (name, kernel) in [
            ("imq", Kernel::InverseMultiquadratic),
            ("inverse_multiquadratic", Kernel::InverseMultiquadratic),
            ("rbf", Kernel::Rbf),
        ] {
            let text = format!("[objective]\nkind = \"wae_mmd\"\nkernel = \"{name}\"\n");
            match toml::from_str::<Wrap>(&text).unwrap().objective {
                ObjectiveConfig::WaeMmd(w) => assert_eq!(w.kernel, kernel),
                other => panic!("{other:?}"),
            }
        }
        let err = toml::from_str::<Wrap>("[objective]\nkind = \"wae_mmd\"\nkernel = \"gauss\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("imq") && err.contains("rbf"), "{err}");
    }

    #[test]
    fn prior_config_is_the_divergence_prior_plus_squash() {
        #[derive(Debug, Deserialize, Serialize, PartialEq)]
        struct P {
            prior: PriorConfig,
            plain: Prior,
        }
        let p = P {
            prior: PriorConfig::UniformBox {
                half_width: 2.0,
                squash: true,
            },
            plain: Prior::UniformBox { half_width: 2.0 },
        };
        let text = toml::to_string(&p).unwrap();
        let tables: Vec<&str> = text.split("\n\n").collect();
        assert_eq!(
            tables[0].trim_start_matches("[prior]"),
            tables[1].trim_end().trim_start_matches("[plain]"),
            "{text}"
        );
        assert_eq!(toml::from_str::<P>(&text).unwrap(), p);
        assert_eq!(p.prior.sampler(), p.plain);
        assert!(
            PriorConfig::Normal { variance: -1.0 }.validate().is_err()
                && PriorConfig::Sphere.validate().is_ok()
        );
    }
}
