//! Blockwise MMD, median heuristic and sliced Wasserstein.

use candle_core::{DType, Device, Tensor, Var};
use rand::{SeedableRng, rngs::StdRng};
use wae_divergence::{
    Estimator, Kernel, MmdConfig, MmdImplementation, Prior, median_heuristic_scale, mmd,
    mmd_blockwise, mmd_blockwise_with, sliced_wasserstein, sliced_wasserstein_with_projections,
};

use crate::scalar;

fn sample(prior: Prior, n: usize, d: usize, seed: u64, dtype: DType) -> Tensor {
    prior
        .sample(n, d, &mut StdRng::seed_from_u64(seed), &Device::Cpu, dtype)
        .expect("sample")
}

#[test]
fn blockwise_equals_plain_mmd_on_a_moderate_sample() {
    let (n, m, d) = (700, 500, 16);
    for dtype in [DType::F32, DType::F64] {
        let q = sample(Prior::Normal { variance: 1.3 }, n, d, 1, dtype);
        let p = sample(Prior::default(), m, d, 2, dtype);
        for kernel in [Kernel::InverseMultiquadratic, Kernel::Rbf] {
            for estimator in [Estimator::UStatistic, Estimator::VStatistic] {
                let cfg = MmdConfig {
                    kernel,
                    estimator,
                    ..MmdConfig::default()
                };
                let plain = scalar(&mmd(&q, &p, &cfg).expect("plain mmd"));
                let reference = scalar(
                    &mmd(
                        &q.to_dtype(DType::F64).expect("f64"),
                        &p.to_dtype(DType::F64).expect("f64"),
                        &cfg,
                    )
                    .expect("mmd"),
                );
                let tol = if dtype == DType::F64 { 1e-10 } else { 1e-4 };
                assert!(
                    (plain - reference).abs() <= tol * reference.abs(),
                    "{dtype:?} {kernel:?} {estimator:?}: {plain} vs {reference}"
                );
                for (implementation, block) in [
                    (MmdImplementation::Fused, 128),
                    (MmdImplementation::Fused, 1),
                    (MmdImplementation::CandleOps, 128),
                ] {
                    let value =
                        mmd_blockwise_with(&q, &p, &cfg, block, implementation).expect("blockwise");
                    assert!(
                        (value - reference).abs() <= tol * reference.abs(),
                        "{dtype:?} {kernel:?} {estimator:?} {implementation:?} block {block}: {value} vs {reference}"
                    );
                }
            }
        }
    }
}

fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[test]
fn blockwise_handles_twenty_thousand_codes_in_bounded_memory() {
    if !wae_io::heavy_tests("blockwise_handles_twenty_thousand_codes_in_bounded_memory") {
        return;
    }
    let (n, d) = (20_000, 64);
    let q = sample(Prior::Normal { variance: 1.0 }, n, d, 21, DType::F32);
    let p = sample(Prior::Normal { variance: 1.0 }, n, d, 22, DType::F32);
    let shifted = p.affine(1.0, 0.3).expect("shift");
    let before = peak_rss_bytes();
    let start = std::time::Instant::now();
    let same = mmd_blockwise(&q, &p, &MmdConfig::default(), 512).expect("blockwise");
    let different = mmd_blockwise(&q, &shifted, &MmdConfig::default(), 512).expect("blockwise");
    eprintln!(
        "two blockwise MMDs at n = 20000, d = 64: {:.1} s, values {same:.3e} and {different:.3e}",
        start.elapsed().as_secs_f64()
    );
    let after = peak_rss_bytes();
    // Same distribution: |U-statistic| is O(1/n); shifted by 0.3 per coordinate: clearly larger.
    assert!(same.abs() < 1e-3, "{same}");
    assert!(
        different > 20.0 * same.abs().max(1e-5),
        "{different} vs {same}"
    );
    if let (Some(before), Some(after)) = (before, after) {
        // One 20000 x 20000 f32 matrix alone would be 1.6 GB.
        let grown = after.saturating_sub(before);
        assert!(grown < 400 << 20, "peak memory grew by {} MB", grown >> 20);
    }
    // The candle-ops tiles agree on a subsample (the full run on that path is slow).
    let q2 = q.narrow(0, 0, 3000).expect("narrow");
    let p2 = p.narrow(0, 0, 2500).expect("narrow");
    let fused = mmd_blockwise_with(
        &q2,
        &p2,
        &MmdConfig::default(),
        512,
        MmdImplementation::Fused,
    )
    .expect("fused");
    let ops = mmd_blockwise_with(
        &q2,
        &p2,
        &MmdConfig::default(),
        512,
        MmdImplementation::CandleOps,
    )
    .expect("ops");
    assert!((fused - ops).abs() < 1e-6, "{fused} vs {ops}");
}

