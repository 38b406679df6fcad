//! Rubenstein, Schölkopf and Tolstikhin's latent-space experiments with the settings of
//! their code, `paruby/Wasserstein-Auto-Encoders`: `config.py` (dicts
//! `fading_squares_opts` and `dsprites_opts`), `models.py` (the `FC_dsprites` networks,
//! `_z_sample_init`, `_mmd_init`, `loss_init`) and `wae.py` (the training loop).
//!
//! What is taken from that code, for both experiments:
//! - networks `FC_dsprites`: encoder 2 x [Linear 1200, ReLU] then linear heads for the mean
//!   (and log-variance); decoder 3 x [Linear 1200, tanh] then Linear to the pixels
//!   (logits); TF's default init (Glorot uniform weights, zero biases); no BatchNorm;
//! - Bernoulli reconstruction: sigmoid cross-entropy of the logits, summed over pixels,
//!   mean over the batch (`loss_reconstruction = 'bernoulli'`);
//! - WAE-MMD with lambda 20 on the **sum** of 10 IMQ MMDs with `C = c * d_z`,
//!   c in {0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 0.8, 1, 2}, each estimated with the
//!   paired U-statistic (cross term without its diagonal, everything over n (n - 1));
//! - random encoders: log-variances clipped to [-20, 5] before sampling and penalties;
//! - Adam with TensorFlow's defaults (beta1 0.9, beta2 0.999, epsilon 1e-8), batch 100,
//!   learning rate 1e-3, 7e-4, 3e-4, 1e-4 in four equal quarters of the run.
//!
//! Fading squares (`fading_squares_opts`): d_z 2, uniform prior on [-1, 1]^2 (codes not
//! squashed: the mean head is linear), a uniform-noise random encoder
//! `z = mean + exp(logvar) * U[0, 1]` and its deterministic twin, no log-variance penalty,
//! boundaries at 10k / 20k / 30k, 40,000 steps.
//!
//! dSprites (`dsprites_opts`): d_z 16, tanh on the mean, Gaussian random encoder with the
//! L1 log-variance penalty 3.0 (mean over the batch of sum_d |logvar_d|), standard normal
//! prior, boundaries at 15k / 30k / 45k, 60,000 steps; the data are all 737,280 images
//! split 90 / 10 (the code shuffles with seed 0 and keeps the first 90 % for training).
//!
//! Where these presets depart from the code:
//! - batches: the code draws each batch of 100 afresh without replacement from the whole
//!   training set; we go through seeded epoch permutations (the same images per epoch);
//! - fading squares: the code loads a prepared `fading_squares.npy` whose size and square
//!   side it does not give; we generate 10,000 training and 2,000 test images with a
//!   16-pixel square (`wae_data::FadingSquares`);
//! - dSprites: our split draws the training and test rows with the fixed data seed 1
//!   (`wae_data`), not numpy's seed-0 shuffle; the `-cpu` profiles train on 100,000 of
//!   them and for fewer steps ([`cpu_variant`]);
//! - Adam: candle's update puts epsilon outside the bias correction (PyTorch's form);
//!   TF1's puts it inside (`epsilon_hat`); with epsilon 1e-8 the two differ only while
//!   the second moment is about 1e-16;
//! - the deterministic dSprites twin keeps tanh on the mean (the code's deterministic
//!   encoder uses the same mean head); the beta-VAE baselines keep the nets, tanh mean,
//!   clipping and schedule and replace the penalty by beta * KL (no log-variance L1).

use wae_nets::{Activation, Architecture, EncoderKind};
use wae_objectives::{
    CostKind, KernelConstant, Likelihood, MmdEstimator, MmdKernel, ObjectiveConfig, PriorConfig,
    VaeConfig, WaeMmdConfig,
};

use crate::adam::AdamConfig;
use crate::config::{DataConfig, DatasetKind, SplitKind, TrainConfig};
use crate::model::ModelConfig;
use crate::schedule::{Schedule, StepMilestone};

/// The 10 IMQ coefficients c of `config.py` (`coeffs`); each kernel has `C = c * d_z`.
pub const IMQ_COEFFICIENTS: [f64; 10] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 0.8, 1.0, 2.0];

