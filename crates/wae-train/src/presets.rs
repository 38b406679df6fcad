//! Named configurations: the papers' runs and CPU-sized variants of each.
//!
//! | preset | what |
//! | --- | --- |
//! | `mnist-wae-mmd`, `mnist-wae-gan` | the reference code's MNIST config (d_z 8, lambda 10, batch 100, 100 epochs, lr 1e-3 / 5e-4, /2 at epoch 30, /5 at 50, pretraining, input noise 0.01, N(0, 0.01) init) |
//! | `mnist-vae`, `mnist-beta-vae` | the same networks with a Gaussian encoder and a Bernoulli decoder; beta 1 or 4; no pretraining or input noise |
//! | `mnist-wae-mmd-box`, `mnist-wae-mmd-sphere` | `mnist-wae-mmd` with the reference code's other priors (`tolstikhin/wae`, `opts['pz']` = `'uniform'` / `'sphere'`, handled in `wae.py` / `models.py`): uniform on [-1, 1]^8 with the encoder's codes mapped by tanh, or uniform on the unit sphere with L2-normalised codes; the IMQ constant follows the prior (C = 2 d_z sigma^2 s with sigma^2 = 1/2 for the box, 1/d_z for the sphere, as that code). The reference's MNIST config uses the normal prior: these are its options on that config, not runs the papers report |
//! | `mnist-swae` | Sliced-Wasserstein AE (Kolouri et al., ICLR 2019, section 4: SW_2^2 penalty, L = 50 directions per step) on the `mnist-wae-mmd` networks, cost, schedule, pretraining and input noise; departs from Kolouri et al.'s MNIST setup in the networks, the cost (0.05 squared L2 as the WAE code, theirs BCE + L1) and lambda 10 (our choice, the WAE code's MMD weight) |
//! | `mnist-info-vae` | InfoVAE with MMD (Zhao, Song, Ermon, AAAI 2019, eq. for the MMD-InfoVAE; the loss as pythae's `InfoVAE`: NLL + (1 - alpha) KL + (alpha + lambda - 1) MMD) on the `mnist-vae` networks and schedule; alpha 0 and lambda 100 (MMD weight 99) are our choice: at `-cpu` size, 200 steps, seed 0, lambda 1000 collapsed the posterior (KL 0.5 nats, test error 52.8, MMD of the means 1.53) while 100 gave test error 23.0 and MMD 0.048 beside the VAE's 22.0 and 0.109; IMQ kernel with the WAE scales |
//! | `celeba-wae-mmd`, `celeba-wae-gan`, `celeba-vae` | `tolstikhin/wae` `configs.py` `config_celebA` at commit 6351565 with the paper's sigma_z^2 2 and lambda 100 / 1 (d_z 64, tanh output, pixels in [-1, 1], batch 100, 50 epochs, lr 1e-3 MMD / 3e-4 GAN as the code's comment, adversary 1e-3, smooth decay by 100, pretraining on 256 images, prior trick); see `celeba_base` |
//! | `fading-squares-wae-mmd-random`, `fading-squares-wae-mmd-det` | Rubenstein et al.'s fading-squares config (`paruby/Wasserstein-Auto-Encoders`, `config.py`, `fading_squares_opts`; nets from `models.py`), see [`rubenstein`] for every value and the departures: uniform-noise random encoder or its deterministic twin, d_z 2, uniform prior on [-1, 1]^2, 40,000 steps |
//! | `dsprites-wae-mmd-random`, `dsprites-wae-mmd-det`, `dsprites-vae`, `dsprites-beta-vae-4`, `dsprites-beta-vae-16` | Rubenstein et al.'s dSprites config (`dsprites_opts`): Gaussian random encoder with tanh mean and log-variance L1 3.0, or deterministic; beta-VAE baselines (beta 1, 4, 16) with the same fully connected nets; d_z 16, 60,000 steps |
//! | `dsprites-wae-code-mmd`, `dsprites-wae-code-mmd-gauss` | dSprites with the `tolstikhin/wae` code's dSprites config (d_z 12, lambda 10, 256 filters, 4 conv layers, batch 100, lr 1e-3, plateau schedule): WAE-MMD deterministic, or Gaussian with log-variance L1 0.1 (our choice); 100,000 training images, 20 epochs |
//! | `*-cpu` | the same sized for 2 CPU cores (MNIST: width / 4, 2 epochs; CelebA: width / 8, 1 epoch; Rubenstein fading squares: 6,000 steps; Rubenstein dSprites: 4,000 steps on 100,000 images; WAE-code dSprites: width / 4, 20,000 images, 10 epochs), see [`cpu_variant`] and [`rubenstein::cpu_variant`] |
//! | `mnist-wae-mmd-smoke` | a seconds-long run on 512 images with tiny networks, for tests and a first try |

