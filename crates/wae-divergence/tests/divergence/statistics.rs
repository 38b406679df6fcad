//! Statistical properties, seeded (deterministic) and fast.

use candle_core::{DType, Device, Tensor};
use rand::{SeedableRng, rngs::StdRng};
use wae_divergence::{Estimator, MmdConfig, Prior, mmd, mmd_permutation_test};

use crate::scalar;

fn shifted(t: &Tensor, shift: f64) -> Tensor {
    t.affine(1.0, shift).expect("shift")
}

/// MMD estimates over `reps` seeds; both samples N(0, I), the second shifted by `shift`.
fn estimates(cfg: &MmdConfig, n: usize, d: usize, shift: f64, reps: u64) -> Vec<f64> {
    (0..reps)
        .map(|seed| {
            let mut rng = StdRng::seed_from_u64(1000 + seed);
            let prior = Prior::default();
            let q = prior
                .sample(n, d, &mut rng, &Device::Cpu, DType::F64)
                .expect("q");
            let p = prior
                .sample(n, d, &mut rng, &Device::Cpu, DType::F64)
                .expect("p");
            scalar(&mmd(&q, &shifted(&p, shift), cfg).expect("mmd"))
        })
        .collect()
}

fn mean_and_standard_error(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

#[test]
fn u_statistic_is_unbiased_under_the_null_and_v_statistic_is_not() {
    let (n, d, reps) = (30, 4, 400);
    let u = estimates(&MmdConfig::default(), n, d, 0.0, reps);
    let (mean, se) = mean_and_standard_error(&u);
    assert!(
        mean.abs() < 3.5 * se,
        "U-statistic mean {mean:.3e} is {:.1} standard errors ({se:.1e}) from 0",
        mean / se
    );
    assert!(
        u.iter().any(|&v| v < 0.0),
        "an unbiased estimator of 0 must go negative sometimes"
    );

    // Same samples with the biased V-statistic: significantly positive. This shows the check
    // above has the power to see the bias of keeping the diagonal.
    let cfg_v = MmdConfig {
        estimator: Estimator::VStatistic,
        ..MmdConfig::default()
    };
    let v = estimates(&cfg_v, n, d, 0.0, reps);
    let (mean_v, se_v) = mean_and_standard_error(&v);
    assert!(
        mean_v > 10.0 * se_v,
        "V-statistic mean {mean_v:.3e} should be clearly biased up (se {se_v:.1e})"
    );
    assert!(v.iter().all(|&x| x > 0.0));
}

#[test]
fn mmd_is_clearly_positive_for_shifted_distributions() {
    let (n, d, reps) = (30, 4, 100);
    let null = estimates(&MmdConfig::default(), n, d, 0.0, reps);
    let alt = estimates(&MmdConfig::default(), n, d, 1.0, reps);
    let (mean_null, se_null) = mean_and_standard_error(&null);
    let (mean_alt, se_alt) = mean_and_standard_error(&alt);
    assert!(
        mean_alt > 20.0 * se_alt,
        "shifted: mean {mean_alt:.3e}, se {se_alt:.1e}"
    );
    assert!(mean_alt > mean_null + 10.0 * (se_null + se_alt));
    assert!(
        alt.iter().all(|&v| v > 0.0),
        "every shifted replicate should give a positive estimate"
    );
}

#[test]
fn permutation_test_is_calibrated_under_the_null() {
    let (n, d, reps, perms) = (20, 2, 120, 99);
    let cfg = MmdConfig::default();
    let mut p_values: Vec<f64> = (0..reps)
        .map(|seed| {
            let mut rng = StdRng::seed_from_u64(5000 + seed);
            let x = Prior::default()
                .sample(n, d, &mut rng, &Device::Cpu, DType::F64)
                .expect("x");
            let y = Prior::default()
                .sample(n, d, &mut rng, &Device::Cpu, DType::F64)
                .expect("y");
            mmd_permutation_test(&x, &y, &cfg, perms, &mut rng)
                .expect("test")
                .p_value
        })
        .collect();
    p_values.sort_by(f64::total_cmp);
    let count = p_values.len() as f64;
    // Kolmogorov-Smirnov distance to U(0, 1); 1.63 / sqrt(120) = 0.149 is the 1% critical value.
    let ks = p_values
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            ((i + 1) as f64 / count - p)
                .abs()
                .max((p - i as f64 / count).abs())
        })
        .fold(0.0, f64::max);
    assert!(
        ks < 0.16,
        "p-values far from uniform under H0: KS distance {ks:.3}"
    );
    let below = p_values.iter().filter(|&&p| p <= 0.1).count() as f64 / count;
    assert!(
        (0.02..=0.2).contains(&below),
        "fraction of p <= 0.1 under H0 is {below:.3}"
    );
    assert!(p_values.iter().all(|&p| p > 0.0 && p <= 1.0));
}

#[test]
fn permutation_test_rejects_a_shift() {
    let (n, d, reps, perms) = (20, 2, 20, 99);
    let cfg = MmdConfig::default();
    let rejected = (0..reps)
        .filter(|&seed| {
            let mut rng = StdRng::seed_from_u64(9000 + seed);
            let x = Prior::default()
                .sample(n, d, &mut rng, &Device::Cpu, DType::F64)
                .expect("x");
            let y = shifted(
                &Prior::default()
                    .sample(n, d, &mut rng, &Device::Cpu, DType::F64)
                    .expect("y"),
                1.5,
            );
            mmd_permutation_test(&x, &y, &cfg, perms, &mut rng)
                .expect("test")
                .p_value
                <= 0.05
        })
        .count();
    assert!(
        rejected >= 18,
        "only {rejected} of {reps} shifted pairs rejected at 5%"
    );
}

#[test]
fn permutation_statistic_equals_mmd_and_is_seeded() {
    let mut rng = StdRng::seed_from_u64(3);
    let x = Prior::default()
        .sample(15, 3, &mut rng, &Device::Cpu, DType::F32)
        .expect("x");
    let y = Prior::UniformBox { half_width: 1.5 }
        .sample(12, 3, &mut rng, &Device::Cpu, DType::F32)
        .expect("y");
    for estimator in [Estimator::UStatistic, Estimator::VStatistic] {
        let cfg = MmdConfig {
            estimator,
            ..MmdConfig::default()
        };
        let a =
            mmd_permutation_test(&x, &y, &cfg, 50, &mut StdRng::seed_from_u64(11)).expect("test");
        let b =
            mmd_permutation_test(&x, &y, &cfg, 50, &mut StdRng::seed_from_u64(11)).expect("test");
        assert_eq!(a, b, "same seed, same result");
        assert_eq!(a.num_permutations, 50);
        let direct = scalar(&mmd(&x, &y, &cfg).expect("mmd"));
        assert!(
            (a.statistic - direct).abs() <= 1e-5 * direct.abs().max(1e-3),
            "{estimator:?}: {} vs {direct}",
            a.statistic
        );
    }
}