/// `lambda_imq` of both configs.
pub const LAMBDA: f64 = 20.0;

/// `logvar-clipping` of both configs.
pub const LOGVAR_CLIP: [f64; 2] = [-20.0, 5.0];

/// `lambda_logvar_regularisation` of the dSprites config (L1).
pub const DSPRITES_LOGVAR_L1: f64 = 3.0;

/// Learning rates of `learning_rate_schedule` relative to the first (1e-3, 7e-4, 3e-4, 1e-4).
pub const LR_FACTORS: [f64; 3] = [0.7, 0.3, 0.1];

/// Steps of the fading-squares config (`learning_rate_schedule` ends at 40,000).
pub const FADING_SQUARES_STEPS: u64 = 40_000;

/// Steps of the dSprites config (`learning_rate_schedule` ends at 60,000).
pub const DSPRITES_STEPS: u64 = 60_000;

/// dSprites images the code trains on: 90 % of 737,280.
pub const DSPRITES_TRAIN: usize = 663_552;

/// dSprites images the code keeps for testing: the other 10 %.
pub const DSPRITES_TEST: usize = 73_728;

/// Steps of the `-cpu` fading-squares presets. Measured on the project's 2-core machine
/// (Intel Xeon with AVX-512, idle, release build, 2026-12-06): about 0.10 s per step, so
/// the reference's 40,000 steps take 67 minutes per model and the comparison (2 models x
/// 3 seeds) 6.7 hours; 6,000 steps make it about an hour.
pub const FADING_SQUARES_CPU_STEPS: u64 = 6_000;

/// Steps of the `-cpu` dSprites presets. Measured as above: about 0.21 s per step, and
/// about 2.5 minutes per model for `wae eval` (the beta-VAE metric encodes 600,000
/// images), so three models x three seeds take about 2.5 hours.
pub const DSPRITES_CPU_STEPS: u64 = 4_000;

/// Training images of the `-cpu` dSprites presets.
pub const DSPRITES_CPU_TRAIN: usize = 100_000;

/// Test images of the `-cpu` dSprites presets.
pub const DSPRITES_CPU_TEST: usize = 10_000;

/// Adam with TensorFlow's defaults, learning rate 1e-3.
pub fn tf_adam() -> AdamConfig {
    AdamConfig {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    }
}

/// The code's schedule for a run of `steps` steps: the rate drops to 0.7, 0.3 and 0.1 of
/// the base rate after each quarter (10k / 20k / 30k of 40k; 15k / 30k / 45k of 60k).
pub fn quarter_schedule(steps: u64) -> Schedule {
    Schedule::Steps {
        milestones: LR_FACTORS
            .iter()
            .enumerate()
            .map(|(i, &lr_factor)| StepMilestone {
                step: steps * (i as u64 + 1) / 4,
                lr_factor,
            })
            .collect(),
    }
}

/// The WAE-MMD objective of both configs.
pub fn wae_mmd_objective(logvar_l1: f64) -> WaeMmdConfig {
    WaeMmdConfig {
        lambda: LAMBDA,
        cost: CostKind::CrossEntropy,
        cost_scale: 1.0,
        kernel: MmdKernel::Imq,
        scales: IMQ_COEFFICIENTS.to_vec(),
        kernel_constant: KernelConstant::LatentDim,
        estimator: MmdEstimator::PairedUStatistic,
        logvar_l1,
    }
}

fn base(
    architecture: Architecture,
    dataset: DatasetKind,
    steps: u64,
    train_examples: usize,
    description: &str,
) -> TrainConfig {
    let mut model = ModelConfig::for_architecture(architecture);
    model.encoder.logvar_clip = LOGVAR_CLIP;
    model.decoder.activation = Activation::Sigmoid;
    let mut cfg = TrainConfig {
        description: description.into(),
        data: DataConfig {
            dataset,
            split: SplitKind::Paper,
            ..DataConfig::default()
        },
        model,
        objective: ObjectiveConfig::WaeMmd(wae_mmd_objective(0.0)),
        ..TrainConfig::default()
    };
    cfg.optimizer.autoencoder = tf_adam();
    cfg.pretrain.enabled = false;
    cfg.training.batch_size = 100;
    cfg.training.log_every_steps = 100;
    cfg.training.checkpoint_every_steps = 2000;
    with_steps(cfg, steps, train_examples)
}

