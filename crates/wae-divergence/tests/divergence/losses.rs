//! KL and adversarial losses: stability and gradients.

use candle_core::{DType, Device, Tensor, Var};
use wae_divergence::{
    discriminator_loss, encoder_adversarial_loss, kl_to_standard_normal, log_sigmoid, softplus,
};

use crate::scalar;

#[test]
fn adversarial_losses_are_finite_for_extreme_logits() {
    for dtype in [DType::F32, DType::F64] {
        let big = Tensor::new(&[[100.0f64], [-100.0], [1000.0], [-1000.0]], &Device::Cpu)
            .and_then(|t| t.to_dtype(dtype))
            .expect("logits");
        let var = Var::from_tensor(&big).expect("var");
        let d_loss = discriminator_loss(var.as_tensor(), var.as_tensor()).expect("d");
        let e_loss = encoder_adversarial_loss(var.as_tensor()).expect("e");
        for loss in [&d_loss, &e_loss] {
            assert!(scalar(loss).is_finite(), "{dtype:?}: loss {}", scalar(loss));
            let grads = loss.backward().expect("backward");
            let g = grads
                .get(var.as_tensor())
                .expect("grad")
                .to_dtype(DType::F64)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f64>())
                .expect("vec");
            assert!(g.iter().all(|v| v.is_finite()), "{dtype:?}: gradient {g:?}");
        }
        // Encoder loss: mean softplus(-l) = (0 + 100 + 0 + 1000) / 4.
        assert!(
            (scalar(&e_loss) - 275.0).abs() < 1e-3,
            "{}",
            scalar(&e_loss)
        );
        // Its gradient is -sigmoid(-l) / N: ~0 for l = +100, ~-1/4 for l = -100.
        let g = encoder_adversarial_loss(var.as_tensor())
            .expect("e")
            .backward()
            .expect("b");
        let g = g
            .get(var.as_tensor())
            .expect("grad")
            .to_dtype(DType::F64)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f64>())
            .expect("vec");
        assert!(g[0].abs() < 1e-12 && (g[1] + 0.25).abs() < 1e-6, "{g:?}");
    }
}

#[test]
fn perfect_and_fooled_discriminators() {
    let plus = Tensor::new(&[100.0f32, 100.0], &Device::Cpu).expect("t");
    let minus = Tensor::new(&[-100.0f32, -100.0], &Device::Cpu).expect("t");
    // Perfect discriminator (prior -> +100, codes -> -100): loss ~ 0 (2 e^-100), not NaN.
    let perfect = scalar(&discriminator_loss(&plus, &minus).expect("d"));
    assert!((0.0..1e-30).contains(&perfect), "{perfect}");
    // Fully fooled: loss = 100 + 100.
    assert!((scalar(&discriminator_loss(&minus, &plus).expect("d")) - 200.0).abs() < 1e-4);
    // At logits 0 (D = 1/2): 2 log 2 and log 2.
    let zero = Tensor::zeros(3, DType::F64, &Device::Cpu).expect("z");
    assert!(
        (scalar(&discriminator_loss(&zero, &zero).expect("d")) - 2.0 * 2f64.ln()).abs() < 1e-12
    );
    assert!((scalar(&encoder_adversarial_loss(&zero).expect("e")) - 2f64.ln()).abs() < 1e-12);
}

#[test]
fn softplus_and_log_sigmoid_are_accurate() {
    let xs = [-50.0f64, -5.0, -0.3, 0.0, 0.3, 5.0, 50.0];
    let t = Tensor::new(&xs, &Device::Cpu).expect("t");
    let sp = softplus(&t)
        .and_then(|t| Ok(t.to_vec1::<f64>()?))
        .expect("softplus");
    let ls = log_sigmoid(&t)
        .and_then(|t| Ok(t.to_vec1::<f64>()?))
        .expect("log_sigmoid");
    for ((&x, &s), &l) in xs.iter().zip(&sp).zip(&ls) {
        let reference = softplus_ref(x);
        // Absolute accuracy (log(1 + tiny) rounds to 0 for x = -50; e^-50 ~ 2e-22).
        assert!(
            (s - reference).abs() <= 1e-14 * reference.max(1.0),
            "softplus({x}) = {s} vs {reference}"
        );
        assert!(
            (l + softplus_ref(-x)).abs() <= 1e-14 * softplus_ref(-x).max(1.0),
            "log_sigmoid({x}) = {l}"
        );
    }
}

fn softplus_ref(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

#[test]
fn kl_is_zero_at_the_prior_and_has_the_right_gradient() {
    let zeros = Tensor::zeros((5, 3), DType::F64, &Device::Cpu).expect("z");
    assert_eq!(
        scalar(&kl_to_standard_normal(&zeros, &zeros).expect("kl")),
        0.0
    );
    let mu =
        Var::from_tensor(&Tensor::new(&[[0.5f64, -1.0], [2.0, 0.0]], &Device::Cpu).expect("mu"))
            .expect("var");
    let logvar =
        Var::from_tensor(&Tensor::new(&[[0.1f64, -0.4], [1.0, 0.0]], &Device::Cpu).expect("lv"))
            .expect("var");
    let kl = kl_to_standard_normal(mu.as_tensor(), logvar.as_tensor()).expect("kl");
    assert!(scalar(&kl) > 0.0);
    let grads = kl.backward().expect("backward");
    // dKL/dmu = mu / N, dKL/dlogvar = (exp(logvar) - 1) / (2 N), N = 2.
    let g_mu = grads
        .get(mu.as_tensor())
        .expect("g")
        .to_vec2::<f64>()
        .expect("v");
    let g_lv = grads
        .get(logvar.as_tensor())
        .expect("g")
        .to_vec2::<f64>()
        .expect("v");
    let mus = [[0.5, -1.0], [2.0, 0.0]];
    let lvs = [[0.1f64, -0.4], [1.0, 0.0]];
    for i in 0..2 {
        for j in 0..2 {
            assert!((g_mu[i][j] - mus[i][j] / 2.0).abs() < 1e-12);
            assert!((g_lv[i][j] - (lvs[i][j].exp() - 1.0) / 4.0).abs() < 1e-12);
        }
    }
}
