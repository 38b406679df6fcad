//! The beta-VAE metric as paruby/Wasserstein-Auto-Encoders computes it: the points and
//! the Adagrad softmax classifier equal a NumPy re-implementation on fixed codes (values
//! from xtask/reference/beta_vae_metric_reference.py), codes equal to the factors score
//! 1, codes unrelated to them score about chance.
//!
//! `WAE_HEAVY_TESTS=1` also times one full default evaluation (both dSprites variants,
//! 2 x 5,000 points of 30 pairs encoded by a 4096-1200-1200-16 MLP, 2 x 3 x 100,000
//! Adagrad steps); run it in release mode.

use ndarray::{Array2, Array3, s};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wae_metrics::beta_vae_metric::{
    BetaVaeConfig, beta_vae_points, beta_vae_score, mean_abs_difference,
};
use wae_metrics::softmax_regression::{SoftmaxAdagrad, glorot_uniform, train_softmax_regression};

/// splitmix64 of `row * 1000 + col`, as a uniform in [0, 1) (same as the reference script).
fn splitmix_uniform(row: usize, col: usize) -> f64 {
    let x = (row as u64).wrapping_mul(1000).wrapping_add(col as u64);
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

const B: usize = 203;
const L: usize = 30;
const D: usize = 10;
const K: usize = 4;

/// The reference script's labels `(B)`, pair codes `(B, L, D)` twice and initial kernel.
fn reference_inputs() -> (Vec<usize>, Array3<f64>, Array3<f64>, Array2<f64>) {
    let labels: Vec<usize> = (0..B)
        .map(|b| (4.0 * splitmix_uniform(b, 999)).floor() as usize)
        .collect();
    let z1 = Array3::from_shape_fn((B, L, D), |(b, l, j)| {
        3.0 * splitmix_uniform(b * L + l, j) - 1.5
    });
    let z2 = Array3::from_shape_fn((B, L, D), |(b, l, j)| {
        let r = b * L + l;
        if j == 2 * labels[b] {
            z1[(b, l, j)] + 2.4 * (splitmix_uniform(r, j + 200) - 0.5)
        } else {
            3.0 * splitmix_uniform(r, j + 100) - 1.5
        }
    });
    let limit = (6.0 / (D + K) as f64).sqrt();
    let kernel0 = Array2::from_shape_fn((D, K), |(j, k)| {
        (2.0 * splitmix_uniform(5000 + j, k) - 1.0) * limit
    });
    (labels, z1, z2, kernel0)
}

fn assert_close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol * want.abs().max(1.0),
        "{what}: {got} vs reference {want}"
    );
}