/// `fading-squares-wae-mmd-random` (`random`) or `fading-squares-wae-mmd-det`.
pub fn fading_squares(random: bool) -> TrainConfig {
    let description = if random {
        "fading-squares-wae-mmd-random: Rubenstein et al.'s fading_squares_opts, uniform-noise encoder"
    } else {
        "fading-squares-wae-mmd-det: Rubenstein et al.'s fading_squares_opts, deterministic encoder"
    };
    let mut cfg = base(
        Architecture::FadingSquares,
        DatasetKind::FadingSquares,
        FADING_SQUARES_STEPS,
        10_000,
        description,
    );
    cfg.data.test_examples = Some(2_000);
    cfg.model.prior = PriorConfig::UniformBox {
        half_width: 1.0,
        squash: false,
    };
    if random {
        cfg.model.encoder.kind = EncoderKind::UniformNoise;
    }
    cfg
}

/// `dsprites-wae-mmd-random` (`random`: Gaussian encoder, log-variance L1 3.0) or
/// `dsprites-wae-mmd-det`.
pub fn dsprites_wae(random: bool) -> TrainConfig {
    let description = if random {
        "dsprites-wae-mmd-random: Rubenstein et al.'s dsprites_opts, Gaussian encoder, log-variance L1 3"
    } else {
        "dsprites-wae-mmd-det: Rubenstein et al.'s dsprites_opts with a deterministic encoder"
    };
    let mut cfg = dsprites_base(description);
    if random {
        cfg.model.encoder.kind = EncoderKind::Gaussian;
        cfg.objective = ObjectiveConfig::WaeMmd(wae_mmd_objective(DSPRITES_LOGVAR_L1));
    }
    cfg
}

/// `dsprites-vae` (beta 1) and the beta-VAEs `dsprites-beta-vae-4`, `-16`.
pub fn dsprites_vae(beta: f64) -> TrainConfig {
    let name = if beta == 1.0 {
        "dsprites-vae".to_string()
    } else {
        format!("dsprites-beta-vae-{beta}")
    };
    let mut cfg = dsprites_base(&format!(
        "{name}: beta-VAE (beta {beta}) with Rubenstein et al.'s dSprites nets and schedule"
    ));
    cfg.model.encoder.kind = EncoderKind::Gaussian;
    cfg.objective = ObjectiveConfig::Vae(VaeConfig {
        beta,
        likelihood: Likelihood::Bernoulli,
    });
    cfg
}

fn dsprites_base(description: &str) -> TrainConfig {
    let mut cfg = base(
        Architecture::DspritesFc,
        DatasetKind::Dsprites,
        DSPRITES_STEPS,
        DSPRITES_TRAIN,
        description,
    );
    cfg.data.test_examples = Some(DSPRITES_TEST);
    cfg.model.encoder.mean_activation = Activation::Tanh;
    cfg.model.prior = PriorConfig::Normal { variance: 1.0 };
    cfg
}

/// The `-cpu` variant of a preset of this module, or `None` for other presets.
/// Fading squares: [`FADING_SQUARES_CPU_STEPS`] steps. dSprites: [`DSPRITES_CPU_STEPS`]
/// steps on [`DSPRITES_CPU_TRAIN`] training and [`DSPRITES_CPU_TEST`] test images. The
/// schedule's four quarters are scaled to the shorter runs.
pub fn cpu_variant(name: &str, full: TrainConfig) -> Option<TrainConfig> {
    let mut cfg = full;
    if name.starts_with("fading-squares-wae-mmd-") {
        let train = cfg.data.train_examples.unwrap_or(10_000);
        cfg = with_steps(cfg, FADING_SQUARES_CPU_STEPS, train);
        cfg.description = format!(
            "{} (CPU profile: {FADING_SQUARES_CPU_STEPS} steps)",
            cfg.description
        );
    } else if matches!(
        name,
        "dsprites-wae-mmd-random"
            | "dsprites-wae-mmd-det"
            | "dsprites-vae"
            | "dsprites-beta-vae-4"
            | "dsprites-beta-vae-16"
    ) {
        cfg = with_steps(cfg, DSPRITES_CPU_STEPS, DSPRITES_CPU_TRAIN);
        cfg.data.test_examples = Some(DSPRITES_CPU_TEST);
        cfg.description = format!(
            "{} (CPU profile: {DSPRITES_CPU_STEPS} steps on {DSPRITES_CPU_TRAIN} images)",
            cfg.description
        );
    } else {
        return None;
    }
    Some(cfg)
}