use wae_nets::{Activation, Architecture, EncoderKind};
use wae_objectives::{
    InfoVaeConfig, Likelihood, ObjectiveConfig, PriorConfig, SwaeConfig, VaeConfig, WaeGanConfig,
    WaeMmdConfig,
};

use crate::adam::AdamConfig;
use crate::config::{DataConfig, DatasetKind, SplitKind, TrainConfig};
use crate::model::ModelConfig;
use crate::schedule::{Milestone, Schedule};
use crate::{Error, Result};

pub mod rubenstein;

/// Every preset name with a one-line description.
pub const PRESETS: &[(&str, &str)] = &[
    (
        "mnist-vae",
        "VAE on MNIST, paper networks (Bernoulli decoder)",
    ),
    (
        "mnist-beta-vae",
        "beta-VAE (beta = 4) on MNIST, paper networks",
    ),
    (
        "mnist-wae-mmd",
        "WAE-MMD on MNIST, the reference code's config",
    ),
    (
        "mnist-wae-gan",
        "WAE-GAN on MNIST, the reference code's config",
    ),
    (
        "celeba-vae",
        "VAE on CelebA 64x64, paper networks (Gaussian decoder)",
    ),
    ("celeba-wae-mmd", "WAE-MMD on CelebA 64x64, paper settings"),
    ("celeba-wae-gan", "WAE-GAN on CelebA 64x64, paper settings"),
    (
        "mnist-swae",
        "Sliced-Wasserstein AE on MNIST, the WAE code's networks and schedule",
    ),
    (
        "mnist-info-vae",
        "InfoVAE (MMD-VAE) on MNIST, paper networks (Bernoulli decoder)",
    ),
    (
        "mnist-wae-mmd-box",
        "WAE-MMD on MNIST with a uniform prior on [-1, 1]^8 (codes through tanh)",
    ),
    (
        "mnist-wae-mmd-sphere",
        "WAE-MMD on MNIST with a uniform prior on the unit sphere",
    ),
    ("mnist-vae-cpu", "mnist-vae at width/4 for 2 epochs"),
    (
        "mnist-beta-vae-cpu",
        "mnist-beta-vae at width/4 for 2 epochs",
    ),
    ("mnist-wae-mmd-cpu", "mnist-wae-mmd at width/4 for 2 epochs"),
    ("mnist-wae-gan-cpu", "mnist-wae-gan at width/4 for 2 epochs"),
    ("mnist-swae-cpu", "mnist-swae at width/4 for 2 epochs"),
    (
        "mnist-wae-mmd-box-cpu",
        "mnist-wae-mmd-box at width/4 for 2 epochs",
    ),
    (
        "mnist-wae-mmd-sphere-cpu",
        "mnist-wae-mmd-sphere at width/4 for 2 epochs",
    ),
    (
        "mnist-info-vae-cpu",
        "mnist-info-vae at width/4 for 2 epochs",
    ),
    ("celeba-vae-cpu", "celeba-vae at width/8 for 1 epoch"),
    (
        "celeba-wae-mmd-cpu",
        "celeba-wae-mmd at width/8 for 1 epoch",
    ),
    (
        "celeba-wae-gan-cpu",
        "celeba-wae-gan at width/8 for 1 epoch",
    ),
    (
        "fading-squares-wae-mmd-random",
        "Rubenstein et al.: WAE-MMD, uniform-noise random encoder, d_z = 2, on fading squares",
    ),
    (
        "fading-squares-wae-mmd-det",
        "Rubenstein et al.: WAE-MMD, deterministic encoder, d_z = 2, on fading squares",
    ),
    (
        "dsprites-wae-mmd-random",
        "Rubenstein et al.: WAE-MMD, Gaussian encoder + log-variance L1 3, d_z = 16, on dSprites",
    ),
    (
        "dsprites-wae-mmd-det",
        "Rubenstein et al.: WAE-MMD, deterministic encoder, d_z = 16, on dSprites",
    ),
    (
        "dsprites-vae",
        "VAE with Rubenstein et al.'s dSprites nets (Bernoulli decoder)",
    ),
    (
        "dsprites-beta-vae-4",
        "beta-VAE (beta = 4) with Rubenstein et al.'s dSprites nets",
    ),
    (
        "dsprites-beta-vae-16",
        "beta-VAE (beta = 16) with Rubenstein et al.'s dSprites nets",
    ),
    (
        "dsprites-wae-code-mmd",
        "WAE-MMD, deterministic encoder, on dSprites, the tolstikhin/wae code's config",
    ),
    (
        "dsprites-wae-code-mmd-gauss",
        "WAE-MMD, Gaussian encoder + log-variance L1, on dSprites, the tolstikhin/wae code's config",
    ),
    (
        "fading-squares-wae-mmd-random-cpu",
        "fading-squares-wae-mmd-random for 6,000 steps",
    ),
    (
        "fading-squares-wae-mmd-det-cpu",
        "fading-squares-wae-mmd-det for 6,000 steps",
    ),
    (
        "dsprites-wae-mmd-random-cpu",
        "dsprites-wae-mmd-random for fewer steps on 100,000 images",
    ),
    (
        "dsprites-wae-mmd-det-cpu",
        "dsprites-wae-mmd-det for fewer steps on 100,000 images",
    ),
    (
        "dsprites-vae-cpu",
        "dsprites-vae for fewer steps on 100,000 images",
    ),
    (
        "dsprites-beta-vae-4-cpu",
        "dsprites-beta-vae-4 for fewer steps on 100,000 images",
    ),
    (
        "dsprites-beta-vae-16-cpu",
        "dsprites-beta-vae-16 for fewer steps on 100,000 images",
    ),
    (
        "dsprites-wae-code-mmd-cpu",
        "dsprites-wae-code-mmd at width/4 on 20,000 images for 10 epochs",
    ),
    (
        "dsprites-wae-code-mmd-gauss-cpu",
        "dsprites-wae-code-mmd-gauss at width/4 on 20,000 images for 10 epochs",
    ),
    (
        "mnist-wae-mmd-smoke",
        "WAE-MMD on 512 MNIST images, width/16, 1 epoch of 16 steps (seconds)",
    ),
];

