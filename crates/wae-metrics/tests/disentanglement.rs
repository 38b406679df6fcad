//! FactorVAE metric and MIG: ~1 for codes that are the factors, ~chance for random
//! codes, and MIG equal to disentanglement_lib's computation (values from
//! xtask/reference/disentanglement_reference.py).

use ndarray::{Array2, ArrayView2};
use rand::Rng;
use rand::rngs::StdRng;
use wae_metrics::disentanglement::{
    FactorVaeConfig, FnSampler, GridSampler, MigConfig, discrete_entropy,
    discrete_mutual_information, factor_vae_score, factor_vae_score_on_grid, histogram_discretize,
    mig, mig_from_sampler,
};

/// Every combination of factor classes once, last factor fastest: `(prod sizes, K)`.
fn grid(sizes: &[usize]) -> Array2<usize> {
    let n: usize = sizes.iter().product();
    Array2::from_shape_fn((n, sizes.len()), |(row, k)| {
        let stride: usize = sizes[k + 1..].iter().product();
        (row / stride) % sizes[k]
    })
}

/// splitmix64 of `row * 1000 + dim`, as a uniform in [0, 1) (same as the reference script).
fn splitmix_uniform(row: usize, dim: usize) -> f64 {
    let x = (row as u64).wrapping_mul(1000).wrapping_add(dim as u64);
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn as_f64(factors: &Array2<usize>) -> Array2<f64> {
    factors.mapv(|c| c as f64)
}

const REFERENCE_SIZES: [usize; 5] = [3, 6, 40, 32, 4];

fn assert_close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() < 1e-10,
        "{what}: {got} vs reference {want}"
    );
}

#[test]
fn mig_matches_the_disentanglement_lib_reference() {
    let f = grid(&REFERENCE_SIZES);
    assert_eq!(f.nrows(), 92_160);
    let c = as_f64(&f);
    let n = f.nrows();
    assert!((splitmix_uniform(0, 0) - 0.883_310_81).abs() < 1e-8);
    let cfg = MigConfig::default();

    let identity = mig(c.view(), f.view(), &cfg).expect("identity");
    assert_close(identity.mig, 0.932_419_635_058_178_6, "identity");
    for (got, want) in identity
        .gaps
        .iter()
        .zip([1.0, 1.0, 0.812_098_175_290_892_5, 0.85, 1.0])
    {
        assert_close(*got, want, "identity gap");
    }

    let sizes = REFERENCE_SIZES.map(|s| s as f64);
    let monotone = Array2::from_shape_fn(c.dim(), |(i, k)| (3.0 * c[(i, k)] / sizes[k]).exp());
    let score = mig(monotone.view(), f.view(), &cfg).expect("monotone");
    assert_close(score.mig, 0.892_281_704_602_739_6, "monotone");
    assert_close(score.gaps[2], 0.713_948_347_742_239_4, "monotone gap 2");

    let entangled = Array2::from_shape_fn((n, 6), |(i, j)| match j {
        0 => c[(i, 0)] + c[(i, 1)],
        1 => c[(i, 1)] - 0.5 * c[(i, 2)],
        2 => c[(i, 2)],
        3 => c[(i, 3)] + 4.0 * c[(i, 4)],
        4 => c[(i, 4)] + splitmix_uniform(i, 4),
        _ => splitmix_uniform(i, 5),
    });
    let score = mig(entangled.view(), f.view(), &cfg).expect("entangled");
    assert_close(score.mig, 0.474_429_105_557_149_57, "entangled");
    let want = [
        0.192_919_856_036_089_58,
        0.435_357_951_751_513_15,
        0.449_582_156_775_087_5,
        0.438_763_407_299_801_6,
        0.855_522_155_923_255_6,
    ];
    for (got, want) in score.gaps.iter().zip(want) {
        assert_close(*got, want, "entangled gap");
    }

    let random = Array2::from_shape_fn((n, 6), |(i, j)| splitmix_uniform(i, j));
    let score = mig(random.view(), f.view(), &cfg).expect("random");
    assert_close(score.mig, 3.751_269_983_673_139e-5, "random");
    assert!(score.mig < 1e-3, "random codes give MIG about 0");
}

