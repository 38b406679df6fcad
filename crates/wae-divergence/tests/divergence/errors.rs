//! Every invalid input gives an error (no panic).

use candle_core::{DType, Device, Tensor};
use rand::{SeedableRng, rngs::StdRng};
use wae_divergence::{
    Error, Estimator, MmdConfig, MmdImplementation, Prior, discriminator_loss,
    encoder_adversarial_loss, kl_to_standard_normal, median_heuristic_scale,
    median_pairwise_squared_distance, mmd, mmd_blockwise, mmd_permutation_test, mmd_with,
    random_projections, sliced_wasserstein, sliced_wasserstein_with_projections,
};

fn zeros(shape: &[usize], dtype: DType) -> Tensor {
    Tensor::zeros(shape, dtype, &Device::Cpu).expect("zeros")
}

fn normal(n: usize, d: usize) -> Tensor {
    Prior::default()
        .sample(
            n,
            d,
            &mut StdRng::seed_from_u64(n as u64 * 31 + d as u64),
            &Device::Cpu,
            DType::F32,
        )
        .expect("sample")
}

#[test]
fn mmd_rejects_bad_shapes() {
    let cfg = MmdConfig::default();
    let good = normal(4, 3);
    assert!(matches!(
        mmd(&zeros(&[4], DType::F32), &good, &cfg),
        Err(Error::Rank {
            name: "qz",
            expected: 2,
            ..
        })
    ));
    assert!(matches!(
        mmd(&good, &zeros(&[2, 4, 3], DType::F32), &cfg),
        Err(Error::Rank { name: "pz", .. })
    ));
    assert!(matches!(
        mmd(&good, &normal(4, 5), &cfg),
        Err(Error::ShapeMismatch(_))
    ));
    assert!(matches!(
        mmd(&good, &good.to_dtype(DType::F64).expect("f64"), &cfg),
        Err(Error::ShapeMismatch(_))
    ));
    assert!(matches!(
        mmd(
            &zeros(&[4, 0], DType::F32),
            &zeros(&[4, 0], DType::F32),
            &cfg
        ),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn u_statistic_needs_two_samples_v_statistic_one() {
    let one = normal(1, 3);
    let many = normal(5, 3);
    let u = MmdConfig::default();
    assert!(matches!(
        mmd(&one, &many, &u),
        Err(Error::TooFewSamples {
            name: "qz",
            needed: 2,
            got: 1
        })
    ));
    assert!(matches!(
        mmd(&many, &one, &u),
        Err(Error::TooFewSamples {
            name: "pz",
            needed: 2,
            got: 1
        })
    ));
    assert!(matches!(
        mmd(&zeros(&[0, 3], DType::F32), &many, &u),
        Err(Error::TooFewSamples { got: 0, .. })
    ));
    let v = MmdConfig {
        estimator: Estimator::VStatistic,
        ..MmdConfig::default()
    };
    assert!(mmd(&one, &many, &v).is_ok());
    assert!(matches!(
        mmd(&zeros(&[0, 3], DType::F32), &many, &v),
        Err(Error::TooFewSamples {
            needed: 1,
            got: 0,
            ..
        })
    ));
}

#[test]
fn mmd_rejects_bad_configs() {
    let (q, p) = (normal(4, 3), normal(5, 3));
    let with = |scales: Vec<f64>, prior_variance: f64| MmdConfig {
        scales,
        prior_variance,
        ..MmdConfig::default()
    };
    assert!(matches!(
        mmd(&q, &p, &with(vec![], 1.0)),
        Err(Error::EmptyScales)
    ));
    assert!(
        matches!(mmd(&q, &p, &with(vec![1.0, 0.0], 1.0)), Err(Error::NonPositiveScale(s)) if s == 0.0)
    );
    assert!(matches!(
        mmd(&q, &p, &with(vec![-2.0], 1.0)),
        Err(Error::NonPositiveScale(_))
    ));
    assert!(matches!(
        mmd(&q, &p, &with(vec![f64::NAN], 1.0)),
        Err(Error::NonPositiveScale(_))
    ));
    assert!(matches!(
        mmd(&q, &p, &with(vec![f64::INFINITY], 1.0)),
        Err(Error::NonPositiveScale(_))
    ));
    assert!(matches!(
        mmd(&q, &p, &with(vec![1.0], 0.0)),
        Err(Error::NonPositiveVariance(_))
    ));
    assert!(matches!(
        mmd(&q, &p, &with(vec![1.0], -1.0)),
        Err(Error::NonPositiveVariance(_))
    ));
    assert!(matches!(
        mmd(&q, &p, &with(vec![1.0], f64::INFINITY)),
        Err(Error::NonPositiveVariance(_))
    ));
    assert!(MmdConfig::default().validate().is_ok());
}

#[test]
fn mmd_rejects_integer_tensors() {
    let cfg = MmdConfig::default();
    for dtype in [DType::U8, DType::U32, DType::I64] {
        let ints = zeros(&[4, 3], dtype);
        assert!(
            matches!(
                mmd(&ints, &ints, &cfg),
                Err(Error::NonFloatDType { name: "qz", .. })
            ),
            "{dtype:?}"
        );
    }
    assert!(matches!(
        mmd(&normal(4, 3), &zeros(&[4, 3], DType::I64), &cfg),
        Err(Error::NonFloatDType { name: "pz", .. })
    ));
}

#[test]
fn fused_implementation_refuses_what_it_cannot_run() {
    let half = normal(4, 3).to_dtype(DType::F16).expect("f16");
    let cfg = MmdConfig::default();
    assert!(matches!(
        mmd_with(&half, &half, &cfg, MmdImplementation::Fused),
        Err(Error::InvalidArgument(_))
    ));
    // Auto falls back to candle ops for f16 and still gives a number.
    let v = mmd(&half, &half, &cfg)
        .expect("f16 mmd")
        .to_dtype(DType::F64)
        .and_then(|t| t.to_scalar::<f64>())
        .expect("scalar");
    assert!(v.is_finite());
}

#[test]
fn extras_reject_bad_arguments() {
    let cfg = MmdConfig::default();
    let (x, y) = (normal(6, 3), normal(6, 3));
    let mut rng = StdRng::seed_from_u64(0);
    assert!(matches!(
        mmd_blockwise(&x, &y, &cfg, 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        mmd_blockwise(&x, &normal(6, 2), &cfg, 4),
        Err(Error::ShapeMismatch(_))
    ));
    assert!(matches!(
        mmd_permutation_test(&x, &y, &cfg, 0, &mut rng),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        mmd_permutation_test(&normal(1, 3), &y, &cfg, 10, &mut rng),
        Err(Error::TooFewSamples { .. })
    ));
    assert!(matches!(
        median_pairwise_squared_distance(&normal(1, 3)),
        Err(Error::TooFewSamples { .. })
    ));
    assert!(matches!(
        median_pairwise_squared_distance(&zeros(&[5], DType::F32)),
        Err(Error::Rank { .. })
    ));
    assert!(matches!(
        median_heuristic_scale(&x, &y, 0.0),
        Err(Error::NonPositiveVariance(_))
    ));
    let same = zeros(&[4, 3], DType::F32);
    assert!(matches!(
        median_heuristic_scale(&same, &same, 1.0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        sliced_wasserstein(&x, &normal(5, 3), 10, 2.0, &mut rng),
        Err(Error::ShapeMismatch(_))
    ));
    assert!(matches!(
        sliced_wasserstein(&x, &y, 0, 2.0, &mut rng),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        sliced_wasserstein(&x, &y, 10, 0.5, &mut rng),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        sliced_wasserstein(&x, &y, 10, f64::NAN, &mut rng),
        Err(Error::InvalidArgument(_))
    ));
    let wrong_projections = zeros(&[2, 4], DType::F32);
    assert!(matches!(
        sliced_wasserstein_with_projections(&x, &y, &wrong_projections, 2.0),
        Err(Error::ShapeMismatch(_))
    ));
    assert!(matches!(
        random_projections(0, 3, &mut rng, &Device::Cpu, DType::F32),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        random_projections(3, 3, &mut rng, &Device::Cpu, DType::U32),
        Err(Error::NonFloatDType { .. })
    ));
}

#[test]
fn losses_reject_bad_arguments() {
    let mu = normal(4, 3);
    assert!(matches!(
        kl_to_standard_normal(&mu, &normal(4, 2)),
        Err(Error::ShapeMismatch(_))
    ));
    assert!(matches!(
        kl_to_standard_normal(&mu, &mu.to_dtype(DType::F64).expect("f64")),
        Err(Error::ShapeMismatch(_))
    ));
    assert!(matches!(
        kl_to_standard_normal(&zeros(&[3], DType::F32), &zeros(&[3], DType::F32)),
        Err(Error::Rank { .. })
    ));
    assert!(matches!(
        kl_to_standard_normal(&zeros(&[0, 3], DType::F32), &zeros(&[0, 3], DType::F32)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        kl_to_standard_normal(&zeros(&[2, 3], DType::I64), &zeros(&[2, 3], DType::I64)),
        Err(Error::NonFloatDType { .. })
    ));
    let empty = zeros(&[0, 1], DType::F32);
    let logits = zeros(&[3, 1], DType::F32);
    assert!(matches!(
        discriminator_loss(&empty, &logits),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        discriminator_loss(&logits, &empty),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        encoder_adversarial_loss(&empty),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        encoder_adversarial_loss(&zeros(&[3, 1], DType::U8)),
        Err(Error::NonFloatDType { .. })
    ));
}

#[test]
fn priors_reject_bad_arguments() {
    let mut rng = StdRng::seed_from_u64(0);
    let dev = Device::Cpu;
    assert!(matches!(
        Prior::Normal { variance: 0.0 }.sample(3, 2, &mut rng, &dev, DType::F32),
        Err(Error::NonPositiveVariance(_))
    ));
    assert!(matches!(
        Prior::Normal { variance: f64::NAN }.sample(3, 2, &mut rng, &dev, DType::F32),
        Err(Error::NonPositiveVariance(_))
    ));
    assert!(matches!(
        Prior::UniformBox { half_width: -1.0 }.sample(3, 2, &mut rng, &dev, DType::F32),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Prior::Sphere.sample(0, 2, &mut rng, &dev, DType::F32),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Prior::Sphere.sample(3, 0, &mut rng, &dev, DType::F32),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Prior::default().sample(3, 2, &mut rng, &dev, DType::U32),
        Err(Error::NonFloatDType { .. })
    ));
}

#[test]
fn errors_have_readable_messages() {
    let err = mmd(&normal(4, 3), &normal(4, 5), &MmdConfig::default()).expect_err("mismatch");
    assert!(
        err.to_string().contains("dimension 3") && err.to_string().contains("dimension 5"),
        "{err}"
    );
    let err = mmd(&normal(1, 3), &normal(4, 3), &MmdConfig::default()).expect_err("too few");
    assert!(err.to_string().contains("at least 2"), "{err}");
}
