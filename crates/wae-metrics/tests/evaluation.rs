//! Cached statistics, precision/recall, reconstruction error and latent MMD.

use candle_core::{DType, Device, Tensor};
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use wae_divergence::{MmdConfig, Prior};
use wae_metrics::precision_recall::precision_recall_with;
use wae_metrics::reconstruction::ReconstructionAccumulator;
use wae_metrics::testing::uniform;
use wae_metrics::{
    Error, GaussianStats, PrecisionRecallConfig, StatsKey, latent_mmd, load_or_compute_stats,
    load_stats, precision_recall, reconstruction_error, save_stats,
};

fn features(seed: u32, n: usize, d: usize, offset: f64) -> Array2<f64> {
    Array2::from_shape_fn((n, d), |(i, j)| uniform(seed, (i * d + j) as u64) + offset)
}

fn tensor(x: &Array2<f64>) -> Tensor {
    Tensor::from_vec(x.iter().copied().collect::<Vec<_>>(), x.dim(), &Device::Cpu).unwrap()
}

#[test]
fn cached_stats_round_trip_and_are_keyed() {
    let dir = tempfile::tempdir().unwrap();
    let stats = GaussianStats::from_features(&features(3, 40, 6, 0.0)).unwrap();
    let key = StatsKey::new("mnist", "test", "ABCDEF0123456789abcdef");
    assert_eq!(
        key.file_name(),
        "fid-stats_mnist_test_abcdef0123456789.safetensors"
    );
    let path = key.path_in(dir.path());
    save_stats(&path, &key, &stats).unwrap();
    let back = load_stats(&path, &key).unwrap();
    assert_eq!(back, stats); // bit-exact f64 round trip, count included
    for other in [
        StatsKey::new("celeba64", "test", "abcdef0123456789abcdef"),
        StatsKey::new("mnist", "train", "abcdef0123456789abcdef"),
        StatsKey::new("mnist", "test", "00"),
    ] {
        assert!(matches!(
            load_stats(&path, &other),
            Err(Error::StaleCache { .. })
        ));
    }
}

#[test]
fn load_or_compute_computes_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = StatsKey::new("mnist", "paper-test", "1234");
    let mut calls = 0;
    let x = features(4, 30, 5, 0.0);
    for expected_cached in [false, true, true] {
        let (stats, cached) = load_or_compute_stats(dir.path(), &key, || {
            calls += 1;
            GaussianStats::from_features(&x)
        })
        .unwrap();
        assert_eq!(cached, expected_cached);
        assert_eq!(stats.count(), 30);
    }
    assert_eq!(calls, 1);
    // A different weights hash is a different file: computed again.
    let other = StatsKey::new("mnist", "paper-test", "5678");
    let (_, cached) =
        load_or_compute_stats(dir.path(), &other, || GaussianStats::from_features(&x)).unwrap();
    assert!(!cached);
}

#[test]
fn precision_recall_identical_sets_are_perfect() {
    let x = tensor(&features(5, 200, 16, 0.0));
    let pr = precision_recall(&x, &x).unwrap();
    assert_eq!((pr.precision, pr.recall), (1.0, 1.0));
}

#[test]
fn precision_recall_disjoint_far_sets_are_zero() {
    let real = tensor(&features(6, 150, 16, 0.0));
    let fake = tensor(&features(7, 120, 16, 100.0));
    let pr = precision_recall(&real, &fake).unwrap();
    assert_eq!((pr.precision, pr.recall), (0.0, 0.0));
}

#[test]
fn precision_recall_constructed_one_dimensional_case() {
    // Real: 0..9 on a line; k = 3 radii are 2 or 3. Generated: two points inside the real
    // range and four far away. Precision = 2/6. The generated balls around 0.5 and 1.5
    // reach their third neighbour at ~100, so they cover every real point: recall = 1.
    let real = Tensor::from_vec(
        (0..10).map(|i| i as f32).collect::<Vec<_>>(),
        (10, 1),
        &Device::Cpu,
    )
    .unwrap();
    let fake = Tensor::from_vec(
        vec![0.5f32, 1.5, 100.0, 101.0, 102.0, 103.0],
        (6, 1),
        &Device::Cpu,
    )
    .unwrap();
    let pr = precision_recall(&real, &fake).unwrap();
    assert!((pr.precision - 2.0 / 6.0).abs() < 1e-12, "{pr:?}");
    assert_eq!(pr.recall, 1.0);
    // Swapping the roles swaps the numbers' meaning: now the far points are "real".
    let swapped = precision_recall(&fake, &real).unwrap();
    assert_eq!(swapped.precision, 1.0);
    assert!((swapped.recall - 2.0 / 6.0).abs() < 1e-12);
}