#[test]
fn mig_is_one_for_factors_with_at_most_num_bins_values_and_affine_codes() {
    let f = grid(&[3, 6, 10, 8, 8]);
    let c = as_f64(&f);
    let cfg = MigConfig::default();
    let score = mig(c.view(), f.view(), &cfg).expect("identity");
    assert!((score.mig - 1.0).abs() < 1e-12, "{}", score.mig);
    // Affine maps (including a flip) and a permutation of the dimensions keep it at 1.
    let affine = Array2::from_shape_fn(c.dim(), |(i, k)| {
        let j = (k + 2) % 5;
        -3.5 * c[(i, j)] + 7.0
    });
    let score = mig(affine.view(), f.view(), &cfg).expect("affine");
    assert!((score.mig - 1.0).abs() < 1e-12, "{}", score.mig);
    for k in 0..5 {
        let h = score.factor_entropy[k];
        let size = [3.0f64, 6.0, 10.0, 8.0, 8.0][k];
        assert!((h - size.ln()).abs() < 1e-12, "entropy of a uniform factor");
        // Factor k lives in dimension (k + 3) % 5.
        assert!((score.mutual_information[((k + 3) % 5, k)] - h).abs() < 1e-12);
    }
    // Duplicating a dimension leaves no gap for its factor.
    let doubled = Array2::from_shape_fn((f.nrows(), 6), |(i, j)| c[(i, j.min(4))]);
    let score = mig(doubled.view(), f.view(), &cfg).expect("doubled");
    assert!(
        score.gaps[4].abs() < 1e-12 && (score.mig - 0.8).abs() < 1e-12,
        "{:?}",
        score.gaps
    );
}

#[test]
fn mig_from_a_sampler_of_random_codes_is_about_zero() {
    let f = grid(&[3, 6, 10, 8, 8]);
    let random = Array2::from_shape_fn((f.nrows(), 8), |(i, j)| splitmix_uniform(i, j));
    let mut sampler = GridSampler::new(random.view(), f.view()).expect("sampler");
    let score = mig_from_sampler(&mut sampler, 10_000, &MigConfig::default(), 3).expect("mig");
    assert!(score.mig >= 0.0 && score.mig < 0.02, "{}", score.mig);
    let again = mig_from_sampler(&mut sampler, 10_000, &MigConfig::default(), 3).expect("mig");
    assert_eq!(score, again, "seeded");
}

#[test]
fn discretisation_and_information_follow_numpy_and_sklearn() {
    // numpy: digitize(x, histogram(x, 2)[1][:-1]) with edges [0, 0.5]: [1, 1, 2, 2];
    // a constant column gets edges [4.5, 5] and bin 2 throughout.
    let values = ArrayView2::from_shape((4, 2), &[0.0, 5.0, 0.25, 5.0, 0.5, 5.0, 1.0, 5.0])
        .expect("view")
        .to_owned();
    let bins = histogram_discretize(values.view(), 2).expect("bins");
    assert_eq!(bins.column(0).to_vec(), vec![1, 1, 2, 2]);
    assert_eq!(bins.column(1).to_vec(), vec![2, 2, 2, 2]);
    assert!(histogram_discretize(values.view(), 0).is_err());

    assert!((discrete_entropy(&[7, 7, 9, 9, 1, 1, 4, 4]) - 4f64.ln()).abs() < 1e-15);
    assert_eq!(discrete_entropy(&[3, 3, 3]), 0.0);
    // I(X; Y) for Y = X mod 2 with X uniform on 0..4: H(Y) = ln 2.
    let x = [0, 1, 2, 3, 0, 1, 2, 3];
    let y = [0, 1, 0, 1, 0, 1, 0, 1];
    assert!((discrete_mutual_information(&x, &y) - 2f64.ln()).abs() < 1e-15);
    // Independent labels: 0.
    let a = [0, 0, 1, 1];
    let b = [0, 1, 0, 1];
    assert_eq!(discrete_mutual_information(&a, &b), 0.0);
}

