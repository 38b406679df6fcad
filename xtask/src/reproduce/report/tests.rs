use serde_json::json;
use wae_train::evaluate::{Disentanglement, GmmSamplerScores};

use super::*;
use crate::reproduce::models;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

#[test]
fn stats_are_the_mean_the_sample_sd_and_n() {
    // numpy: np.mean([2, 4, 4, 4, 5, 5, 7, 9]) = 5.0, np.std(.., ddof=1) = 2.138089935299395
    let s = Stats::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
    assert_eq!((s.mean, s.n), (5.0, 8));
    assert!(close(s.sd.unwrap(), 2.138_089_935_299_395), "{s:?}");
    let s = Stats::of(&[1.0, 2.0]).unwrap();
    assert!(
        close(s.sd.unwrap(), std::f64::consts::FRAC_1_SQRT_2),
        "{s:?}"
    );
    // One value: no standard deviation.
    assert_eq!(
        Stats::of(&[3.5]),
        Some(Stats {
            mean: 3.5,
            sd: None,
            n: 1
        })
    );
    // Non-finite values do not count; nothing finite gives nothing.
    assert_eq!(Stats::of(&[1.0, f64::NAN, 3.0]).unwrap().n, 2);
    assert_eq!(Stats::of(&[]), None);
    assert_eq!(Stats::of(&[f64::INFINITY]), None);
}

/// An evaluation with reconstruction error `recon` and the other numbers fixed (also
/// the sweep tests' fixture).
pub(crate) fn eval(recon: f64) -> EvalReport {
    EvalReport {
        schema_version: wae_train::evaluate::SCHEMA_VERSION,
        step: 60,
        examples: 500,
        reconstruction_sq_l2: recon,
        reconstruction_mse_per_pixel: recon / 784.0,
        reconstruction_l1: None,
        mmd_codes_vs_prior: 0.5,
        mmd_prior_vs_prior: 0.0,
        sharpness_samples: Some(0.02),
        sharpness_reconstructions: None,
        sharpness_test_images: Some(0.05),
        mmd_sampled_codes_vs_prior: None,
        classifier: None,
        inception: None,
        prior_match: None,
        gmm_sampler: None,
        disentanglement: None,
        skipped: Vec::new(),
        run: None,
        checkpoint: None,
        split: Some("test".into()),
        seed: Some(0),
    }
}

/// A run of seed `seed` with evaluation `eval`, beating an untrained error of 180.
fn summary(seed: u64, eval: EvalReport) -> RunSummary {
    RunSummary {
        preset: "mnist-wae-mmd".into(),
        label: "WAE-MMD".into(),
        description: "test".into(),
        seed,
        steps: 60,
        epochs: 1,
        training_seconds: 10.0,
        eval,
        untrained_reconstruction_sq_l2: Some(180.0),
        untrained_mmd_codes_vs_prior: Some(1.0),
        non_finite_metrics: Vec::new(),
        pictures: vec![format!("wae-mmd/seed-{seed}/samples.png")],
        config_toml: "seed = 0\n".into(),
    }
}

fn runs(values: Vec<RunSummary>) -> ModelRuns {
    ModelRuns {
        spec: models(Experiment::Mnist)[1].clone(),
        runs: values.into_iter().map(|r| (r.seed, r)).collect(),
    }
}

#[test]
fn the_aggregate_of_any_shape_holds_every_number_over_seeds() {
    let a = json!({"steps": 60, "epochs": 1, "label": "WAE-MMD", "training_seconds": 10.0,
        "eval": {"reconstruction_sq_l2": 20.0, "seed": 0, "examples": 500,
            "split": "test", "disentanglement": {"mig_per_factor": [0.1, 0.3]},
            "skipped": [{"metric": "fid"}]}});
    let b = json!({"steps": 60, "epochs": 1, "label": "WAE-MMD", "training_seconds": 14.0,
        "eval": {"reconstruction_sq_l2": 24.0, "seed": 1, "examples": 500,
            "split": "test", "disentanglement": {"mig_per_factor": [0.3, 0.5]},
            "skipped": [{"metric": "fid"}]}});
    let agg = aggregate_values(&[&a, &b]).unwrap();
    assert_eq!(
        agg["eval"]["reconstruction_sq_l2"],
        json!({"mean": 22.0, "sd": 8f64.sqrt(), "n": 2})
    );
    assert_eq!(agg["training_seconds"]["mean"], json!(12.0));
    assert_eq!(agg["steps"], json!({"mean": 60.0, "sd": 0.0, "n": 2}));
    let mig = &agg["eval"]["disentanglement"]["mig_per_factor"];
    assert!(close(mig[0]["mean"].as_f64().unwrap(), 0.2), "{mig}");
    assert!(close(mig[1]["mean"].as_f64().unwrap(), 0.4), "{mig}");
    // Descriptions of the run, strings and lists of strings are not metrics.
    for absent in [&agg["epochs"], &agg["label"], &agg["eval"]["seed"]] {
        assert!(absent.is_null(), "{agg}");
    }
    assert!(agg["eval"]["examples"].is_null() && agg["eval"]["split"].is_null());
    assert!(agg["eval"]["skipped"].is_null(), "{agg}");
    // One seed: n = 1 and no sd.
    let one = json!({"eval": {"fid": 5.0}});
    assert_eq!(
        aggregate_values(&[&one]).unwrap()["eval"]["fid"],
        json!({"mean": 5.0, "sd": null, "n": 1})
    );
}

