//! Sharpness, Gaussian statistics and the Frechet distance against NumPy/SciPy.
//!
//! Expected numbers come from `xtask/reference/metrics_reference.py` (pytorch-fid's
//! `calculate_frechet_distance` with scipy.linalg.sqrtm); inputs are integer
//! formulas that both sides reproduce bit for bit.

use candle_core::{Device, Tensor};
use ndarray::Array2;
use wae_metrics::testing::uniform;
use wae_metrics::{Error, GaussianStats, frechet_distance, laplace_sharpness};

const REL_TOL: f64 = 1e-6;

fn assert_rel(actual: f64, expected: f64, what: &str) {
    let rel = (actual - expected).abs() / expected.abs();
    assert!(
        rel <= REL_TOL,
        "{what}: got {actual}, expected {expected} (relative error {rel:e})"
    );
}

/// Same as the script's `sharpness_images`: ((k * mult + add) % 1009) / 1008 in f32.
fn sharpness_images(n: usize, c: usize, h: usize, w: usize, mult: u64, add: u64) -> Tensor {
    let values: Vec<f32> = (0..(n * c * h * w) as u64)
        .map(|k| ((k * mult + add) % 1009) as f32 / 1008.0)
        .collect();
    Tensor::from_vec(values, (n, c, h, w), &Device::Cpu).unwrap()
}

/// Same as the script's `features`: x[i, j] = u[i, j] + 0.5 u[i, (j+1) % d] + shift j / d.
fn features(seed: u32, n: usize, d: usize, shift: f64) -> Array2<f64> {
    let u = |i: usize, j: usize| uniform(seed, (i * d + j) as u64);
    Array2::from_shape_fn((n, d), |(i, j)| {
        u(i, j) + 0.5 * u(i, (j + 1) % d) + shift * j as f64 / d as f64
    })
}

#[test]
fn sharpness_matches_numpy() {
    let cases = [
        ((2, 1, 5, 7, 7919, 13), 0.4586865424006336),
        ((3, 3, 8, 6, 104729, 7), 0.7117452901630553),
        ((1, 3, 28, 28, 31, 0), 0.21003261623134095),
    ];
    for ((n, c, h, w, mult, add), expected) in cases {
        let images = sharpness_images(n, c, h, w, mult, add);
        let got = laplace_sharpness(&images).unwrap();
        assert_rel(got, expected, &format!("sharpness {n}x{c}x{h}x{w}"));
    }
}

#[test]
fn sharpness_is_dtype_independent_and_grey_weighted() {
    // The same pixels as f64 give the same result (the computation is f64 on the host).
    let images = sharpness_images(3, 3, 8, 6, 104729, 7);
    let as_f64 = images.to_dtype(candle_core::DType::F64).unwrap();
    assert_eq!(
        laplace_sharpness(&images).unwrap(),
        laplace_sharpness(&as_f64).unwrap()
    );
    // A grey image repeated to RGB: the weights sum to 0.9999, variance scales by its square.
    let grey = sharpness_images(2, 1, 9, 9, 7919, 13);
    let rgb = Tensor::cat(&[&grey, &grey, &grey], 1).unwrap();
    let g = laplace_sharpness(&grey).unwrap();
    let c = laplace_sharpness(&rgb).unwrap();
    assert!((c - g * 0.9999f64.powi(2)).abs() < 1e-12 * g, "{c} vs {g}");
}