#[test]
fn median_heuristic_recovers_the_prior_scale() {
    // For two samples of N(0, v I_d), E||z - z'||^2 = 2 d v, so the median heuristic's scale
    // (C_s = median) is close to 1 when prior_variance = v; in d = 64 the median is near the mean.
    for variance in [0.5, 2.0] {
        let q = sample(Prior::Normal { variance }, 150, 64, 3, DType::F32);
        let p = sample(Prior::Normal { variance }, 150, 64, 4, DType::F32);
        let s = median_heuristic_scale(&q, &p, variance).expect("scale");
        assert!((s - 1.0).abs() < 0.05, "variance {variance}: scale {s}");
        // Misstating the prior variance moves the scale proportionally.
        let s2 = median_heuristic_scale(&q, &p, 2.0 * variance).expect("scale");
        assert!((s2 - s / 2.0).abs() < 1e-9);
    }
}

#[test]
fn sliced_wasserstein_properties() {
    let (n, d) = (200, 4);
    let x = sample(Prior::default(), n, d, 5, DType::F64);
    let mut rng = StdRng::seed_from_u64(9);
    // Identical samples: 0.
    assert_eq!(
        scalar(&sliced_wasserstein(&x, &x, 50, 2.0, &mut rng).expect("sw")),
        0.0
    );
    // A shift by t: each projection moves by theta.t, so SW_2^2 = E (theta.t)^2 = ||t||^2 / d.
    let t = Tensor::new(&[1.0f64, -2.0, 0.5, 0.0], &Device::Cpu).expect("t");
    let y = x.broadcast_add(&t).expect("shift");
    let sw = scalar(&sliced_wasserstein(&x, &y, 4000, 2.0, &mut rng).expect("sw"));
    let expected = 5.25 / 4.0;
    assert!(
        (sw / expected - 1.0).abs() < 0.06,
        "SW_2^2 {sw} vs {expected}"
    );
    // Same seed, same value; different seed, (slightly) different value.
    let p = sample(Prior::UniformBox { half_width: 1.0 }, n, d, 6, DType::F64);
    let a =
        scalar(&sliced_wasserstein(&x, &p, 20, 2.0, &mut StdRng::seed_from_u64(1)).expect("sw"));
    let b =
        scalar(&sliced_wasserstein(&x, &p, 20, 2.0, &mut StdRng::seed_from_u64(1)).expect("sw"));
    let c =
        scalar(&sliced_wasserstein(&x, &p, 20, 2.0, &mut StdRng::seed_from_u64(2)).expect("sw"));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a > 0.0);
}

#[test]
fn sliced_wasserstein_gradient_matches_finite_differences() {
    let (n, d, l) = (7, 3, 4);
    let xv = crate::Q.values(n, d);
    let y = crate::P.tensor(n, d, DType::F64);
    let projections = wae_divergence::random_projections(
        d,
        l,
        &mut StdRng::seed_from_u64(4),
        &Device::Cpu,
        DType::F64,
    )
    .expect("proj");
    let x =
        Var::from_tensor(&Tensor::from_slice(&xv, (n, d), &Device::Cpu).expect("x")).expect("var");
    for p in [1.0, 2.0, 3.0] {
        let loss =
            sliced_wasserstein_with_projections(x.as_tensor(), &y, &projections, p).expect("sw");
        let grads = loss.backward().expect("backward");
        let g = grads
            .get(x.as_tensor())
            .expect("grad")
            .flatten_all()
            .and_then(|t| t.to_vec1::<f64>())
            .expect("vec");
        let h = 1e-6;
        for k in 0..xv.len() {
            let eval = |delta: f64| {
                let mut v = xv.clone();
                v[k] += delta;
                let t = Tensor::from_vec(v, (n, d), &Device::Cpu).expect("x");
                scalar(&sliced_wasserstein_with_projections(&t, &y, &projections, p).expect("sw"))
            };
            let fd = (eval(h) - eval(-h)) / (2.0 * h);
            assert!((g[k] - fd).abs() < 1e-6, "p {p}, x[{k}]: {} vs {fd}", g[k]);
        }
    }
}