#[test]
fn mig_rejects_bad_input() {
    let f = grid(&[3, 4]);
    let c = as_f64(&f);
    let one_dim = c.slice(ndarray::s![.., 0..1]).to_owned();
    let err = mig(one_dim.view(), f.view(), &MigConfig::default()).expect_err("d = 1");
    assert!(
        err.to_string().contains("at least 2 code dimensions"),
        "{err}"
    );
    let constant = Array2::<usize>::zeros((12, 2));
    let err = mig(c.view(), constant.view(), &MigConfig::default()).expect_err("constant");
    assert!(err.to_string().contains("factor 0 is constant"), "{err}");
    let short = f.slice(ndarray::s![0..5, ..]).to_owned();
    let err = mig(c.view(), short.view(), &MigConfig::default()).expect_err("rows");
    assert!(
        err.to_string().contains("12 code rows but 5 factor rows"),
        "{err}"
    );
    let mut nan = c.clone();
    nan[(3, 1)] = f64::NAN;
    let err = mig(nan.view(), f.view(), &MigConfig::default()).expect_err("nan");
    assert!(err.to_string().contains("at (3, 1) is not finite"), "{err}");
}

fn quick() -> FactorVaeConfig {
    FactorVaeConfig {
        batch_size: 64,
        num_train: 2000,
        num_eval: 1000,
        num_variance_estimate: 5000,
        prune_std_threshold: 0.0,
    }
}

#[test]
fn factor_vae_is_one_for_the_factors_and_monotone_codes_of_them() {
    let f = grid(&[3, 6, 10, 8, 8]);
    let c = as_f64(&f);
    let score = factor_vae_score_on_grid(c.view(), f.view(), &quick(), 1).expect("identity");
    assert_eq!((score.train_accuracy, score.eval_accuracy), (1.0, 1.0));
    assert_eq!(score.num_active_dims, 5);
    assert_eq!(score.train_votes.sum(), 2000);
    assert_eq!(score.eval_votes.sum(), 1000);
    // Votes only on the diagonal, about 400 per factor.
    for k in 0..5 {
        assert!(
            (300..500).contains(&score.train_votes[(k, k)]),
            "{}",
            score.train_votes
        );
    }

    // Monotone (non-affine) maps of permuted dimensions, plus a dead dimension first.
    let codes = Array2::from_shape_fn((f.nrows(), 6), |(i, j)| match j {
        0 => 0.25,
        j => {
            let k = (j + 1) % 5; // dimension j holds factor (j + 1) % 5
            (c[(i, k)] * 0.7).exp() * if k % 2 == 0 { 1.0 } else { -1.0 }
        }
    });
    let score = factor_vae_score_on_grid(codes.view(), f.view(), &quick(), 2).expect("monotone");
    assert_eq!(score.eval_accuracy, 1.0);
    assert_eq!(score.num_active_dims, 5, "the constant dimension is pruned");
    assert_eq!(score.train_votes.column(0).sum(), 0);
    for j in 1..6 {
        assert_eq!(
            score.train_votes[((j + 1) % 5, j)],
            score.train_votes.column(j).sum()
        );
        assert!(score.train_votes.column(j).sum() > 300);
    }
}

#[test]
fn factor_vae_is_chance_for_random_codes_and_partial_for_partial_codes() {
    let f = grid(&[3, 6, 10, 8, 8]);
    let random = Array2::from_shape_fn((f.nrows(), 10), |(i, j)| splitmix_uniform(i, j));
    let score = factor_vae_score_on_grid(random.view(), f.view(), &quick(), 3).expect("random");
    // Chance is 1/K = 0.2; sd of 1000 votes about 0.013.
    assert!(
        (score.eval_accuracy - 0.2).abs() < 0.05,
        "{}",
        score.eval_accuracy
    );
    assert!(score.train_accuracy > score.eval_accuracy - 0.05);

    // Codes that carry only factors 0, 1 and 2: the votes for factors 3 and 4 land on
    // dimensions owned by other factors, so accuracy is about 3/5.
    let c = as_f64(&f);
    let partial = Array2::from_shape_fn((f.nrows(), 3), |(i, j)| c[(i, j)]);
    let score = factor_vae_score_on_grid(partial.view(), f.view(), &quick(), 4).expect("partial");
    assert!(
        (score.eval_accuracy - 0.6).abs() < 0.05,
        "{}",
        score.eval_accuracy
    );

    // Seeded: the same seed repeats, another seed differs.
    let a = factor_vae_score_on_grid(random.view(), f.view(), &quick(), 9).expect("a");
    let b = factor_vae_score_on_grid(random.view(), f.view(), &quick(), 9).expect("b");
    let other = factor_vae_score_on_grid(random.view(), f.view(), &quick(), 10).expect("c");
    assert_eq!(a, b);
    assert_ne!(a.train_votes, other.train_votes);
}