#[test]
fn points_and_adagrad_classifier_match_the_numpy_reference() {
    let (labels, z1, z2, kernel0) = reference_inputs();
    assert_eq!(&labels[..8], &[1, 2, 1, 3, 3, 0, 2, 0]);
    let counts: Vec<usize> = (0..K)
        .map(|k| labels.iter().filter(|&&l| l == k).count())
        .collect();
    assert_eq!(counts, [57, 54, 47, 45]);
    for (j, want) in [
        1.149_932_424_640_928,
        0.199_684_725_516_842_58,
        0.273_569_202_594_238_2,
    ]
    .into_iter()
    .enumerate()
    {
        assert_close(z1[(0, 0, j)], want, 1e-15, "z1[0, 0, j]");
    }
    for (j, want) in [
        0.619_279_067_334_858_3,
        0.330_109_049_484_593_2,
        -0.160_316_786_096_575_6,
        -0.527_130_821_874_458_3,
    ]
    .into_iter()
    .enumerate()
    {
        assert_close(kernel0[(0, j)], want, 1e-15, "kernel0[0, j]");
    }

    // (a) the points.
    let mut points = Array2::<f64>::zeros((B, D));
    for b in 0..B {
        let point =
            mean_abs_difference(z1.slice(s![b, .., ..]), z2.slice(s![b, .., ..])).expect("point");
        points.row_mut(b).assign(&point);
    }
    assert_close(
        points.sum(),
        1_950.462_676_034_401_3,
        1e-13,
        "sum of the points",
    );
    let weighted: f64 = points
        .indexed_iter()
        .map(|((i, j), &v)| v * ((i * D + j) % 7 + 1) as f64)
        .sum();
    assert_close(
        weighted,
        7_820.756_832_658_404,
        1e-13,
        "weighted sum of the points",
    );
    let first = [
        0.838_103_433_970_266_4,
        1.122_357_509_856_033_7,
        0.555_858_197_310_962_5,
        0.827_235_624_761_758_8,
        1.049_238_435_969_153_8,
        0.949_439_018_483_547_6,
        1.078_582_218_198_657,
        1.103_116_538_093_723_1,
        1.352_844_720_328_409_3,
        1.010_389_484_767_470_4,
    ];
    let last = [
        0.905_983_776_788_820_1,
        0.952_722_770_963_397,
        0.908_645_809_118_181,
        1.028_189_078_986_707_4,
        1.014_743_172_158_453,
        1.164_718_280_728_885_6,
        0.785_139_533_737_055_4,
        1.134_042_680_159_103,
        0.813_341_363_823_192_8,
        1.007_169_398_894_292_2,
    ];
    for j in 0..D {
        assert_close(points[(0, j)], first[j], 1e-14, "points[0]");
        assert_close(points[(B - 1, j)], last[j], 1e-14, "points[202]");
    }

    // (b) the classifier after 0, 1, 10, 300 and 3,000 full-batch Adagrad steps.
    let settings = |iterations| SoftmaxAdagrad {
        iterations,
        ..SoftmaxAdagrad::default()
    };
    for (steps, accuracy, loss) in [
        (0, 0.231_527_093_596_059_1, 2.002_906_785_081_448),
        (1, 0.231_527_093_596_059_1, 1.947_142_672_689_496),
        (10, 0.310_344_827_586_206_9, 1.714_877_314_653_786_6),
        (300, 0.359_605_911_330_049_27, 1.303_706_267_578_340_6),
        (3000, 0.926_108_374_384_236_4, 0.984_260_078_846_198_9),
    ] {
        let trained =
            train_softmax_regression(points.view(), &labels, K, &kernel0, &settings(steps))
                .expect("train");
        assert_eq!(trained.accuracy, accuracy, "accuracy after {steps} steps");
        assert_close(
            trained.loss,
            loss,
            1e-11,
            &format!("loss after {steps} steps"),
        );
        if steps == 3000 {
            let kernel = [
                -0.335_898_011_443_281_2,
                1.183_759_661_239_059,
                0.196_652_495_492_645_82,
                0.026_958_034_625_389_614,
                0.148_907_054_071_748_56,
                0.216_906_268_150_266_84,
                -0.416_365_249_318_346_4,
                -0.225_530_792_341_674_14,
                0.053_577_144_176_663_89,
                -1.264_886_529_191_488_8,
                0.237_118_604_041_671_48,
                0.409_444_759_334_746_2,
                0.076_544_879_000_157_94,
                0.147_066_123_120_629_2,
                -0.745_846_387_950_880_4,
                -0.221_358_016_128_458_65,
                0.676_695_191_829_103_4,
                1.143_718_295_426_826,
                -0.774_103_272_309_711_7,
                0.374_257_220_514_817_1,
                -0.145_639_703_713_680_46,
                -0.288_298_008_773_639_7,
                0.473_468_353_442_178_47,
                0.043_684_353_744_941_28,
                0.235_036_270_919_425_97,
                0.800_374_337_808_868_2,
                0.312_720_338_722_101_14,
                -1.327_757_194_401_862_2,
                -0.485_356_023_424_672_54,
                -0.100_720_854_502_565_09,
                0.407_925_403_882_565_26,
                0.574_958_182_163_53,
                0.323_909_787_062_363_9,
                -0.903_319_925_082_653_8,
                0.381_156_272_090_993_73,
                0.183_420_084_729_807_86,
                0.093_838_301_513_730_86,
                -0.074_976_793_235_011_6,
                0.507_860_801_348_261_4,
                0.310_874_296_942_323_6,
            ];
            for (got, &want) in trained.weights.iter().zip(&kernel) {
                assert_close(*got, want, 1e-10, "kernel after 3000 steps");
            }
            let bias = [
                0.059_442_251_246_078_95,
                -0.196_806_589_909_947_37,
                -0.130_003_431_918_509_44,
                0.201_189_608_478_299_8,
            ];
            for (got, &want) in trained.bias.iter().zip(&bias) {
                assert_close(*got, want, 1e-10, "bias after 3000 steps");
            }
        }
    }
}