fn mnist_base(description: &str) -> TrainConfig {
    TrainConfig {
        description: description.into(),
        ..TrainConfig::default()
    }
}

fn mnist_vae(beta: f64, description: &str) -> TrainConfig {
    let mut cfg = mnist_base(description);
    cfg.model.encoder.kind = EncoderKind::Gaussian;
    cfg.model.input_noise_std = 0.0;
    cfg.objective = ObjectiveConfig::Vae(VaeConfig {
        beta,
        likelihood: Likelihood::Bernoulli,
    });
    cfg.pretrain.enabled = false;
    cfg
}

/// The CelebA presets follow `tolstikhin/wae`, `configs.py`, `config_celebA` at commit
/// 6351565 (2018-06-28, the repository's last): batch 100, 50 epochs, adversary lr 1e-3,
/// `manual_smooth` decay (by 100 over the run), pretraining on 256 images, input noise,
/// N(0, 0.01) init, d_z 64, 1024 filters, `gan_p_trick`. They depart from it where the
/// ICLR paper (section 4 and appendix) differs: sigma_z^2 = 2 (the code: `pz_scale` 1),
/// lambda 1 for WAE-GAN (the code: 100 for both), and the learning rates of the code's
/// own comment, 1e-3 for WAE-MMD and 3e-4 for WAE-GAN (its value: 5e-4). The VAE's
/// Gaussian decoder variance 1 on [-1, 1] pixels is our choice (the code has no VAE):
/// its negative log-likelihood is then half the squared L2 cost plus a constant.
fn celeba_base(description: &str) -> TrainConfig {
    let mut model = ModelConfig::for_architecture(Architecture::CelebaDcgan);
    model.prior = PriorConfig::Normal { variance: 2.0 };
    model.input_noise_std = 0.01;
    model.discriminator.hidden_units = 1024;
    model.discriminator.prior_trick_variance = Some(2.0);
    let mut cfg = TrainConfig {
        description: description.into(),
        data: DataConfig {
            dataset: DatasetKind::Celeba,
            split: SplitKind::Paper,
            ..DataConfig::default()
        },
        model,
        ..TrainConfig::default()
    };
    cfg.optimizer.autoencoder.lr = 1e-3;
    cfg.optimizer.discriminator.lr = 1e-3;
    cfg.optimizer.schedule = Schedule::Exponential { total_decay: 100.0 };
    cfg.pretrain.sample_size = 256;
    cfg.training.epochs = 50;
    cfg.training.log_every_steps = 100;
    cfg.objective = ObjectiveConfig::WaeMmd(WaeMmdConfig {
        lambda: 100.0,
        ..WaeMmdConfig::default()
    });
    cfg
}