#[test]
fn factor_vae_drives_a_generator_through_closures() {
    // A "generator + encoder": factors drawn uniformly, codes = factors + small noise.
    let sizes = vec![3usize, 6, 40, 32, 32];
    let encode = |classes: &Array2<usize>, rng: &mut StdRng| {
        classes.mapv(|c| c as f64 + 0.05 * rng.random::<f64>())
    };
    let draw = |n: usize, rng: &mut StdRng| {
        Array2::from_shape_fn((n, 5), |(_, k)| rng.random_range(0..[3, 6, 40, 32, 32][k]))
    };
    let mut sampler = FnSampler::new(
        sizes,
        |n, rng: &mut StdRng| {
            let classes = draw(n, rng);
            let codes = encode(&classes, rng);
            Ok((codes, classes))
        },
        |factor, value, n, rng: &mut StdRng| {
            let mut classes = draw(n, rng);
            classes.column_mut(factor).fill(value);
            Ok(encode(&classes, rng))
        },
    );
    let score = factor_vae_score(&mut sampler, &quick(), 5).expect("score");
    assert_eq!(score.eval_accuracy, 1.0);
    let score = mig_from_sampler(&mut sampler, 5000, &MigConfig::default(), 5).expect("mig");
    assert!(score.mig > 0.85, "{}", score.mig);
}

#[test]
fn factor_vae_rejects_bad_settings_and_samplers() {
    let f = grid(&[3, 4]);
    let c = as_f64(&f);
    let bad = FactorVaeConfig {
        batch_size: 1,
        ..quick()
    };
    let err = factor_vae_score_on_grid(c.view(), f.view(), &bad, 0).expect_err("batch 1");
    assert!(err.to_string().contains("batch_size 1 is below 2"), "{err}");
    // All codes constant: no active dimension, score 0 like disentanglement_lib.
    let flat = Array2::<f64>::ones((12, 3));
    let score = factor_vae_score_on_grid(flat.view(), f.view(), &quick(), 0).expect("flat");
    assert_eq!((score.eval_accuracy, score.num_active_dims), (0.0, 0));
    // A sampler whose codes change width is caught.
    let mut sampler = FnSampler::new(
        vec![2, 2],
        |n, _rng: &mut StdRng| {
            Ok((
                Array2::from_shape_fn((n, 2), |(i, j)| (i * j) as f64),
                Array2::zeros((n, 2)),
            ))
        },
        |_, _, n, _rng: &mut StdRng| Ok(Array2::from_shape_fn((n, 3), |(i, _)| i as f64)),
    );
    let err = factor_vae_score(&mut sampler, &quick(), 0).expect_err("width");
    assert!(err.to_string().contains("expected (64, 2)"), "{err}");
}

#[test]
fn factor_vae_prunes_dimensions_with_std_below_the_studys_0_05() {
    let config = FactorVaeConfig::default();
    assert_eq!(config.prune_std_threshold, 0.05);
    // 100 rows (the variance uses all of them): dimension 0 alternates +-0.04 (std
    // 0.0402 with ddof 1), dimension 1 alternates +-0.06 (std 0.0603), dimension 2 is
    // factor 0, dimension 3 factor 1.
    let f = grid(&[10, 10]);
    let codes = Array2::from_shape_fn((f.nrows(), 4), |(i, j)| {
        let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
        match j {
            0 => 0.04 * sign,
            1 => 0.06 * sign,
            j => f[(i, j - 2)] as f64,
        }
    });
    let config = FactorVaeConfig {
        num_train: 500,
        num_eval: 200,
        batch_size: 8,
        ..config
    };
    let score = factor_vae_score_on_grid(codes.view(), f.view(), &config, 3).expect("pruned");
    assert_eq!(score.num_active_dims, 3, "std 0.04 pruned, 0.06 kept");
    assert_eq!(
        score.train_votes.column(0).sum(),
        0,
        "{}",
        score.train_votes
    );
    assert_eq!(score.eval_votes.column(0).sum(), 0);
    // With the old default (0) both are kept.
    let kept = FactorVaeConfig {
        prune_std_threshold: 0.0,
        ..config
    };
    let unpruned = factor_vae_score_on_grid(codes.view(), f.view(), &kept, 3).expect("kept");
    assert_eq!(unpruned.num_active_dims, 4);
}