#[test]
fn sharpness_rejects_bad_shapes() {
    let dev = Device::Cpu;
    let two_channels = Tensor::zeros((1, 2, 8, 8), candle_core::DType::F32, &dev).unwrap();
    assert!(matches!(
        laplace_sharpness(&two_channels),
        Err(Error::InvalidInput(_))
    ));
    let tiny = Tensor::zeros((1, 1, 2, 8), candle_core::DType::F32, &dev).unwrap();
    assert!(matches!(
        laplace_sharpness(&tiny),
        Err(Error::InvalidInput(_))
    ));
    let empty = Tensor::zeros((0, 1, 8, 8), candle_core::DType::F32, &dev).unwrap();
    assert!(matches!(
        laplace_sharpness(&empty),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn gaussian_stats_match_numpy() {
    let stats = GaussianStats::from_features(&features(1, 5, 3, 0.0)).unwrap();
    let mean = [0.6598813088321333, 0.4134708646722382, 0.6973640961217941];
    let cov = [
        0.11603380100932599,
        0.029550900933116426,
        0.06541663921741067,
        0.029550900933116426,
        0.026868606917889833,
        0.03374436272616966,
        0.06541663921741067,
        0.03374436272616966,
        0.0855339764584906,
    ];
    for (j, m) in mean.iter().enumerate() {
        assert_rel(stats.mean()[j], *m, &format!("mean[{j}]"));
    }
    for (k, c) in cov.iter().enumerate() {
        assert_rel(stats.cov()[[k / 3, k % 3]], *c, &format!("cov[{k}]"));
    }
    assert_eq!(stats.count(), 5);
    // The tensor entry point gives the same statistics.
    let x = features(1, 5, 3, 0.0);
    let t = Tensor::from_vec(x.iter().copied().collect::<Vec<_>>(), (5, 3), &Device::Cpu).unwrap();
    assert_eq!(GaussianStats::from_tensor(&t).unwrap(), stats);
}

#[test]
fn gaussian_stats_rejects_bad_input() {
    let one_row = Array2::<f64>::zeros((1, 4));
    assert!(GaussianStats::from_features(&one_row).is_err());
    let mut nan = Array2::<f64>::zeros((3, 2));
    nan[[1, 1]] = f64::NAN;
    assert!(GaussianStats::from_features(&nan).is_err());
    let a = GaussianStats::from_features(&features(1, 5, 3, 0.0)).unwrap();
    let b = GaussianStats::from_features(&features(1, 5, 4, 0.0)).unwrap();
    assert!(matches!(
        frechet_distance(&a, &b),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn frechet_distance_matches_pytorch_fid() {
    // (seed_a, n_a, seed_b, n_b, d, shift_b) -> scipy value
    let cases = [
        ((10, 40, 11, 50, 8, 0.7), 1.3040984888218563), // full rank
        ((20, 12, 21, 20, 32, 0.3), 4.54638431037127),  // both singular (n < d)
        ((30, 300, 31, 200, 64, 1.5), 47.551469817225126),
        ((40, 30, 41, 500, 64, 0.0), 4.431004016660571), // one singular
    ];
    for ((sa, na, sb, nb, d, shift), expected) in cases {
        let a = GaussianStats::from_features(&features(sa, na, d, 0.0)).unwrap();
        let b = GaussianStats::from_features(&features(sb, nb, d, shift)).unwrap();
        let fid = frechet_distance(&a, &b).unwrap();
        assert_rel(fid, expected, &format!("fid seeds ({sa},{sb}) d {d}"));
        // Symmetric in its arguments.
        let back = frechet_distance(&b, &a).unwrap();
        assert_rel(back, expected, &format!("fid seeds ({sb},{sa}) d {d}"));
    }
}

#[test]
fn identical_feature_sets_give_zero() {
    for (n, d) in [(100, 16), (10, 32)] {
        let s = GaussianStats::from_features(&features(50, n, d, 0.0)).unwrap();
        let fid = frechet_distance(&s, &s).unwrap();
        let scale = s.cov().diag().sum();
        assert!(fid.abs() < 1e-9 * scale, "n {n} d {d}: fid {fid}");
    }
}

#[test]
fn indefinite_covariance_is_an_imaginary_component_error() {
    let d = 4;
    let mean = ndarray::Array1::zeros(d);
    let mut cov = Array2::<f64>::eye(d);
    cov[[0, 0]] = -1.0; // eigenvalue -1: sqrt has imaginary part 1
    let bad = GaussianStats::new(mean.clone(), cov, 10).unwrap();
    let good = GaussianStats::new(mean, Array2::eye(d), 10).unwrap();
    assert!(matches!(
        frechet_distance(&bad, &good),
        Err(Error::ImaginaryComponent(_))
    ));
}

#[test]
fn covariance_over_several_row_blocks_matches_direct_sums() {
    // 5000 rows > the 4096-row block of `from_features`.
    let (n, d) = (5000, 3);
    let x = features(60, n, d, 0.2);
    let stats = GaussianStats::from_features(&x).unwrap();
    for a in 0..d {
        let mean_a = x.column(a).sum() / n as f64;
        assert!((stats.mean()[a] - mean_a).abs() < 1e-12);
        for b in 0..d {
            let mean_b = x.column(b).sum() / n as f64;
            let cov: f64 = (0..n)
                .map(|i| (x[[i, a]] - mean_a) * (x[[i, b]] - mean_b))
                .sum::<f64>()
                / (n - 1) as f64;
            assert!(
                (stats.cov()[[a, b]] - cov).abs() < 1e-12 * cov.abs().max(1e-3),
                "cov[{a},{b}] {} vs {cov}",
                stats.cov()[[a, b]]
            );
        }
    }
}

#[test]
fn frechet_distance_at_2048_matches_pytorch_fid() {
    // The benchmark's inputs (4096 samples per set, D = 2048); pytorch-fid's value from
    // `metrics_reference.py --bench`. About 10 s on a shared 2-core CPU: opt-in.
    if !wae_io::heavy_tests("the D = 2048 Frechet distance") {
        return;
    }
    let a = GaussianStats::from_features(&features(1, 4096, 2048, 0.0)).unwrap();
    let b = GaussianStats::from_features(&features(2, 4096, 2048, 0.0)).unwrap();
    let fid = frechet_distance(&a, &b).unwrap();
    println!(
        "fid at D = 2048: {fid} (pytorch-fid 44.5193106628908, relative difference {:.1e})",
        (fid - 44.5193106628908).abs() / 44.5193106628908
    );
    assert_rel(fid, 44.5193106628908, "fid at D = 2048");
}
