//! The papers' `Model` with each objective, on tiny MNIST-shaped networks: parts add up,
//! gradients flow where they should, training steps lower the loss, the same seed gives
//! the same numbers; SWAE draws its directions with the step noise; configs that do not
//! fit together are refused.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Optimizer, SGD, VarBuilder, VarMap};
use rand::SeedableRng;
use rand::rngs::StdRng;
use wae_nets::EncoderKind;
use wae_objectives::{
    AutoEncoder, InfoVaeConfig, Likelihood, ObjectiveConfig, PriorConfig, Result, SwaeConfig,
    VaeConfig, WaeGanConfig, WaeMmdConfig,
};
use wae_train::{Model, ModelConfig};

fn tiny(kind: EncoderKind, objective: &ObjectiveConfig) -> (VarMap, Model) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let mut cfg = ModelConfig::default().with_width_div(32);
    cfg.encoder.kind = kind;
    cfg.input_noise_std = 0.01;
    let model = Model::new(&cfg, objective, vb).expect("model");
    (varmap, model)
}

fn batch(n: usize, seed: u64) -> Tensor {
    // Smooth blobs in [0, 1]: a different bright square per image.
    let mut v = vec![0f32; n * 28 * 28];
    for i in 0..n {
        let off = (i * 3 + seed as usize) % 18;
        for r in off..off + 8 {
            for c in off..off + 8 {
                v[i * 784 + r * 28 + c] = 1.0;
            }
        }
    }
    Tensor::from_vec(v, (n, 1, 28, 28), &Device::Cpu).unwrap()
}

