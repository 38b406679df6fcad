//! The objectives as functions over tensors and the `AutoEncoder` trait, without any of
//! this project's networks.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder, VarMap, linear};
use rand::{SeedableRng, rngs::StdRng};
use wae_objectives::loss::{self, Decoded};
use wae_objectives::{
    AutoEncoder, Codes, CostKind, Objective, ObjectiveConfig, PriorConfig, StepNoise, VaeConfig,
    WaeGanConfig, WaeMmdConfig, reconstruction_cost,
};

/// A user's own model: one linear layer each way on 6-pixel "images" (N, 1, 2, 3).
struct Tiny {
    enc: Linear,
    dec: Linear,
}

impl AutoEncoder for Tiny {
    fn latent_dim(&self) -> usize {
        2
    }
    fn encode(&self, x: &Tensor, _: Option<&StepNoise>, _: bool) -> wae_objectives::Result<Codes> {
        Ok(Codes::deterministic(self.enc.forward(&x.flatten_from(1)?)?))
    }
    fn decode_logits(&self, z: &Tensor, _: bool) -> wae_objectives::Result<Tensor> {
        Ok(self.dec.forward(z)?.reshape((z.dim(0)?, 1, 2, 3))?)
    }
}

fn tiny(device: &Device) -> Tiny {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    Tiny {
        enc: linear(6, 2, vb.pp("e")).unwrap(),
        dec: linear(2, 6, vb.pp("d")).unwrap(),
    }
}

fn value(t: &Tensor) -> f64 {
    t.to_scalar::<f32>().unwrap() as f64
}

#[test]
fn objective_losses_on_a_users_model_are_the_cost_plus_lambda_times_mmd() {
    let device = Device::Cpu;
    let model = tiny(&device);
    let x = Tensor::rand(0f32, 1.0, (8, 1, 2, 3), &device).unwrap();
    let cfg = WaeMmdConfig {
        lambda: 7.0,
        ..Default::default()
    };
    let objective =
        Objective::new(ObjectiveConfig::WaeMmd(cfg.clone()), PriorConfig::default()).unwrap();
    let prior = PriorConfig::default();
    let noise = objective
        .draw_noise(8, 2, &mut StdRng::seed_from_u64(1), &device)
        .unwrap();
    let (parts, codes) = objective.losses(&model, &x, &noise, true).unwrap();

    // The same by hand: the default decode is the sigmoid of the logits.
    let z = model.enc.forward(&x.flatten_from(1).unwrap()).unwrap();
    let y = candle_nn::ops::sigmoid(&model.decode_logits(&z, true).unwrap()).unwrap();
    let rec = reconstruction_cost(&x, &y, cfg.cost, cfg.cost_scale).unwrap();
    let mmd = wae_divergence::mmd(&z, &noise.prior, &cfg.mmd_config(&prior, 2)).unwrap();
    assert_eq!(value(&parts.reconstruction), value(&rec));
    assert_eq!(value(&parts.penalty), value(&mmd));
    let expected = value(&rec) + 7.0 * value(&mmd);
    assert!((value(&parts.total) - expected).abs() < 1e-5 * expected.abs().max(1.0));
    assert!(
        parts.extra.is_empty(),
        "a deterministic encoder has no logvar_l1"
    );
    assert_eq!(codes.z.dims(), &[8, 2]);
}

#[test]
fn the_logvar_penalty_is_named_and_weighted_into_the_total() {
    let device = Device::Cpu;
    let x = Tensor::rand(0f32, 1.0, (4, 1, 2, 3), &device).unwrap();
    let y = Tensor::rand(0f32, 1.0, (4, 1, 2, 3), &device).unwrap();
    let z = Tensor::randn(0f32, 1.0, (4, 2), &device).unwrap();
    let prior = Tensor::randn(0f32, 1.0, (4, 2), &device).unwrap();
    let logvar = Tensor::new(
        &[[1f32, -2.0], [0.5, 0.0], [-1.0, 3.0], [0.0, 0.0]],
        &device,
    )
    .unwrap();
    let codes = Codes {
        z: z.clone(),
        mean: z,
        logvar: Some(logvar),
    };
    let cfg = WaeMmdConfig {
        lambda: 2.0,
        logvar_l1: 0.5,
        ..Default::default()
    };
    let mmd = cfg.mmd_config(&PriorConfig::default(), 2);
    let parts = loss::wae_mmd(&x, Decoded::Output(&y), &codes, &prior, &cfg, &mmd).unwrap();
    let (name, l1) = &parts.extra[0];
    assert_eq!(*name, "logvar_l1");
    // mean over the batch of sum_d |logvar|: (3 + 0.5 + 4 + 0) / 4.
    assert!((value(l1) - 1.875).abs() < 1e-6);
    let expected = value(&parts.reconstruction) + 2.0 * value(&parts.penalty) + 0.5 * 1.875;
    assert!((value(&parts.total) - expected).abs() < 1e-5);
}

#[test]
fn wrong_decoder_output_kind_and_missing_pieces_are_errors_that_say_what_to_pass() {
    let device = Device::Cpu;
    let x = Tensor::rand(0f32, 1.0, (4, 1, 2, 3), &device).unwrap();
    let z = Tensor::randn(0f32, 1.0, (4, 2), &device).unwrap();
    let codes = Codes::deterministic(z.clone());
    let cfg = WaeMmdConfig {
        cost: CostKind::CrossEntropy,
        ..Default::default()
    };
    let mmd = cfg.mmd_config(&PriorConfig::default(), 2);
    let err = loss::wae_mmd(&x, Decoded::Output(&x), &codes, &z, &cfg, &mmd).unwrap_err();
    assert!(err.to_string().contains("Decoded::Logits"), "{err}");

    let err = loss::vae(&x, Decoded::Logits(&x), &codes, &VaeConfig::default(), 1.0).unwrap_err();
    assert!(err.to_string().contains("Gaussian encoder"), "{err}");

    // WAE-GAN on a model without a discriminator.
    let gan = Objective::new(
        ObjectiveConfig::WaeGan(WaeGanConfig::default()),
        PriorConfig::default(),
    )
    .unwrap();
    let noise = gan
        .draw_noise(4, 2, &mut StdRng::seed_from_u64(0), &device)
        .unwrap();
    let err = gan.losses(&tiny(&device), &x, &noise, true).unwrap_err();
    assert!(
        err.to_string().contains("AutoEncoder::discriminate"),
        "{err}"
    );
}

#[test]
fn moment_matching_by_hand() -> wae_objectives::Result<()> {
    use wae_objectives::moment_matching_loss;
    let dev = Device::Cpu;
    // q: mean (1, 0), cov [[2/3*..]]; compute by hand for 3 points in 2-d.
    let q = Tensor::new(&[[0f64, 0.0], [1.0, 1.0], [2.0, -1.0]], &dev)?;
    let p = Tensor::new(&[[0f64, 1.0], [0.0, -1.0], [0.0, 0.0]], &dev)?;
    // mean_q = (1, 0), mean_p = (0, 0) -> mean loss = (1 + 0) / 2 = 0.5
    // cov_q = [[1, -0.5], [-0.5, 1]], cov_p = [[0, 0], [0, 1]] -> diff^2 mean = (1 + .25 + .25 + 0) / 4
    let got = moment_matching_loss(&q, &p)?.to_scalar::<f64>()?;
    assert!((got - (0.5 + 1.5 / 4.0)).abs() < 1e-12, "{got}");
    assert!(moment_matching_loss(&q, &p.narrow(0, 0, 2)?).is_err());
    Ok(())
}
