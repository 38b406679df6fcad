//! What a reproduction reports: the per-seed summaries, their aggregate over seeds
//! (mean, sample standard deviation, n), the checks, `results.json` and `results.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Map, Value, json};

use super::{Experiment, ModelSpec, ReproduceArgs};

/// Keys whose numbers describe the run rather than measure the model: left out of the
/// aggregate (`steps` stays: the table shows it).
const NOT_METRICS: &[&str] = &["seed", "epochs", "step", "examples"];

/// The mean, sample standard deviation (ddof 1) and count of one number over seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// The mean.
    pub mean: f64,
    /// The sample standard deviation (divisor n - 1); `None` for a single value.
    pub sd: Option<f64>,
    /// How many values (seeds) it is over.
    pub n: usize,
}

impl Stats {
    /// The statistics of the finite values in `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Self> {
        let xs: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let n = xs.len();
        if n == 0 {
            return None;
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        let sd = (n > 1).then(|| {
            let squares: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
            (squares / (n - 1) as f64).sqrt()
        });
        Some(Self { mean, sd, n })
    }

    /// `{"mean": .., "sd": .. or null, "n": ..}`.
    fn to_json(self) -> Value {
        json!({"mean": self.mean, "sd": self.sd, "n": self.n})
    }
}

/// One model's runs, one per seed, each the summary its `done.json` holds.
#[derive(Debug, Clone)]
pub struct ModelRuns {
    /// The model.
    pub spec: ModelSpec,
    /// Seed -> that run's summary.
    pub runs: BTreeMap<u64, Value>,
}

impl ModelRuns {
    /// The statistics over seeds of the number at `path` in each run's summary (e.g.
    /// `["eval", "reconstruction_sq_l2"]`); runs where it is missing or not finite do not
    /// count.
    pub fn stats(&self, path: &[&str]) -> Option<Stats> {
        let values: Vec<f64> = self
            .runs
            .values()
            .filter_map(|run| path.iter().try_fold(run, |v, key| v.get(key)))
            .filter_map(Value::as_f64)
            .collect();
        Stats::of(&values)
    }

    /// The aggregate over seeds: the summary's shape with every numeric metric (arrays
    /// of numbers element by element) replaced by its [`Stats`].
    pub fn aggregate(&self) -> Value {
        let runs: Vec<&Value> = self.runs.values().collect();
        aggregate_values(&runs).unwrap_or_else(|| Value::Object(Map::new()))
    }

    /// The model's entry in `results.json`.
    fn to_json(&self) -> Value {
        let seeds: Map<String, Value> = self
            .runs
            .iter()
            .map(|(seed, run)| (seed.to_string(), run.clone()))
            .collect();
        json!({
            "label": self.spec.label,
            "preset": self.spec.preset,
            "seeds": seeds,
            "aggregate": self.aggregate(),
        })
    }
}

/// The aggregate of the same place in several runs: [`Stats`] for numbers, recursion
/// into objects (without [`NOT_METRICS`]) and into arrays of one length; `None` where
/// there is no number below.
fn aggregate_values(values: &[&Value]) -> Option<Value> {
    if values.iter().any(|v| v.is_number()) && values.iter().all(|v| v.is_number() || v.is_null()) {
        let xs: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
        return Stats::of(&xs).map(Stats::to_json);
    }
    if !values.is_empty() && values.iter().all(|v| v.is_object()) {
        let keys: BTreeSet<&String> = values
            .iter()
            .filter_map(|v| v.as_object())
            .flat_map(|m| m.keys())
            .collect();
        let mut out = Map::new();
        for key in keys {
            if NOT_METRICS.contains(&key.as_str()) {
                continue;
            }
            let children: Vec<&Value> = values.iter().filter_map(|v| v.get(key)).collect();
            if let Some(agg) = aggregate_values(&children) {
                out.insert(key.clone(), agg);
            }
        }
        return (!out.is_empty()).then_some(Value::Object(out));
    }
    let arrays: Vec<&Vec<Value>> = values.iter().filter_map(|v| v.as_array()).collect();
    if !arrays.is_empty() && arrays.len() == values.len() {
        let len = arrays[0].len();
        if len == 0 || arrays.iter().any(|a| a.len() != len) {
            return None;
        }
        let items: Option<Vec<Value>> = (0..len)
            .map(|i| aggregate_values(&arrays.iter().map(|a| &a[i]).collect::<Vec<_>>()))
            .collect();
        return items.map(Value::Array);
    }
    None
}