#[test]
fn the_aggregate_of_run_summaries_holds_their_metrics_over_seeds() {
    let m = runs(vec![
        summary(0, eval(20.0)),
        RunSummary {
            training_seconds: 14.0,
            ..summary(1, eval(24.0))
        },
    ]);
    let agg = m.aggregate().unwrap();
    assert_eq!(
        agg["eval"]["reconstruction_sq_l2"],
        json!({"mean": 22.0, "sd": 8f64.sqrt(), "n": 2})
    );
    assert_eq!(agg["training_seconds"]["mean"], json!(12.0));
    assert_eq!(agg["steps"], json!({"mean": 60.0, "sd": 0.0, "n": 2}));
    for absent in [
        &agg["epochs"],
        &agg["label"],
        &agg["seed"],
        &agg["eval"]["seed"],
        // The eval.json format's version describes the file, not the model.
        &agg["eval"]["schema_version"],
    ] {
        assert!(absent.is_null(), "{agg}");
    }
    assert!(agg["eval"]["examples"].is_null() && agg["eval"]["split"].is_null());
    assert_eq!(
        m.stats(|r| Some(r.eval.reconstruction_sq_l2)).unwrap().n,
        2,
        "stats and aggregate agree"
    );
    // A metric only one seed gave counts only that seed.
    let partly = runs(vec![
        summary(0, eval(20.0)),
        summary(
            1,
            EvalReport {
                sharpness_samples: None,
                ..eval(20.0)
            },
        ),
    ]);
    assert_eq!(partly.stats(|r| r.eval.sharpness_samples).unwrap().n, 1);
    assert_eq!(partly.stats(|r| r.eval.reconstruction_l1), None);
}

#[test]
fn table_cells_are_mean_plus_minus_sd_with_n() {
    let s = Stats::of(&[20.0, 24.0]);
    assert_eq!(fmt_stats(s, true, fmt_f64), "22.0 ± 2.828 (n = 2)");
    assert_eq!(
        fmt_stats(Stats::of(&[0.004, 0.006]), true, fmt_f64),
        "5.00e-3 ± 1.41e-3 (n = 2)"
    );
    assert_eq!(fmt_stats(Stats::of(&[7.0]), true, fmt_f64), "7.000 (n = 1)");
    assert_eq!(fmt_stats(Stats::of(&[7.0]), false, fmt_f64), "7.000");
    assert_eq!(fmt_stats(None, true, fmt_f64), "-");
    assert_eq!(
        fmt_stats(Stats::of(&[100.0, 100.0]), true, |x| format!("{x:.0}")),
        "100 ± 0 (n = 2)"
    );
}

#[test]
fn results_md_shows_mean_sd_n_and_the_seeds() {
    let args = crate::reproduce::tests::smoke_args(vec![0, 1]);
    let results = Results {
        args: &args,
        seeds: &args.seeds,
        command: "cargo xtask reproduce mnist --seeds 0,1".into(),
        models: vec![runs(vec![summary(0, eval(20.0)), summary(1, eval(24.0))])],
        failures: vec!["wae-mmd (seed 1): something".into()],
    };
    let md = results.markdown();
    assert!(md.contains("Seeds: 0, 1."), "{md}");
    assert!(
        md.contains("| WAE-MMD | 60 ± 0 (n = 2) | 10 ± 0 (n = 2) | 22.0 ± 2.828 (n = 2) (180.0 ± 0 (n = 2)) | 0.500 ± 0 (n = 2) |"),
        "{md}"
    );
    assert!(md.contains("- wae-mmd (seed 1): something"), "{md}");
    assert!(md.contains("](wae-mmd/seed-0/samples.png)"), "{md}");
    assert!(md.contains("\n500 test images;"), "{md}");
    let file = results.file().unwrap();
    assert_eq!(file.seeds, [0, 1]);
    let model = &file.models["wae-mmd"];
    assert_eq!(model.seeds["1"].eval.reconstruction_sq_l2, 24.0);
    assert_eq!(
        model.aggregate["eval"]["reconstruction_sq_l2"]["n"],
        json!(2)
    );
    // The file's keys are sorted at every depth, as they always were.
    let text = results.json().unwrap();
    let top: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  \"") && !l.starts_with("   "))
        .map(|l| l.trim().split('"').nth(1).unwrap())
        .collect();
    assert_eq!(
        top,
        [
            "command",
            "device",
            "experiment",
            "failures",
            "models",
            "paper",
            "profile",
            "seeds"
        ]
    );
    assert!(text.find("\"aggregate\"").unwrap() < text.find("\"label\"").unwrap());

    // One seed: plain values, n = 1 said once.
    let results = Results {
        seeds: &[0],
        models: vec![runs(vec![summary(0, eval(20.0))])],
        failures: vec![],
        ..results
    };
    let md = results.markdown();
    assert!(md.contains("(n = 1)") && !md.contains("±"), "{md}");
    assert!(
        md.contains("| WAE-MMD | 60 | 10 | 20.0 (180.0) | 0.500 |"),
        "{md}"
    );
}