/// `cfg` set to `steps` steps of its batch size on `train_examples` images, with the
/// code's four learning-rate quarters over those steps (the presets' length, and the
/// shorter `-cpu` runs).
pub fn with_steps(mut cfg: TrainConfig, steps: u64, train_examples: usize) -> TrainConfig {
    let batch = cfg.training.batch_size;
    cfg.data.train_examples = Some(train_examples);
    cfg.optimizer.schedule = quarter_schedule(steps);
    let steps_per_epoch = (train_examples / batch).max(1) as u64;
    cfg.training.epochs = steps.div_ceil(steps_per_epoch);
    cfg.training.max_steps = Some(steps);
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset;

    /// Everything both of Rubenstein et al.'s configs share, checked on a preset.
    fn assert_shared(cfg: &TrainConfig, steps: u64, d_z: usize) {
        assert_eq!(cfg.model.latent_dim(), d_z);
        assert_eq!(cfg.model.encoder.logvar_clip, [-20.0, 5.0]);
        assert_eq!(cfg.model.encoder.init, wae_nets::WeightInit::GlorotUniform);
        assert_eq!(cfg.model.decoder.activation, Activation::Sigmoid);
        assert_eq!(
            cfg.model.encoder.architecture.fully_connected(),
            Some((1200, 2, 3))
        );
        assert_eq!(cfg.model.input_noise_std, 0.0);
        assert_eq!(cfg.training.batch_size, 100);
        assert_eq!(cfg.training.max_steps, Some(steps));
        let per_epoch = (cfg.data.train_examples.unwrap() / 100) as u64;
        assert!(cfg.training.epochs * per_epoch >= steps);
        assert_eq!(
            (
                cfg.optimizer.autoencoder.lr,
                cfg.optimizer.autoencoder.beta1
            ),
            (1e-3, 0.9)
        );
        assert_eq!(cfg.optimizer.autoencoder.beta2, 0.999);
        assert_eq!(cfg.optimizer.autoencoder.eps, 1e-8);
        assert!(!cfg.pretrain.enabled);
        // lr 1e-3 / 7e-4 / 3e-4 / 1e-4 in four quarters.
        let mut st = crate::ScheduleState::default();
        let lr_at = |st: &mut crate::ScheduleState, step: u64| {
            st.start_step(&cfg.optimizer.schedule, step, 0, 1);
            cfg.optimizer.autoencoder.lr * st.lr_factor
        };
        let q = steps / 4;
        for (step, lr) in [
            (0, 1e-3),
            (q - 1, 1e-3),
            (q, 7e-4),
            (2 * q, 3e-4),
            (3 * q - 1, 3e-4),
            (3 * q, 1e-4),
            (steps - 1, 1e-4),
        ] {
            let got = lr_at(&mut st, step);
            assert!(
                (got - lr).abs() < 1e-15,
                "step {step}: lr {got}, expected {lr}"
            );
        }
        cfg.validate().unwrap();
    }

    fn assert_wae_mmd(cfg: &TrainConfig, logvar_l1: f64) {
        let ObjectiveConfig::WaeMmd(w) = &cfg.objective else {
            panic!("{:?}", cfg.objective)
        };
        assert_eq!(w.lambda, 20.0);
        assert_eq!(w.cost, CostKind::CrossEntropy);
        assert_eq!(w.cost_scale, 1.0);
        assert_eq!(w.kernel, MmdKernel::Imq);
        assert_eq!(
            w.scales,
            vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 0.8, 1.0, 2.0]
        );
        assert_eq!(w.kernel_constant, KernelConstant::LatentDim);
        assert_eq!(w.estimator, MmdEstimator::PairedUStatistic);
        assert_eq!(w.logvar_l1, logvar_l1);
        // C = c * d_z: the divergence crate's 2 d v s with v = 1/2.
        let d = cfg.model.latent_dim();
        let mmd = w.mmd_config(&cfg.model.prior, d);
        let consts = mmd.kernel_constants(d);
        assert_eq!(consts[0], 0.001 * d as f64);
        assert_eq!(consts[9], 2.0 * d as f64);
    }

    #[test]
    fn fading_squares_random_is_fading_squares_opts() {
        let cfg = preset("fading-squares-wae-mmd-random").unwrap();
        assert_shared(&cfg, 40_000, 2);
        assert_wae_mmd(&cfg, 0.0);
        assert_eq!(cfg.model.encoder.kind, EncoderKind::UniformNoise);
        assert_eq!(cfg.model.encoder.mean_activation, Activation::Identity);
        assert_eq!(
            cfg.model.prior,
            PriorConfig::UniformBox {
                half_width: 1.0,
                squash: false
            }
        );
        assert_eq!(cfg.data.dataset, DatasetKind::FadingSquares);
        let cpu = preset("fading-squares-wae-mmd-random-cpu").unwrap();
        assert_shared(&cpu, FADING_SQUARES_CPU_STEPS, 2);
        assert_eq!(cpu.data.train_examples, Some(10_000));
    }

    #[test]
    fn fading_squares_det_is_the_deterministic_twin() {
        let cfg = preset("fading-squares-wae-mmd-det").unwrap();
        assert_shared(&cfg, 40_000, 2);
        assert_wae_mmd(&cfg, 0.0);
        assert_eq!(cfg.model.encoder.kind, EncoderKind::Deterministic);
        let mut random = preset("fading-squares-wae-mmd-random").unwrap();
        random.model.encoder.kind = EncoderKind::Deterministic;
        random.description = cfg.description.clone();
        assert_eq!(random, cfg, "only the encoder kind differs");
    }

    #[test]
    fn dsprites_random_is_dsprites_opts() {
        let cfg = preset("dsprites-wae-mmd-random").unwrap();
        assert_shared(&cfg, 60_000, 16);
        assert_wae_mmd(&cfg, 3.0);
        assert_eq!(cfg.model.encoder.kind, EncoderKind::Gaussian);
        assert_eq!(cfg.model.encoder.mean_activation, Activation::Tanh);
        assert_eq!(cfg.model.encoder.architecture, Architecture::DspritesFc);
        assert_eq!(cfg.model.prior, PriorConfig::Normal { variance: 1.0 });
        assert_eq!(cfg.data.dataset, DatasetKind::Dsprites);
        assert_eq!(
            (cfg.data.train_examples, cfg.data.test_examples),
            (Some(663_552), Some(73_728))
        );
        let cpu = preset("dsprites-wae-mmd-random-cpu").unwrap();
        assert_shared(&cpu, DSPRITES_CPU_STEPS, 16);
        assert_eq!(cpu.data.train_examples, Some(DSPRITES_CPU_TRAIN));
    }

    #[test]
    fn dsprites_det_is_the_deterministic_twin() {
        let cfg = preset("dsprites-wae-mmd-det").unwrap();
        assert_shared(&cfg, 60_000, 16);
        assert_wae_mmd(&cfg, 0.0);
        assert_eq!(cfg.model.encoder.kind, EncoderKind::Deterministic);
        assert_eq!(cfg.model.encoder.mean_activation, Activation::Tanh);
    }

    #[test]
    fn dsprites_beta_vaes_share_the_nets() {
        for (name, beta) in [
            ("dsprites-vae", 1.0),
            ("dsprites-beta-vae-4", 4.0),
            ("dsprites-beta-vae-16", 16.0),
        ] {
            let cfg = preset(name).unwrap();
            assert_shared(&cfg, 60_000, 16);
            assert_eq!(cfg.model.encoder.kind, EncoderKind::Gaussian, "{name}");
            assert_eq!(cfg.model.encoder.architecture, Architecture::DspritesFc);
            assert_eq!(
                cfg.objective,
                ObjectiveConfig::Vae(VaeConfig {
                    beta,
                    likelihood: Likelihood::Bernoulli
                }),
                "{name}"
            );
            assert_shared(
                &preset(&format!("{name}-cpu")).unwrap(),
                DSPRITES_CPU_STEPS,
                16,
            );
        }
    }
}