fn val(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

#[test]
fn parts_add_up_for_every_objective() -> Result<()> {
    let cases = vec![
        (
            EncoderKind::Deterministic,
            ObjectiveConfig::WaeMmd(WaeMmdConfig::default()),
            10.0,
        ),
        (
            EncoderKind::Implicit,
            ObjectiveConfig::WaeMmd(WaeMmdConfig::default()),
            10.0,
        ),
        (
            EncoderKind::Deterministic,
            ObjectiveConfig::WaeGan(WaeGanConfig::default()),
            10.0,
        ),
        (
            EncoderKind::Gaussian,
            ObjectiveConfig::Vae(VaeConfig {
                beta: 4.0,
                likelihood: Likelihood::Bernoulli,
            }),
            4.0,
        ),
    ];
    for (kind, objective, weight) in cases {
        let (_vm, model) = tiny(kind, &objective);
        let x = batch(8, 0);
        let noise = model.draw_noise(8, &mut StdRng::seed_from_u64(1), &Device::Cpu)?;
        let (parts, codes) = model.losses(&x, &noise, true)?;
        let total = val(&parts.total);
        let expect = val(&parts.reconstruction) + weight * val(&parts.penalty);
        assert!(
            (total - expect).abs() <= 1e-5 * expect.abs().max(1.0),
            "{}: {total} vs {expect}",
            objective.name()
        );
        assert!(total.is_finite());
        assert_eq!(codes.z.dims(), &[8, 8]);
    }
    Ok(())
}

#[test]
fn random_encoder_wae_adds_the_logvar_l1_penalty() -> Result<()> {
    let objective = ObjectiveConfig::WaeMmd(WaeMmdConfig {
        logvar_l1: 0.5,
        ..WaeMmdConfig::default()
    });
    let (_vm, model) = tiny(EncoderKind::Gaussian, &objective);
    let x = batch(8, 1);
    let noise = model.draw_noise(8, &mut StdRng::seed_from_u64(2), &Device::Cpu)?;
    let (parts, codes) = model.losses(&x, &noise, true)?;
    let l1 = parts
        .extra
        .iter()
        .find(|(n, _)| *n == "logvar_l1")
        .map(|(_, t)| val(t))
        .expect("logvar_l1 part");
    let logvar = codes.logvar.expect("gaussian");
    let by_hand = val(&logvar.abs()?.sum(1)?.mean_all()?);
    assert!((l1 - by_hand).abs() < 1e-6);
    let expect = val(&parts.reconstruction) + 10.0 * val(&parts.penalty) + 0.5 * l1;
    assert!((val(&parts.total) - expect).abs() < 1e-5 * expect.abs().max(1.0));
    // Gaussian codes are sampled: z differs from the mean.
    let diff = val(&(codes.z - codes.mean)?.abs()?.sum_all()?);
    assert!(diff > 0.0);
    Ok(())
}

#[test]
fn vae_kl_uses_the_prior_variance() -> Result<()> {
    // KL(N(mu, s2) || N(0, v)) = 0.5 * sum(s2 / v + mu^2 / v - 1 - ln(s2 / v)).
    let objective = ObjectiveConfig::Vae(VaeConfig::default());
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let mut cfg = ModelConfig::default().with_width_div(32);
    cfg.encoder.kind = EncoderKind::Gaussian;
    cfg.prior = PriorConfig::Normal { variance: 2.0 };
    let model = Model::new(&cfg, &objective, vb)?;
    let x = batch(4, 2);
    let noise = model.draw_noise(4, &mut StdRng::seed_from_u64(3), &Device::Cpu)?;
    let (parts, codes) = model.losses(&x, &noise, true)?;
    let mu = codes.mean.to_dtype(DType::F64)?.to_vec2::<f64>()?;
    let lv = codes
        .logvar
        .expect("gaussian")
        .to_dtype(DType::F64)?
        .to_vec2::<f64>()?;
    let mut kl = 0.0;
    for (mr, lr) in mu.iter().zip(&lv) {
        for (m, l) in mr.iter().zip(lr) {
            let s2 = l.exp();
            kl += 0.5 * (s2 / 2.0 + m * m / 2.0 - 1.0 - (s2 / 2.0).ln());
        }
    }
    kl /= 4.0;
    assert!(
        (val(&parts.penalty) - kl).abs() < 1e-4 * kl.abs().max(1.0),
        "{} vs {kl}",
        val(&parts.penalty)
    );
    Ok(())
}

#[test]
fn same_noise_seed_same_losses() -> Result<()> {
    let objective = ObjectiveConfig::WaeMmd(WaeMmdConfig::default());
    let (_vm, model) = tiny(EncoderKind::Deterministic, &objective);
    let x = batch(8, 3);
    let a = model.draw_noise(8, &mut StdRng::seed_from_u64(9), &Device::Cpu)?;
    let b = model.draw_noise(8, &mut StdRng::seed_from_u64(9), &Device::Cpu)?;
    let c = model.draw_noise(8, &mut StdRng::seed_from_u64(10), &Device::Cpu)?;
    let la = val(&model.losses(&x, &a, false)?.0.total);
    let lb = val(&model.losses(&x, &b, false)?.0.total);
    let lc = val(&model.losses(&x, &c, false)?.0.total);
    assert_eq!(la, lb);
    assert_ne!(la, lc);
    Ok(())
}

#[test]
fn wae_mmd_steps_lower_the_loss() -> Result<()> {
    let objective = ObjectiveConfig::WaeMmd(WaeMmdConfig::default());
    let (varmap, model) = tiny(EncoderKind::Deterministic, &objective);
    let vars = wae_nets::trainable_vars(&varmap, "")
        .into_iter()
        .map(|(_, v)| v)
        .collect::<Vec<Var>>();
    let mut opt = SGD::new(vars, 0.05)?;
    let x = batch(16, 4);
    let noise = model.draw_noise(16, &mut StdRng::seed_from_u64(5), &Device::Cpu)?;
    let first = val(&model.losses(&x, &noise, true)?.0.total);
    for _ in 0..15 {
        let (parts, _) = model.losses(&x, &noise, true)?;
        opt.backward_step(&parts.total)?;
    }
    let last = val(&model.losses(&x, &noise, true)?.0.total);
    assert!(last < 0.9 * first, "{first} -> {last}");
    Ok(())
}

#[test]
fn discriminator_step_does_not_reach_the_encoder() -> Result<()> {
    let objective = ObjectiveConfig::WaeGan(WaeGanConfig::default());
    let (varmap, model) = tiny(EncoderKind::Deterministic, &objective);
    let x = batch(8, 5);
    let noise = model.draw_noise(8, &mut StdRng::seed_from_u64(6), &Device::Cpu)?;
    let (parts, codes) = model.losses(&x, &noise, true)?;
    let dl = model.discriminator_loss(&codes.z, &noise.prior)?;
    assert!((val(&dl.total) - 10.0 * val(&dl.js)).abs() < 1e-5);
    let grads = dl.total.backward()?;
    let all = wae_nets::trainable_vars(&varmap, "");
    for (name, var) in &all {
        let has = grads.get(var.as_tensor()).is_some();
        assert_eq!(has, name.starts_with("discriminator."), "{name}");
    }
    // The encoder's adversarial loss does reach the encoder.
    let grads = parts.total.backward()?;
    let enc = all
        .iter()
        .find(|(n, _)| n == "encoder.fc.weight")
        .expect("fc");
    assert!(grads.get(enc.1.as_tensor()).is_some());
    Ok(())
}

#[test]
fn inconsistent_configs_are_rejected() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let mut cfg = ModelConfig::default().with_width_div(32);
    cfg.decoder.latent_dim = 4;
    let err = Model::new(&cfg, &ObjectiveConfig::default(), vb.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("latent_dim"), "{err}");
    let cfg = ModelConfig::default().with_width_div(32);
    let err = Model::new(
        &cfg,
        &ObjectiveConfig::WaeMmd(WaeMmdConfig {
            logvar_l1: 1.0,
            ..WaeMmdConfig::default()
        }),
        vb,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("gaussian"), "{err}");
}