/// Pairs of codes equal to the factors (sizes of dSprites' five): factor `factor` shared
/// within each pair, every other factor drawn uniformly and independently.
fn factor_pairs(
    sizes: &[usize],
) -> impl FnMut(usize, usize, &mut StdRng) -> wae_metrics::Result<(Array2<f64>, Array2<f64>)> + '_ {
    move |factor, n_pairs, rng| {
        let k = sizes.len();
        let mut first = Array2::zeros((n_pairs, k));
        let mut second = Array2::zeros((n_pairs, k));
        for i in 0..n_pairs {
            for (j, &size) in sizes.iter().enumerate() {
                first[(i, j)] = rng.random_range(0..size) as f64;
                second[(i, j)] = rng.random_range(0..size) as f64;
            }
            second[(i, factor)] = first[(i, factor)];
        }
        Ok((first, second))
    }
}

const DSPRITES_SIZES: [usize; 5] = [3, 6, 40, 32, 32];

fn quick(factors: BetaVaeConfig) -> BetaVaeConfig {
    BetaVaeConfig {
        num_points: 600,
        iterations: 3_000,
        restarts: 2,
        ..factors
    }
}

#[test]
fn defaults_are_the_references_settings() {
    let four = BetaVaeConfig::default();
    assert_eq!(four, BetaVaeConfig::dsprites_four_factors());
    assert_eq!(
        (
            four.pairs_per_point,
            four.num_points,
            four.iterations,
            four.restarts
        ),
        (30, 5_000, 100_000, 3)
    );
    assert_eq!((four.learning_rate, four.initial_accumulator), (1e-2, 0.1));
    assert_eq!(four.factors, [4, 3, 2, 1]);
    assert_eq!(
        BetaVaeConfig::dsprites_five_factors().factors,
        [4, 3, 2, 1, 0]
    );
}

#[test]
fn codes_equal_to_the_factors_score_one() {
    for config in [
        BetaVaeConfig::dsprites_four_factors(),
        BetaVaeConfig::dsprites_five_factors(),
    ] {
        let config = quick(config);
        let score = beta_vae_score(factor_pairs(&DSPRITES_SIZES), &config, 7).expect("score");
        assert_eq!(score.restart_accuracies.len(), 2);
        for &a in &score.restart_accuracies {
            assert!(a > 0.99, "{score:?}");
        }
        assert_eq!(score.label_counts.iter().sum::<usize>(), 600);
        assert!(score.restart_losses.iter().all(|&l| l < 0.5), "{score:?}");
    }
}

#[test]
fn random_codes_score_about_chance() {
    let config = quick(BetaVaeConfig::dsprites_five_factors());
    let random = |_factor: usize, n_pairs: usize, rng: &mut StdRng| {
        let draw =
            |rng: &mut StdRng| Array2::from_shape_simple_fn((n_pairs, 8), || rng.random::<f64>());
        let first = draw(rng);
        Ok((first, draw(rng)))
    };
    let score = beta_vae_score(random, &config, 11).expect("score");
    // Chance is 0.2; a linear classifier on 600 points in 8 dimensions fits a little noise.
    assert!(score.accuracy > 0.12 && score.accuracy < 0.3, "{score:?}");
}

