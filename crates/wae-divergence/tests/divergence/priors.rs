//! Priors: seeded, right shapes, right moments.

use candle_core::{DType, Device, Tensor};
use rand::{SeedableRng, rngs::StdRng};
use wae_divergence::Prior;

fn draw(prior: Prior, n: usize, d: usize, seed: u64, dtype: DType) -> Tensor {
    prior
        .sample(n, d, &mut StdRng::seed_from_u64(seed), &Device::Cpu, dtype)
        .expect("sample")
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .expect("values")
}

const PRIORS: [Prior; 3] = [
    Prior::Normal { variance: 2.0 },
    Prior::UniformBox { half_width: 0.5 },
    Prior::Sphere,
];

#[test]
fn same_seed_same_tensor_different_seed_different_tensor() {
    for prior in PRIORS {
        for dtype in [DType::F32, DType::F64] {
            let a = draw(prior, 50, 6, 7, dtype);
            let b = draw(prior, 50, 6, 7, dtype);
            let c = draw(prior, 50, 6, 8, dtype);
            assert_eq!(a.dims(), &[50, 6]);
            assert_eq!(a.dtype(), dtype);
            assert_eq!(values(&a), values(&b), "{prior:?}: same seed");
            assert_ne!(values(&a), values(&c), "{prior:?}: different seeds");
        }
    }
    // f32 samples are the f64 samples rounded (same stream on every dtype).
    let (a32, a64) = (
        values(&draw(PRIORS[0], 10, 3, 1, DType::F32)),
        values(&draw(PRIORS[0], 10, 3, 1, DType::F64)),
    );
    assert!(
        a32.iter()
            .zip(&a64)
            .all(|(x, y)| (x - y).abs() <= 1e-6 * y.abs().max(1.0))
    );
}

#[test]
fn sphere_samples_have_unit_norm_and_no_preferred_direction() {
    let t = draw(Prior::Sphere, 4000, 5, 3, DType::F32);
    let v = values(&t);
    for row in v.chunks(5) {
        let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-6, "norm {norm}");
    }
    for j in 0..5 {
        let mean = v.iter().skip(j).step_by(5).sum::<f64>() / 4000.0;
        // Each coordinate has variance 1/5; the mean's standard error is sqrt(0.2 / 4000) = 0.007.
        assert!(mean.abs() < 0.03, "coordinate {j} mean {mean}");
    }
}

#[test]
fn normal_and_uniform_moments() {
    for (prior, expected_var) in [
        (Prior::Normal { variance: 2.0 }, 2.0),
        (Prior::Normal { variance: 0.25 }, 0.25),
        (Prior::UniformBox { half_width: 0.5 }, 0.25 / 3.0),
    ] {
        let v = values(&draw(prior, 5000, 4, 11, DType::F64));
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
        // 20,000 draws: relative standard error of the variance is about 1-1.5%.
        assert!(
            (var / expected_var - 1.0).abs() < 0.05,
            "{prior:?}: variance {var} vs {expected_var}"
        );
        assert!(
            mean.abs() < 4.0 * (expected_var / v.len() as f64).sqrt(),
            "{prior:?}: mean {mean}"
        );
        assert!((prior.coordinate_variance(4) - expected_var).abs() < 1e-12);
    }
    let u = values(&draw(
        Prior::UniformBox { half_width: 0.5 },
        1000,
        3,
        2,
        DType::F64,
    ));
    assert!(u.iter().all(|x| (-0.5..=0.5).contains(x)));
    assert!(
        u.iter().any(|&x| x < -0.45) && u.iter().any(|&x| x > 0.45),
        "fills the box"
    );
    assert_eq!(Prior::Sphere.coordinate_variance(8), 0.125);
    assert_eq!(Prior::default(), Prior::Normal { variance: 1.0 });
}

#[test]
fn kernel_constant_rule_per_prior() {
    use wae_divergence::{KernelConstant, MmdConfig};
    let d = 8;
    // C = 2 d v s at s = 1: 2 d sigma^2 (normal), 2 (sphere), d for the [-1, 1] box.
    for (prior, c) in [
        (Prior::Normal { variance: 2.0 }, 2.0 * 8.0 * 2.0),
        (Prior::Sphere, 2.0),
        (Prior::UniformBox { half_width: 1.0 }, 8.0),
    ] {
        let prior_variance = KernelConstant::TwoDimPriorVariance.prior_variance(&prior, d);
        assert_eq!(prior_variance, prior.kernel_variance(d));
        let cfg = MmdConfig {
            scales: vec![1.0],
            prior_variance,
            ..MmdConfig::default()
        };
        assert_eq!(cfg.kernel_constants(d), vec![c], "{prior:?}");
        // Rubenstein et al.'s C = d s, whatever the prior.
        let cfg = MmdConfig {
            scales: vec![1.0],
            prior_variance: KernelConstant::LatentDim.prior_variance(&prior, d),
            ..MmdConfig::default()
        };
        assert_eq!(cfg.kernel_constants(d), vec![8.0], "{prior:?}");
    }
    assert_eq!(
        KernelConstant::default(),
        KernelConstant::TwoDimPriorVariance
    );
}