/// The checks one run must pass: finite losses, and a test reconstruction error below
/// the untrained model's. Each failure names the model and the seed.
pub fn check(spec: &ModelSpec, seed: u64, model: &Value) -> Vec<String> {
    let who = format!("{} (seed {seed})", spec.key);
    let mut failures = Vec::new();
    if let Some(bad) = model["non_finite_metrics"].as_array()
        && !bad.is_empty()
    {
        failures.push(format!(
            "{who}: non-finite values logged in metrics.jsonl: {}",
            bad.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let trained = model["eval"]["reconstruction_sq_l2"].as_f64();
    let untrained = model["untrained_reconstruction_sq_l2"].as_f64();
    match (trained, untrained) {
        (Some(t), Some(u)) if t.is_finite() && t < u => {}
        (Some(t), Some(u)) => failures.push(format!(
            "{who}: test reconstruction error {t} is not below the untrained model's {u}"
        )),
        _ => failures.push(format!(
            "{who}: reconstruction errors missing from eval.json"
        )),
    }
    failures
}

/// Everything `results.json` holds.
pub struct Results<'a> {
    /// The command's arguments.
    pub args: &'a ReproduceArgs,
    /// The seeds, in the order they ran.
    pub seeds: &'a [u64],
    /// The command line that makes these results.
    pub command: String,
    /// The models, in table order.
    pub models: Vec<ModelRuns>,
    /// The failed checks.
    pub failures: Vec<String>,
}

impl Results<'_> {
    /// `results.json`.
    pub fn to_json(&self) -> Value {
        let models: Map<String, Value> = self
            .models
            .iter()
            .map(|m| (m.spec.key.to_string(), m.to_json()))
            .collect();
        json!({
            "experiment": self.args.experiment.name(),
            "profile": self.args.profile.name(),
            "device": self.args.device.name(),
            "seeds": self.seeds,
            "command": self.command,
            "models": models,
            "paper": paper_numbers(self.args.experiment),
            "failures": self.failures,
        })
    }

    /// `results.md`: the table (mean ± sd over seeds), the paper's numbers where they
    /// exist, the failed checks and the first seed's pictures.
    pub fn markdown(&self) -> String {
        let args = self.args;
        let several = self.seeds.len() > 1;
        let mut s = String::new();
        s.push_str(&format!(
            "# `{}`, profile `{}`, device `{}`\n\nMade by `{}`.\n\n",
            args.experiment.name(),
            args.profile.name(),
            args.device.name(),
            self.command
        ));
        let seed_list = self
            .seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        if several {
            s.push_str(&format!(
                "Seeds: {seed_list}. Every number is `mean ± sd (n = k)` over the k seeds that \
                 gave it (sd: the sample standard deviation).\n\n"
            ));
        } else {
            s.push_str(&format!(
                "Seed: {seed_list}. One run per model: every number is a single value (n = 1).\n\n"
            ));
        }
        let models = &self.models;
        let has = |key: &str| {
            models
                .iter()
                .any(|m| m.runs.values().any(|r| !r["eval"][key].is_null()))
        };
        let num = |m: &ModelRuns, path: &[&str]| fmt_stats(m.stats(path), several, fmt_f64);
        let mut head = vec![
            "model",
            "steps",
            "train time (s)",
            "test recon. \\|\\|x - G(E(x))\\|\\|^2 (untrained)",
            "MMD^2(codes, prior)",
        ];
        if has("mmd_sampled_codes_vs_prior") {
            head.push("MMD^2(drawn codes, prior)");
        }
        head.push("sharpness of samples");
        if has("classifier") {
            head.extend(["FID-MNIST", "precision", "recall"]);
        }
        if has("inception") {
            head.extend(["FID (Inception)", "precision", "recall"]);
        }
        let has_gmm = |space: &str| {
            models.iter().any(|m| {
                m.runs
                    .values()
                    .any(|r| !r["eval"]["gmm_sampler"][space].is_null())
            })
        };
        if has_gmm("classifier") {
            head.extend(["FID-MNIST, GMM sampler", "precision, GMM", "recall, GMM"]);
        }
        if has_gmm("inception") {
            head.extend([
                "FID (Inception), GMM sampler",
                "precision, GMM",
                "recall, GMM",
            ]);
        }
        if has("disentanglement") {
            head.extend([
                "beta-VAE score, 4 factors",
                "beta-VAE score, 5 factors",
                "FactorVAE score",
                "MIG",
            ]);
        }
        s.push_str(&format!("| {} |\n", head.join(" | ")));
        s.push_str(&format!("|{}\n", " --- |".repeat(head.len())));
        let whole = |x: f64| format!("{x:.0}");
        for m in models {
            let mut row = vec![
                m.spec.label.to_string(),
                fmt_stats(m.stats(&["steps"]), several, whole),
                fmt_stats(m.stats(&["training_seconds"]), several, whole),
                format!(
                    "{} ({})",
                    num(m, &["eval", "reconstruction_sq_l2"]),
                    num(m, &["untrained_reconstruction_sq_l2"])
                ),
                num(m, &["eval", "mmd_codes_vs_prior"]),
            ];
            if has("mmd_sampled_codes_vs_prior") {
                row.push(num(m, &["eval", "mmd_sampled_codes_vs_prior"]));
            }
            row.push(num(m, &["eval", "sharpness_samples"]));
            for space in ["classifier", "inception"] {
                if has(space) {
                    for metric in ["fid", "precision", "recall"] {
                        row.push(num(m, &["eval", space, metric]));
                    }
                }
            }
            for space in ["classifier", "inception"] {
                if has_gmm(space) {
                    for metric in ["fid", "precision", "recall"] {
                        row.push(num(m, &["eval", "gmm_sampler", space, metric]));
                    }
                }
            }
            if has("disentanglement") {
                for variant in ["beta_vae_4_factors", "beta_vae_5_factors"] {
                    row.push(num(m, &["eval", "disentanglement", variant, "accuracy"]));
                }
                row.push(num(m, &["eval", "disentanglement", "factor_vae"]));
                row.push(num(m, &["eval", "disentanglement", "mig"]));
            }
            s.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        if has_gmm("classifier") || has_gmm("inception") {
            s.push_str(&format!(
                "\nGMM sampler: samples decoded from a {}-component full-covariance Gaussian \
                 mixture fitted by EM to the encoder means of 10,000 training images (`wae eval \
                 --sampler {}`), scored against the same test images as the prior's samples.\n",
                super::runner::GMM_SAMPLER.trim_start_matches("gmm:"),
                super::runner::GMM_SAMPLER
            ));
        }
        if has("mmd_sampled_codes_vs_prior") {
            s.push_str(
                "\nMMD^2(codes, prior) uses the encoder means; for random (Gaussian or \
                 uniform-noise) encoders MMD^2(drawn codes, prior) uses one code drawn from \
                 Q(z|x) per image (the aggregated posterior the WAE penalty matches).\n",
            );
        }
        if let Some(first) = models.first() {
            let examples = first
                .runs
                .values()
                .next()
                .map_or(Value::Null, |r| r["eval"]["examples"].clone());
            s.push_str(&format!(
                "\n{examples} test images; MMD^2 between two prior samples (the value of a perfect \
                 match, up to noise): {}; sharpness of the test images: {}.\n",
                num(first, &["eval", "mmd_prior_vs_prior"]),
                num(first, &["eval", "sharpness_test_images"]),
            ));
        }
        let paper = paper_numbers(args.experiment);
        s.push_str(&format!(
            "\nPaper: {}.\n",
            paper["source"].as_str().unwrap_or_default()
        ));
        if args.experiment == Experiment::Celeba {
            s.push_str("\n| model | paper FID |\n| --- | --- |\n");
            for key in ["vae", "wae-mmd", "wae-gan", "real test images"] {
                s.push_str(&format!("| {key} | {} |\n", fmt_num(&paper[key]["fid"])));
            }
            s.push_str(
                "\nThe paper's sharpness values are not printed beside ours: `tolstikhin/wae` \
                 (`compute_blurriness`) takes the Laplace variance on the pixels as the model \
                 sees them ([-1, 1] for CelebA, 4 times the variance on [0, 1]) and logs the \
                 minimum over samples; ours is the mean over samples on [0, 1] pixels.\n",
            );
        }
        if !self.failures.is_empty() {
            s.push_str("\n**Failed checks:**\n\n");
            for line in &self.failures {
                s.push_str(&format!("- {line}\n"));
            }
        }
        s.push_str("\n## Pictures\n");
        if several {
            s.push_str(&format!(
                "\nSeed {}'s; every seed's pictures are in its run folder `<model>/seed-<s>/`.\n",
                self.seeds[0]
            ));
        }
        for m in models {
            s.push_str(&format!("\n### {}\n\n", m.spec.label));
            let Some(run) = m.runs.get(&self.seeds[0]) else {
                continue;
            };
            if let Some(pics) = run["pictures"].as_array() {
                for p in pics.iter().filter_map(Value::as_str) {
                    let name = Path::new(p)
                        .file_stem()
                        .map(|x| x.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    s.push_str(&format!("![{} {name}]({p})\n", m.spec.key));
                }
            }
        }
        s
    }
}

/// The papers' numbers for the experiment, where there are any.
pub fn paper_numbers(experiment: Experiment) -> Value {
    match experiment {
        Experiment::Celeba => json!({
            "source": "Tolstikhin et al. 2018, CelebA 64x64, 10k samples (docs: PAPER.md)",
            "vae": {"fid": 63.0, "sharpness": 3e-3},
            "wae-mmd": {"fid": 55.0, "sharpness": 6e-3},
            "wae-gan": {"fid": 42.0, "sharpness": 6e-3},
            "real test images": {"fid": 2.0, "sharpness": 2e-2},
        }),
        Experiment::Mnist => json!({
            "source": "Tolstikhin et al. 2018 show MNIST samples, reconstructions and interpolations only (no numbers)",
        }),
        Experiment::FadingSquares | Experiment::Dsprites => json!({
            "source": "Rubenstein et al. 2018 report the finding qualitatively (pictures); no numbers are compared here",
        }),
    }
}

/// A number in a table: 3 significant-ish digits, scientific when very large or small.
pub(crate) fn fmt_f64(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() >= 1000.0 || x.abs() < 0.01 {
        format!("{x:.2e}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// [`fmt_f64`] of a JSON number, `-` for anything else.
fn fmt_num(v: &Value) -> String {
    v.as_f64().map_or("-".into(), fmt_f64)
}

/// A table cell: `mean ± sd (n = k)` when several seeds ran (`mean (n = 1)` where only
/// one gave the number), the plain value for a single-seed reproduction, `-` for none.
pub fn fmt_stats(stats: Option<Stats>, several_seeds: bool, fmt: impl Fn(f64) -> String) -> String {
    match stats {
        None => "-".into(),
        Some(s) if !several_seeds => fmt(s.mean),
        Some(Stats {
            mean,
            sd: Some(sd),
            n,
        }) => format!("{} ± {} (n = {n})", fmt(mean), fmt(sd)),
        Some(Stats { mean, n, .. }) => format!("{} (n = {n})", fmt(mean)),
    }
}

#[cfg(test)]
mod tests {
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

    fn runs(values: &[(u64, Value)]) -> ModelRuns {
        ModelRuns {
            spec: models(Experiment::Mnist)[1].clone(),
            runs: values.iter().cloned().collect(),
        }
    }

    #[test]
    fn the_aggregate_holds_every_numeric_metric_over_seeds() {
        let m = runs(&[
            (
                0,
                json!({"steps": 60, "epochs": 1, "label": "WAE-MMD", "training_seconds": 10.0,
                "eval": {"reconstruction_sq_l2": 20.0, "seed": 0, "examples": 500,
                    "split": "test", "disentanglement": {"mig_per_factor": [0.1, 0.3]},
                    "skipped": [{"metric": "fid"}]}}),
            ),
            (
                1,
                json!({"steps": 60, "epochs": 1, "label": "WAE-MMD", "training_seconds": 14.0,
                "eval": {"reconstruction_sq_l2": 24.0, "seed": 1, "examples": 500,
                    "split": "test", "disentanglement": {"mig_per_factor": [0.3, 0.5]},
                    "skipped": [{"metric": "fid"}]}}),
            ),
        ]);
        let agg = m.aggregate();
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
        assert_eq!(
            m.stats(&["eval", "reconstruction_sq_l2"]).unwrap().n,
            2,
            "stats and aggregate agree"
        );

        // One seed: n = 1 and no sd; a metric only one seed gave counts only that seed.
        let one = runs(&[(3, json!({"eval": {"fid": 5.0}}))]);
        assert_eq!(
            one.aggregate()["eval"]["fid"],
            json!({"mean": 5.0, "sd": null, "n": 1})
        );
        let partly = runs(&[(0, json!({"eval": {"fid": 5.0}})), (1, json!({"eval": {}}))]);
        assert_eq!(partly.stats(&["eval", "fid"]).unwrap().n, 1);
        assert_eq!(partly.stats(&["eval", "mig"]), None);
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
        let run = |recon: f64| {
            json!({"steps": 60, "training_seconds": 10.0, "untrained_reconstruction_sq_l2": 180.0,
                "eval": {"reconstruction_sq_l2": recon, "mmd_codes_vs_prior": 0.5,
                    "sharpness_samples": 0.02, "examples": 500, "mmd_prior_vs_prior": 0.0,
                    "sharpness_test_images": 0.05},
                "pictures": [format!("wae-mmd/seed-0/samples.png")]})
        };
        let results = Results {
            args: &args,
            seeds: &args.seeds,
            command: "cargo xtask reproduce mnist --seeds 0,1".into(),
            models: vec![runs(&[(0, run(20.0)), (1, run(24.0))])],
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
        let json = results.to_json();
        assert_eq!(json["seeds"], json!([0, 1]));
        assert_eq!(
            json["models"]["wae-mmd"]["seeds"]["1"]["eval"]["reconstruction_sq_l2"],
            json!(24.0)
        );
        assert_eq!(
            json["models"]["wae-mmd"]["aggregate"]["eval"]["reconstruction_sq_l2"]["n"],
            json!(2)
        );

        // One seed: plain values, n = 1 said once.
        let results = Results {
            seeds: &[0],
            models: vec![runs(&[(0, run(20.0))])],
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
        let scores = |fid: f64| json!({"fid": fid, "precision": 0.5, "recall": 0.25});
        let run = json!({"steps": 60, "training_seconds": 10.0,
            "untrained_reconstruction_sq_l2": 180.0,
            "eval": {"reconstruction_sq_l2": 20.0, "mmd_codes_vs_prior": 0.5,
                "sharpness_samples": 0.02, "classifier": scores(30.0),
                "gmm_sampler": {"components": 10, "classifier": scores(12.0)}}});
        let results = Results {
            args: &args,
            seeds: &args.seeds,
            command: "cargo xtask reproduce mnist".into(),
            models: vec![runs(&[(0, run)])],
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
    }

    #[test]
    fn checks_catch_nan_and_a_reconstruction_no_better_than_untrained() {
        let spec = &models(Experiment::Mnist)[1];
        let good = json!({"eval": {"reconstruction_sq_l2": 20.0},
            "untrained_reconstruction_sq_l2": 180.0, "non_finite_metrics": []});
        assert!(check(spec, 0, &good).is_empty());
        let worse = json!({"eval": {"reconstruction_sq_l2": 181.0},
            "untrained_reconstruction_sq_l2": 180.0, "non_finite_metrics": []});
        let failures = check(spec, 2, &worse);
        assert_eq!(failures.len(), 1);
        assert!(failures[0].starts_with("wae-mmd (seed 2):"), "{failures:?}");
        let nan = json!({"eval": {"reconstruction_sq_l2": 20.0},
            "untrained_reconstruction_sq_l2": 180.0, "non_finite_metrics": ["total"]});
        assert!(check(spec, 0, &nan)[0].contains("total"));
        let missing = json!({"eval": {}, "non_finite_metrics": []});
        assert_eq!(check(spec, 0, &missing).len(), 1);
    }
}