#[test]
fn the_gmm_sampler_gets_its_own_columns_beside_the_priors() {
    let args = crate::reproduce::tests::smoke_args(vec![0]);
    let scores = |fid: f64| FeatureScores {
        fid,
        precision: 0.5,
        recall: 0.25,
        feature_dim: 128,
        kid: None,
    };
    let run = summary(
        0,
        EvalReport {
            classifier: Some(scores(30.0)),
            gmm_sampler: Some(GmmSamplerScores {
                components: 10,
                fit_images: 10_000,
                sharpness_samples: 0.02,
                classifier: Some(scores(12.0)),
                inception: None,
            }),
            ..eval(20.0)
        },
    );
    let results = Results {
        args: &args,
        seeds: &args.seeds,
        command: "cargo xtask reproduce mnist".into(),
        models: vec![runs(vec![run])],
        failures: vec![],
    };
    let md = results.markdown();
    assert!(
        md.contains("| FID-MNIST | precision | recall | FID-MNIST, GMM sampler | precision, GMM | recall, GMM |"),
        "{md}"
    );
    assert!(
        md.contains("| 30.0 | 0.500 | 0.250 | 12.0 | 0.500 | 0.250 |"),
        "{md}"
    );
    assert!(md.contains("`wae eval --sampler gmm:10`"), "{md}");
    assert!(!md.contains("FID (Inception)"), "{md}");
}

#[test]
fn disentanglement_scores_get_their_columns() {
    let args = crate::reproduce::tests::smoke_args(vec![0]);
    let run = summary(
        0,
        EvalReport {
            disentanglement: Some(Disentanglement {
                factor_vae: 0.75,
                factor_vae_train: 0.8,
                factor_vae_votes: [800, 800, 100],
                active_dims: 8,
                mig: 0.125,
                mig_per_factor: vec![0.1; 5],
                beta_vae_4_factors: None,
                beta_vae_5_factors: None,
            }),
            ..eval(20.0)
        },
    );
    let results = Results {
        args: &args,
        seeds: &args.seeds,
        command: "cargo xtask reproduce dsprites".into(),
        models: vec![runs(vec![run])],
        failures: vec![],
    };
    let md = results.markdown();
    assert!(
        md.contains(
            "| beta-VAE score, 4 factors | beta-VAE score, 5 factors | FactorVAE score | MIG |"
        ),
        "{md}"
    );
    assert!(md.contains("| - | - | 0.750 | 0.125 |"), "{md}");
}

#[test]
fn the_papers_numbers_are_keyed_by_model_beside_their_source() {
    let celeba = serde_json::to_value(paper_numbers(Experiment::Celeba)).unwrap();
    assert_eq!(celeba["wae-gan"], json!({"fid": 42.0, "sharpness": 6e-3}));
    assert!(celeba["source"].as_str().unwrap().contains("CelebA"));
    let mnist = serde_json::to_value(paper_numbers(Experiment::Mnist)).unwrap();
    assert_eq!(mnist.as_object().unwrap().len(), 1, "{mnist}");
}

#[test]
fn checks_catch_nan_and_a_reconstruction_no_better_than_untrained() {
    let spec = &models(Experiment::Mnist)[1];
    assert!(check(spec, 0, &summary(0, eval(20.0))).is_empty());
    let failures = check(spec, 2, &summary(2, eval(181.0)));
    assert_eq!(failures.len(), 1);
    assert!(failures[0].starts_with("wae-mmd (seed 2):"), "{failures:?}");
    let nan = RunSummary {
        non_finite_metrics: vec!["total".into()],
        ..summary(0, eval(20.0))
    };
    assert!(check(spec, 0, &nan)[0].contains("total"));
    let missing = RunSummary {
        untrained_reconstruction_sq_l2: None,
        ..summary(0, eval(20.0))
    };
    assert_eq!(check(spec, 0, &missing).len(), 1);
    assert_eq!(check(spec, 0, &summary(0, eval(f64::NAN))).len(), 1);
}