/// Weight of the log-variance L1 penalty of the random-encoder presets (our choice: it
/// balances the reference 0.05-scaled squared-L2 cost of a few grey levels' error).
pub const RANDOM_ENCODER_LOGVAR_L1: f64 = 0.1;

fn wae_mmd_latent(
    architecture: Architecture,
    dataset: DatasetKind,
    gaussian: bool,
    description: &str,
) -> TrainConfig {
    let mut cfg = TrainConfig {
        description: description.into(),
        data: DataConfig {
            dataset,
            ..DataConfig::default()
        },
        model: ModelConfig::for_architecture(architecture),
        ..TrainConfig::default()
    };
    cfg.optimizer.autoencoder.lr = 1e-3;
    cfg.optimizer.schedule = Schedule::Constant;
    cfg.pretrain.enabled = false;
    cfg.training.log_every_steps = 20;
    cfg.objective = ObjectiveConfig::WaeMmd(WaeMmdConfig {
        lambda: 10.0,
        logvar_l1: if gaussian {
            RANDOM_ENCODER_LOGVAR_L1
        } else {
            0.0
        },
        ..WaeMmdConfig::default()
    });
    if gaussian {
        cfg.model.encoder.kind = EncoderKind::Gaussian;
        // Start nearly deterministic (variances ~ e^-6): from variance 1 the decoder
        // sees only noise and the encoder can stay collapsed onto the prior.
        cfg.model.encoder.logvar_offset = RANDOM_ENCODER_LOGVAR_OFFSET;
    }
    cfg.training.epochs = 20;
    cfg.optimizer.schedule = Schedule::Plateau {
        start_epoch: 5,
        patience_epochs: 2,
        factor: 1.4,
        min_factor: 1e-6,
    };
    cfg
}

/// Initial log-variance offset of the random-encoder presets' Gaussian encoders.
pub const RANDOM_ENCODER_LOGVAR_OFFSET: f64 = -6.0;

/// Turns a full-size preset into its CPU variant: networks `width_div` times
/// narrower, `epochs` epochs, the manual schedule's milestones scaled to the
/// shorter run, and a smaller pretraining sample.
pub fn cpu_variant(mut cfg: TrainConfig, width_div: usize, epochs: u64) -> TrainConfig {
    let full_epochs = cfg.training.epochs;
    cfg.model = cfg.model.with_width_div(width_div);
    cfg.training.epochs = epochs;
    if let Schedule::Manual { milestones } = &mut cfg.optimizer.schedule {
        for m in milestones.iter_mut() {
            m.epoch = (m.epoch * epochs).div_ceil(full_epochs.max(1));
        }
    }
    cfg.pretrain.sample_size = cfg.pretrain.sample_size.min(200);
    cfg.pretrain.max_steps = cfg.pretrain.max_steps.min(50);
    cfg.description = format!(
        "{} (CPU variant: width / {width_div}, {epochs} epochs)",
        cfg.description
    );
    cfg
}