/// Rubenstein et al.'s WAE: cross-entropy cost from the logits, uniform-noise codes
/// z = mean + exp(logvar) u with u ~ U[0, 1], paired MMD with C = c * d_z.
#[test]
fn uniform_noise_encoder_with_cross_entropy_cost() -> Result<()> {
    use wae_objectives::{CostKind, Estimator, KernelConstant, bernoulli_nll, per_image_cost};
    let objective = ObjectiveConfig::WaeMmd(WaeMmdConfig {
        lambda: 20.0,
        cost: CostKind::CrossEntropy,
        cost_scale: 1.0,
        scales: vec![0.01, 1.0],
        kernel_constant: KernelConstant::LatentDim,
        estimator: Estimator::PairedUStatistic,
        ..WaeMmdConfig::default()
    });
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let mut cfg = ModelConfig::default().with_width_div(32);
    cfg.encoder.kind = EncoderKind::UniformNoise;
    cfg.encoder.logvar_clip = [-20.0, 5.0];
    cfg.prior = PriorConfig::UniformBox {
        half_width: 1.0,
        squash: false,
    };
    let model = Model::new(&cfg, &objective, vb)?;
    let x = batch(8, 1);
    let mut rng = StdRng::seed_from_u64(3);
    let noise = model.draw_noise(8, &mut rng, &Device::Cpu)?;
    let u = noise
        .encoder_eps
        .as_ref()
        .expect("uniform noise")
        .flatten_all()?
        .to_vec1::<f32>()?;
    assert!(u.iter().all(|v| (0.0..1.0).contains(v)), "U[0, 1) noise");
    let prior = noise.prior.flatten_all()?.to_vec1::<f32>()?;
    assert!(prior.iter().all(|v| v.abs() <= 1.0) && prior.iter().any(|v| *v < 0.0));
    let (parts, codes) = model.losses(&x, &noise, true)?;
    // z = mean + exp(logvar) * u, codes not squashed by the box prior.
    let lv = codes.logvar.as_ref().expect("logvar");
    let expected = (&codes.mean + lv.exp()?.mul(noise.encoder_eps.as_ref().unwrap())?)?;
    let gap = (&codes.z - expected)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    assert!(gap < 1e-6, "{gap}");
    // The reconstruction is the Bernoulli NLL of the decoder's logits at z ...
    let logits = AutoEncoder::decode_logits(&model, &codes.z, true)?;
    let nll = val(&bernoulli_nll(&x, &logits)?);
    assert!(
        (val(&parts.reconstruction) - nll).abs() < 1e-3 * nll,
        "{nll}"
    );
    // ... which per_image_cost's cross-entropy of the probabilities matches.
    let probs = model.decode(&codes.z, true)?;
    let ce = val(&per_image_cost(&x, &probs, CostKind::CrossEntropy)?.mean_all()?);
    assert!((ce - nll).abs() < 1e-3 * nll, "{ce} vs {nll}");
    let total = val(&parts.reconstruction) + 20.0 * val(&parts.penalty);
    assert!((val(&parts.total) - total).abs() < 1e-3 * total.abs().max(1.0));
    // A tanh decoder cannot take the cross-entropy cost.
    let mut bad = cfg.clone();
    bad.decoder.activation = wae_nets::Activation::Tanh;
    assert!(
        bad.validate(&objective)
            .unwrap_err()
            .to_string()
            .contains("cross_entropy")
    );
    Ok(())
}

#[test]
fn swae_draws_its_directions_with_the_step_noise_and_infovae_needs_a_gaussian_encoder() {
    let swae = ObjectiveConfig::Swae(SwaeConfig {
        projections: 7,
        ..Default::default()
    });
    let (_vars, model) = tiny(EncoderKind::Deterministic, &swae);
    let noise = model
        .draw_noise(4, &mut StdRng::seed_from_u64(3), &Device::Cpu)
        .unwrap();
    let theta = noise.projections.as_ref().expect("SWAE draws directions");
    assert_eq!(theta.dims(), &[8, 7]);
    let norms: Vec<f32> = theta.sqr().unwrap().sum(0).unwrap().to_vec1().unwrap();
    assert!(norms.iter().all(|v| (v - 1.0).abs() < 1e-5), "{norms:?}");
    let x = Tensor::rand(0f32, 1.0, (4, 1, 28, 28), &Device::Cpu).unwrap();
    let (parts, _) = model.losses(&x, &noise, true).unwrap();
    assert!(val(&parts.penalty) > 0.0);
    // Same seed, same directions.
    let again = model
        .draw_noise(4, &mut StdRng::seed_from_u64(3), &Device::Cpu)
        .unwrap();
    let diff = (theta - again.projections.unwrap()).unwrap().abs().unwrap();
    assert_eq!(val(&diff.sum_all().unwrap()), 0.0);

    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let info = ObjectiveConfig::InfoVae(InfoVaeConfig::default());
    let err = Model::new(&ModelConfig::default().with_width_div(32), &info, vb).unwrap_err();
    assert!(err.to_string().contains("gaussian"), "{err}");
    let (_vars, model) = tiny(EncoderKind::Gaussian, &info);
    let noise = model
        .draw_noise(4, &mut StdRng::seed_from_u64(3), &Device::Cpu)
        .unwrap();
    assert!(noise.projections.is_none());
    let (parts, _) = model.losses(&x, &noise, true).unwrap();
    let names: Vec<&str> = parts.named().iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["total", "reconstruction", "penalty", "kl"]);
}