#[test]
fn points_average_the_pairs_and_labels_name_positions_in_factors() {
    let config = BetaVaeConfig {
        num_points: 400,
        pairs_per_point: 5,
        factors: vec![2, 0, 1],
        ..BetaVaeConfig::default()
    };
    let mut calls: Vec<(usize, Array2<f64>, Array2<f64>)> = Vec::new();
    let mut source = |factor: usize, n_pairs: usize, rng: &mut StdRng| {
        let first = Array2::from_shape_simple_fn((n_pairs, 3), || rng.random::<f64>());
        let second = Array2::from_shape_simple_fn((n_pairs, 3), || rng.random::<f64>());
        calls.push((factor, first.clone(), second.clone()));
        Ok((first, second))
    };
    let mut rng = StdRng::seed_from_u64(5);
    let (points, labels) = beta_vae_points(&mut source, &config, &mut rng).expect("points");
    assert_eq!(points.dim(), (400, 3));
    assert_eq!(calls.len(), 400);
    for (b, (factor, first, second)) in calls.iter().enumerate() {
        assert_eq!(*factor, config.factors[labels[b]]);
        assert_eq!(first.nrows(), 5);
        for j in 0..3 {
            let want: f64 = (0..5)
                .map(|l| (first[(l, j)] - second[(l, j)]).abs())
                .sum::<f64>()
                / 5.0;
            assert!((points[(b, j)] - want).abs() < 1e-15);
        }
    }
    // Labels uniform over the 3 factors.
    for k in 0..3 {
        let n = labels.iter().filter(|&&l| l == k).count();
        assert!((100..170).contains(&n), "label {k}: {n} of 400");
    }
}

#[test]
fn the_score_is_seeded_and_restarts_differ() {
    let config = BetaVaeConfig {
        num_points: 200,
        iterations: 200,
        restarts: 3,
        ..BetaVaeConfig::default()
    };
    let a = beta_vae_score(factor_pairs(&DSPRITES_SIZES), &config, 3).expect("a");
    let b = beta_vae_score(factor_pairs(&DSPRITES_SIZES), &config, 3).expect("b");
    assert_eq!(a, b);
    assert_ne!(
        a.restart_losses[0], a.restart_losses[1],
        "fresh weights per restart"
    );
    let mean = a.restart_accuracies.iter().sum::<f64>() / 3.0;
    assert_eq!(a.accuracy, mean);
}

#[test]
fn glorot_uniform_is_tensorflows_range() {
    let mut rng = StdRng::seed_from_u64(0);
    let w = glorot_uniform(16, 4, &mut rng);
    let limit = (6.0f64 / 20.0).sqrt();
    assert_eq!(w.dim(), (16, 4));
    assert!(w.iter().all(|&v| v.abs() < limit));
    assert!(w.iter().any(|&v| v.abs() > 0.8 * limit));
}

#[test]
fn bad_inputs_are_errors() {
    let one_factor = BetaVaeConfig {
        factors: vec![0],
        ..BetaVaeConfig::default()
    };
    let err = beta_vae_score(factor_pairs(&DSPRITES_SIZES), &one_factor, 0).expect_err("1");
    assert!(err.to_string().contains("at least 2 factors"), "{err}");

    let config = quick(BetaVaeConfig::default());
    let wrong =
        |_: usize, n: usize, _: &mut StdRng| Ok((Array2::zeros((n, 3)), Array2::zeros((n, 4))));
    let err = beta_vae_score(wrong, &config, 0).expect_err("shapes");
    assert!(err.to_string().contains("(30, 3) and (30, 4)"), "{err}");

    let nan = |_: usize, n: usize, _: &mut StdRng| {
        Ok((Array2::from_elem((n, 2), f64::NAN), Array2::zeros((n, 2))))
    };
    let err = beta_vae_score(nan, &config, 0).expect_err("nan");
    assert!(err.to_string().contains("non-finite"), "{err}");

    let points = Array2::<f64>::zeros((4, 2));
    let err = train_softmax_regression(
        points.view(),
        &[0, 1, 2, 1],
        2,
        &Array2::zeros((2, 2)),
        &SoftmaxAdagrad::default(),
    )
    .expect_err("label 2");
    assert!(
        err.to_string()
            .contains("label 2 is not below the 2 classes"),
        "{err}"
    );
}