/// The configuration of a preset, by name (see [`PRESETS`]).
pub fn preset(name: &str) -> Result<TrainConfig> {
    let cfg = match name {
        "mnist-wae-mmd" => mnist_base("mnist-wae-mmd: the reference code's MNIST WAE-MMD"),
        "mnist-wae-gan" => {
            let mut cfg = mnist_base("mnist-wae-gan: the reference code's MNIST WAE-GAN");
            cfg.objective = ObjectiveConfig::WaeGan(WaeGanConfig::default());
            cfg
        }
        "mnist-vae" => mnist_vae(1.0, "mnist-vae: VAE with the paper's MNIST networks"),
        "mnist-wae-mmd-box" => {
            let mut cfg = mnist_base("mnist-wae-mmd-box: WAE-MMD, uniform prior on [-1, 1]^8");
            cfg.model.prior = PriorConfig::UniformBox {
                half_width: 1.0,
                squash: true,
            };
            cfg
        }
        "mnist-wae-mmd-sphere" => {
            let mut cfg = mnist_base("mnist-wae-mmd-sphere: WAE-MMD, uniform prior on the sphere");
            cfg.model.prior = PriorConfig::Sphere;
            cfg
        }
        "mnist-swae" => {
            let mut cfg = mnist_base("mnist-swae: Sliced-Wasserstein AE on the WAE MNIST setup");
            cfg.objective = ObjectiveConfig::Swae(SwaeConfig::default());
            cfg
        }
        "mnist-info-vae" => {
            let mut cfg = mnist_vae(
                1.0,
                "mnist-info-vae: InfoVAE (MMD) on the paper's MNIST networks",
            );
            cfg.objective = ObjectiveConfig::InfoVae(InfoVaeConfig {
                alpha: 0.0,
                lambda: 100.0,
                likelihood: Likelihood::Bernoulli,
                ..InfoVaeConfig::default()
            });
            cfg
        }
        "mnist-beta-vae" => mnist_vae(
            4.0,
            "mnist-beta-vae: beta-VAE (beta 4), paper's MNIST networks",
        ),
        "celeba-wae-mmd" => celeba_base("celeba-wae-mmd: paper CelebA WAE-MMD"),
        "celeba-wae-gan" => {
            let mut cfg = celeba_base("celeba-wae-gan: paper CelebA WAE-GAN");
            cfg.objective = ObjectiveConfig::WaeGan(WaeGanConfig {
                lambda: 1.0,
                ..WaeGanConfig::default()
            });
            cfg.optimizer.autoencoder.lr = 3e-4;
            cfg
        }
        "celeba-vae" => {
            let mut cfg = celeba_base("celeba-vae: VAE with the paper's CelebA networks");
            cfg.model.encoder.kind = EncoderKind::Gaussian;
            cfg.model.prior = PriorConfig::Normal { variance: 1.0 };
            cfg.model.input_noise_std = 0.0;
            cfg.model.decoder.activation = Activation::Tanh;
            cfg.objective = ObjectiveConfig::Vae(VaeConfig {
                beta: 1.0,
                likelihood: Likelihood::Gaussian { variance: 1.0 },
            });
            cfg.pretrain.enabled = false;
            cfg
        }
        "fading-squares-wae-mmd-random" => rubenstein::fading_squares(true),
        "fading-squares-wae-mmd-det" => rubenstein::fading_squares(false),
        "dsprites-wae-mmd-random" => rubenstein::dsprites_wae(true),
        "dsprites-wae-mmd-det" => rubenstein::dsprites_wae(false),
        "dsprites-vae" => rubenstein::dsprites_vae(1.0),
        "dsprites-beta-vae-4" => rubenstein::dsprites_vae(4.0),
        "dsprites-beta-vae-16" => rubenstein::dsprites_vae(16.0),
        "dsprites-wae-code-mmd" => wae_mmd_latent(
            Architecture::Dsprites,
            DatasetKind::Dsprites,
            false,
            "dsprites-wae-code-mmd: the tolstikhin/wae code's dSprites config, deterministic encoder",
        ),
        "dsprites-wae-code-mmd-gauss" => wae_mmd_latent(
            Architecture::Dsprites,
            DatasetKind::Dsprites,
            true,
            "dsprites-wae-code-mmd-gauss: the tolstikhin/wae code's dSprites config, Gaussian encoder, log-variance L1 0.1",
        ),
        "mnist-wae-mmd-smoke" => {
            let mut cfg = mnist_base("mnist-wae-mmd-smoke: tiny WAE-MMD for tests");
            cfg.model = cfg.model.with_width_div(16);
            cfg.data.train_examples = Some(512);
            cfg.data.test_examples = Some(256);
            cfg.training.epochs = 1;
            cfg.training.batch_size = 32;
            cfg.training.log_every_steps = 1;
            cfg.training.checkpoint_every_steps = 8;
            cfg.training.eval_examples = 256;
            cfg.pretrain.sample_size = 64;
            cfg.pretrain.max_steps = 5;
            cfg.optimizer.schedule = Schedule::Manual {
                milestones: vec![Milestone {
                    epoch: 1,
                    divide_by: 2.0,
                }],
            };
            cfg
        }
        other => {
            if let Some(base) = other.strip_suffix("-cpu")
                && PRESETS.iter().any(|(n, _)| *n == base)
                && !base.ends_with("-smoke")
            {
                let full = preset(base)?;
                let mut cfg = if base.starts_with("celeba") {
                    cpu_variant(full, 8, 1)
                } else if let Some(cpu) = rubenstein::cpu_variant(base, full.clone()) {
                    cpu
                } else if base.starts_with("dsprites") {
                    // 10 epochs of 2,000 steps (about 4 minutes per model on the
                    // 2-core machine); the plateau schedule waits half as long as
                    // the full preset's.
                    let mut cfg = cpu_variant(full, 4, 10);
                    cfg.data.train_examples = Some(20_000);
                    cfg.data.test_examples = Some(5_000);
                    if let Schedule::Plateau {
                        start_epoch,
                        patience_epochs,
                        ..
                    } = &mut cfg.optimizer.schedule
                    {
                        *start_epoch = 3;
                        *patience_epochs = 1;
                    }
                    cfg
                } else {
                    cpu_variant(full, 4, 2)
                };
                cfg.training.eval_examples = 2000;
                return Ok(cfg);
            }
            return Err(Error::UnknownPreset {
                name: other.to_string(),
                known: PRESETS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    };
    Ok(cfg)
}

/// The Adam settings of the paper (beta1 0.5) at learning rate `lr`.
pub fn paper_adam(lr: f64) -> AdamConfig {
    AdamConfig {
        lr,
        ..AdamConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn every_preset_is_valid_and_round_trips() {
        for (name, _) in PRESETS {
            let cfg = preset(name).unwrap();
            cfg.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            let text = cfg.to_toml_string().unwrap();
            let back = TrainConfig::from_toml_str(&text, Path::new(name)).unwrap();
            assert_eq!(back, cfg, "{name}");
        }
    }

    #[test]
    fn swae_and_info_vae_presets_keep_their_documented_values() {
        let swae = preset("mnist-swae").unwrap();
        let ObjectiveConfig::Swae(w) = &swae.objective else {
            panic!("{:?}", swae.objective)
        };
        assert_eq!((w.lambda, w.projections, w.power), (10.0, 50, 2.0));
        assert_eq!(
            (w.cost, w.cost_scale),
            (wae_objectives::CostKind::SquaredL2, 0.05)
        );
        // The WAE-MMD MNIST setup otherwise.
        let mmd = preset("mnist-wae-mmd").unwrap();
        assert_eq!(swae.model, mmd.model);
        assert_eq!(swae.optimizer, mmd.optimizer);
        assert_eq!(swae.pretrain, mmd.pretrain);

        let info = preset("mnist-info-vae").unwrap();
        let ObjectiveConfig::InfoVae(v) = &info.objective else {
            panic!("{:?}", info.objective)
        };
        assert_eq!((v.alpha, v.lambda, v.mmd_weight()), (0.0, 100.0, 99.0));
        assert_eq!(v.likelihood, Likelihood::Bernoulli);
        let vae = preset("mnist-vae").unwrap();
        assert_eq!(info.model, vae.model);
        assert_eq!(info.optimizer, vae.optimizer);
        assert!(!info.pretrain.enabled);
        assert_eq!(preset("mnist-info-vae-cpu").unwrap().training.epochs, 2);
    }

    #[test]
    fn paper_numbers() {
        let c = preset("mnist-wae-mmd").unwrap();
        assert_eq!(c.training.batch_size, 100);
        assert_eq!(c.training.epochs, 100);
        assert_eq!(c.model.latent_dim(), 8);
        assert_eq!(c.optimizer.autoencoder.beta1, 0.5);
        assert_eq!(c.optimizer.discriminator.lr, 5e-4);
        match c.objective {
            ObjectiveConfig::WaeMmd(w) => assert_eq!(w.lambda, 10.0),
            other => panic!("{other:?}"),
        }
        let c = preset("celeba-wae-gan").unwrap();
        assert_eq!(c.model.latent_dim(), 64);
        assert_eq!(c.model.prior, PriorConfig::Normal { variance: 2.0 });
        let cpu = preset("mnist-wae-mmd-cpu").unwrap();
        assert_eq!(cpu.model.encoder.width_div, 4);
        assert_eq!(cpu.training.epochs, 2);
        // milestones 30, 50 of 100 epochs -> both 1 of 2
        assert_eq!(
            cpu.optimizer.schedule,
            Schedule::Manual {
                milestones: vec![
                    Milestone {
                        epoch: 1,
                        divide_by: 2.0
                    },
                    Milestone {
                        epoch: 1,
                        divide_by: 5.0
                    }
                ]
            }
        );
    }

    #[test]
    fn unknown_preset_lists_the_known_ones() {
        let err = preset("mnist-wea").unwrap_err().to_string();
        assert!(
            err.contains("mnist-wea") && err.contains("mnist-wae-mmd"),
            "{err}"
        );
        assert!(preset("mnist-wae-mmd-smoke-cpu").is_err());
    }
}
