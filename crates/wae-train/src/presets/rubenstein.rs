//! Rubenstein, Schölkopf and Tolstikhin's latent-space presets (`fading-squares-*`,
//! `dsprites-wae-mmd-*`, `dsprites-*vae*`, in `presets/*.toml`) checked against the values
//! of their code, `paruby/Wasserstein-Auto-Encoders` (`config.py`: `fading_squares_opts`,
//! `dsprites_opts`; `models.py`; `wae.py`). What is taken from that code and where the
//! presets depart from it: `presets/README.md`, "Rubenstein et al.".

use wae_nets::{Activation, Architecture, EncoderKind};
use wae_objectives::{
    CostKind, Estimator, Kernel, KernelConstant, Likelihood, ObjectiveConfig, PriorConfig,
    VaeConfig,
};

use crate::config::{DatasetKind, TrainConfig};
use crate::preset;

/// Steps of the `-cpu` fading-squares presets (the code's run: 40,000).
const FADING_SQUARES_CPU_STEPS: u64 = 6_000;

/// Steps of the `-cpu` dSprites presets (the code's run: 60,000).
const DSPRITES_CPU_STEPS: u64 = 4_000;

/// Training images of the `-cpu` dSprites presets.
const DSPRITES_CPU_TRAIN: usize = 100_000;

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
    assert_eq!(w.kernel, Kernel::InverseMultiquadratic);
    assert_eq!(
        w.scales,
        vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 0.8, 1.0, 2.0]
    );
    assert_eq!(w.kernel_constant, KernelConstant::LatentDim);
    assert_eq!(w.estimator, Estimator::PairedUStatistic);
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