#[test]
fn precision_recall_matches_brute_force_with_small_batches() {
    let real = features(8, 60, 5, 0.0);
    let fake = features(9, 45, 5, 0.3);
    let k = 3;
    let dist = |a: &Array2<f64>, i: usize, b: &Array2<f64>, j: usize| -> f64 {
        (0..a.ncols())
            .map(|c| (a[[i, c]] - b[[j, c]]).powi(2))
            .sum()
    };
    let radii = |x: &Array2<f64>| -> Vec<f64> {
        (0..x.nrows())
            .map(|i| {
                let mut d: Vec<f64> = (0..x.nrows())
                    .filter(|&j| j != i)
                    .map(|j| dist(x, i, x, j))
                    .collect();
                d.sort_by(f64::total_cmp);
                d[k - 1]
            })
            .collect()
    };
    let inside = |q: &Array2<f64>, m: &Array2<f64>, r: &[f64]| -> f64 {
        (0..q.nrows())
            .filter(|&i| (0..m.nrows()).any(|j| dist(q, i, m, j) <= r[j]))
            .count() as f64
            / q.nrows() as f64
    };
    let expected_precision = inside(&fake, &real, &radii(&real));
    let expected_recall = inside(&real, &fake, &radii(&fake));
    assert!(expected_precision > 0.0 && expected_precision < 1.0);
    assert!(expected_recall > 0.0 && expected_recall < 1.0);
    let cfg = PrecisionRecallConfig { k, row_batch: 7 };
    let pr = precision_recall_with(&tensor(&real), &tensor(&fake), &cfg).unwrap();
    assert_eq!(pr.precision, expected_precision);
    assert_eq!(pr.recall, expected_recall);
}

#[test]
fn precision_recall_rejects_bad_input() {
    let a = tensor(&features(1, 3, 4, 0.0));
    let b = tensor(&features(2, 10, 4, 0.0));
    assert!(precision_recall(&a, &b).is_err()); // 3 samples is not more than k = 3
    let c = tensor(&features(2, 10, 5, 0.0));
    assert!(precision_recall(&b, &c).is_err());
}

#[test]
fn reconstruction_error_values_and_batching() {
    let dev = Device::Cpu;
    let x = Tensor::zeros((2, 1, 2, 2), DType::F32, &dev).unwrap();
    // Image 0 off by 0.5 everywhere, image 1 by -1 in one pixel.
    let r = Tensor::from_vec(
        vec![0.5f32, 0.5, 0.5, 0.5, -1.0, 0.0, 0.0, 0.0],
        (2, 1, 2, 2),
        &dev,
    )
    .unwrap();
    let e = reconstruction_error(&x, &r).unwrap();
    assert_eq!(e.images, 2);
    assert!((e.squared_l2_per_image - (1.0 + 1.0) / 2.0).abs() < 1e-12);
    assert!((e.mse_per_pixel - 2.0 / 8.0).abs() < 1e-12);
    assert!((e.l1_per_image - (2.0 + 1.0) / 2.0).abs() < 1e-12);
    // Two batches accumulate to the same numbers.
    let mut acc = ReconstructionAccumulator::new();
    acc.add(&x.narrow(0, 0, 1).unwrap(), &r.narrow(0, 0, 1).unwrap())
        .unwrap();
    acc.add(&x.narrow(0, 1, 1).unwrap(), &r.narrow(0, 1, 1).unwrap())
        .unwrap();
    assert_eq!(acc.finish().unwrap(), e);
    assert!(reconstruction_error(&x, &r.narrow(0, 0, 1).unwrap()).is_err());
    assert!(ReconstructionAccumulator::new().finish().is_err());
}

#[test]
fn latent_mmd_is_small_for_prior_codes_and_large_for_shifted_codes() {
    let dev = Device::Cpu;
    let prior = Prior::Normal { variance: 1.0 };
    let cfg = MmdConfig::default();
    let mut rng = StdRng::seed_from_u64(1);
    let codes = prior.sample(500, 8, &mut rng, &dev, DType::F32).unwrap();
    let matched = latent_mmd(&codes, &prior, &cfg, &mut rng, 128).unwrap();
    let shifted = (codes.clone() + 1.0).unwrap();
    let off = latent_mmd(&shifted, &prior, &cfg, &mut rng, 128).unwrap();
    assert!(matched.abs() < 0.05, "matched {matched}");
    assert!(
        off > 10.0 * matched.abs().max(1e-3),
        "shifted {off} vs matched {matched}"
    );
    // Same seed, same value.
    let a = latent_mmd(&codes, &prior, &cfg, &mut StdRng::seed_from_u64(5), 128).unwrap();
    let b = latent_mmd(&codes, &prior, &cfg, &mut StdRng::seed_from_u64(5), 128).unwrap();
    assert_eq!(a, b);
}