/// One full default evaluation (both variants) with codes from a fully connected
/// 4096-1200-1200-16 encoder (random weights, candle on the CPU) of freshly rendered
/// dSprites images, as `wae eval` computes it; prints the time of each part.
#[test]
fn full_default_evaluation_time() {
    use candle_core::{DType, Device, Module};
    use candle_nn::{VarBuilder, VarMap, linear};
    use std::time::Instant;
    use wae_data::{Dsprites, DspritesFactors};

    if !wae_io::heavy_tests("full_default_evaluation_time (use --release)") {
        return;
    }
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let layers = [
        linear(4096, 1200, vb.pp("fc1")).expect("fc1"),
        linear(1200, 1200, vb.pp("fc2")).expect("fc2"),
        linear(1200, 16, vb.pp("mean")).expect("mean"),
    ];
    let render_s = std::cell::Cell::new(0.0);
    let encode_s = std::cell::Cell::new(0.0);
    let mut pairs = |factor: usize, n_pairs: usize, rng: &mut StdRng| {
        let started = Instant::now();
        let mut factors = Vec::with_capacity(2 * n_pairs);
        for _ in 0..n_pairs {
            factors.push(DspritesFactors::random(rng));
        }
        for i in 0..n_pairs {
            let shared = factors[i].to_array()[factor];
            let other = DspritesFactors::random(rng)
                .with_factor(factor, shared)
                .expect("factor");
            factors.push(other);
        }
        let data = Dsprites::generate(&factors).expect("render");
        let indices: Vec<usize> = (0..factors.len()).collect();
        let x = data.images.batch(&indices, &device).expect("batch");
        render_s.set(render_s.get() + started.elapsed().as_secs_f64());
        let started = Instant::now();
        let x = x.flatten_from(1).expect("flatten");
        let h = layers[0].forward(&x).and_then(|h| h.relu()).expect("fc1");
        let h = layers[1].forward(&h).and_then(|h| h.relu()).expect("fc2");
        let z = layers[2].forward(&h).expect("mean");
        let z = wae_metrics::disentanglement::codes_from_tensor(&z).expect("codes");
        encode_s.set(encode_s.get() + started.elapsed().as_secs_f64());
        Ok((
            z.slice(s![..n_pairs, ..]).to_owned(),
            z.slice(s![n_pairs.., ..]).to_owned(),
        ))
    };
    let total = Instant::now();
    for config in [
        BetaVaeConfig::dsprites_four_factors(),
        BetaVaeConfig::dsprites_five_factors(),
    ] {
        let started = Instant::now();
        let (before_render, before_encode) = (render_s.get(), encode_s.get());
        let score = beta_vae_score(&mut pairs, &config, 0).expect("score");
        let all = started.elapsed().as_secs_f64();
        let (render, encode) = (
            render_s.get() - before_render,
            encode_s.get() - before_encode,
        );
        eprintln!(
            "{} factors: {all:.1} s (render {render:.1} s, encode {encode:.1} s, \
             classifier {:.1} s); accuracies {:?}",
            config.factors.len(),
            all - render - encode,
            score.restart_accuracies
        );
    }
    eprintln!(
        "one full default evaluation (4 + 5 factors): {:.1} s",
        total.elapsed().as_secs_f64()
    );
}
