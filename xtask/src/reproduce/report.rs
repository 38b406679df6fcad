//! What a reproduction reports: the per-seed summaries, their aggregate over seeds
//! (mean, sample standard deviation, n), the checks, `results.json` and `results.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use serde_json::{Map, Value};
use wae_train::evaluate::{EvalReport, FeatureScores};

use super::summary::RunSummary;
use super::{Experiment, ModelSpec, ReproduceArgs};

/// Keys whose numbers describe the run rather than measure the model: left out of the
/// aggregate (`steps` stays: the table shows it).
const NOT_METRICS: &[&str] = &["seed", "epochs", "step", "examples", "schema_version"];

/// The mean, sample standard deviation (ddof 1) and count of one number over seeds; in
/// the results files `{"mean": .., "sd": .. or null, "n": ..}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
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
}

/// One model's runs, one per seed, each the summary its `done.json` holds.
#[derive(Debug, Clone)]
pub struct ModelRuns {
    /// The model.
    pub spec: ModelSpec,
    /// Seed -> that run's summary.
    pub runs: BTreeMap<u64, RunSummary>,
}

impl ModelRuns {
    /// The statistics over seeds of the number `metric` picks from each run's summary
    /// (e.g. `|r| Some(r.eval.reconstruction_sq_l2)`); runs where it is `None` or not
    /// finite do not count.
    pub fn stats(&self, metric: impl Fn(&RunSummary) -> Option<f64>) -> Option<Stats> {
        let values: Vec<f64> = self.runs.values().filter_map(metric).collect();
        Stats::of(&values)
    }

    /// Whether some run's evaluation has what `part` picks.
    fn any_eval<T>(&self, part: impl Fn(&EvalReport) -> Option<T>) -> bool {
        self.runs.values().any(|r| part(&r.eval).is_some())
    }

    /// The aggregate over seeds: the summary's shape (as `done.json` holds it) with every
    /// numeric metric (arrays of numbers element by element) replaced by its [`Stats`].
    /// It walks the serialised summaries rather than the types, so that every number a
    /// summary gains is aggregated without a second list of fields to keep in step.
    pub fn aggregate(&self) -> Result<Value> {
        let runs = self
            .runs
            .values()
            .map(serde_json::to_value)
            .collect::<serde_json::Result<Vec<Value>>>()?;
        let runs: Vec<&Value> = runs.iter().collect();
        Ok(aggregate_values(&runs).unwrap_or_else(|| Value::Object(Map::new())))
    }

    /// The model's entry in `results.json`.
    fn entry(&self) -> Result<ModelEntry<'_>> {
        Ok(ModelEntry {
            label: self.spec.label,
            preset: self.spec.preset,
            seeds: self
                .runs
                .iter()
                .map(|(seed, run)| (seed.to_string(), run))
                .collect(),
            aggregate: self.aggregate()?,
        })
    }
}

/// A model's entry in `results.json` (under `models.<model>`).
#[derive(Debug, Serialize)]
struct ModelEntry<'a> {
    /// The model's label in tables.
    label: &'a str,
    /// The full-size preset.
    preset: &'a str,
    /// Seed -> that run's summary.
    seeds: BTreeMap<String, &'a RunSummary>,
    /// [`ModelRuns::aggregate`].
    aggregate: Value,
}

/// Everything `results.json` holds.
#[derive(Debug, Serialize)]
struct ResultsFile<'a> {
    /// The experiment's name.
    experiment: &'a str,
    /// The profile's name.
    profile: &'a str,
    /// The device's name.
    device: &'a str,
    /// The seeds, in the order they ran.
    seeds: &'a [u64],
    /// The command line that makes these results.
    command: &'a str,
    /// Model key -> its runs and their aggregate.
    models: BTreeMap<&'a str, ModelEntry<'a>>,
    /// The papers' numbers.
    paper: PaperNumbers,
    /// The failed checks.
    failures: &'a [String],
}

/// The aggregate of the same place in several runs: [`Stats`] for numbers, recursion
/// into objects (without [`NOT_METRICS`]) and into arrays of one length; `None` where
/// there is no number below.
fn aggregate_values(values: &[&Value]) -> Option<Value> {
    if values.iter().any(|v| v.is_number()) && values.iter().all(|v| v.is_number() || v.is_null()) {
        let xs: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
        return Stats::of(&xs).map(|s| serde_json::to_value(s).expect("numbers serialise"));
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
pub fn check(spec: &ModelSpec, seed: u64, run: &RunSummary) -> Vec<String> {
    let who = format!("{} (seed {seed})", spec.key);
    let mut failures = Vec::new();
    if !run.non_finite_metrics.is_empty() {
        failures.push(format!(
            "{who}: non-finite values logged in metrics.jsonl: {}",
            run.non_finite_metrics.join(", ")
        ));
    }
    let trained = run.eval.reconstruction_sq_l2;
    match run.untrained_reconstruction_sq_l2 {
        Some(u) if trained.is_finite() && trained < u => {}
        Some(u) => failures.push(format!(
            "{who}: test reconstruction error {trained} is not below the untrained model's {u}"
        )),
        None => failures.push(format!(
            "{who}: reconstruction errors missing from eval.json"
        )),
    }
    failures
}

/// The two feature spaces sample quality is scored in.
#[derive(Debug, Clone, Copy)]
enum Space {
    /// The MNIST classifier's (`eval.json` field `classifier`).
    Classifier,
    /// Inception-v3's pool3 (`inception`).
    Inception,
}

impl Space {
    /// Both, in table order.
    const ALL: [Space; 2] = [Space::Classifier, Space::Inception];

    /// The scores of the prior's samples in this space.
    fn prior(self, eval: &EvalReport) -> Option<FeatureScores> {
        match self {
            Space::Classifier => eval.classifier,
            Space::Inception => eval.inception,
        }
    }

    /// The scores of the GMM sampler's samples in this space.
    fn gmm(self, eval: &EvalReport) -> Option<FeatureScores> {
        let gmm = eval.gmm_sampler.as_ref()?;
        match self {
            Space::Classifier => gmm.classifier,
            Space::Inception => gmm.inception,
        }
    }

    /// The table's headers for the prior's samples.
    fn headers(self) -> [&'static str; 3] {
        match self {
            Space::Classifier => ["FID-MNIST", "precision", "recall"],
            Space::Inception => ["FID (Inception)", "precision", "recall"],
        }
    }

    /// The table's headers for the GMM sampler's samples.
    fn gmm_headers(self) -> [&'static str; 3] {
        match self {
            Space::Classifier => ["FID-MNIST, GMM sampler", "precision, GMM", "recall, GMM"],
            Space::Inception => [
                "FID (Inception), GMM sampler",
                "precision, GMM",
                "recall, GMM",
            ],
        }
    }
}

/// The three scores of a feature space, in table order: FID, precision, recall.
const SCORES: [fn(&FeatureScores) -> f64; 3] = [|s| s.fid, |s| s.precision, |s| s.recall];

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
    /// What `results.json` holds.
    fn file(&self) -> Result<ResultsFile<'_>> {
        Ok(ResultsFile {
            experiment: self.args.experiment.name(),
            profile: self.args.profile.name(),
            device: self.args.device.name(),
            seeds: self.seeds,
            command: &self.command,
            models: self
                .models
                .iter()
                .map(|m| Ok((m.spec.key, m.entry()?)))
                .collect::<Result<_>>()?,
            paper: paper_numbers(self.args.experiment),
            failures: &self.failures,
        })
    }

    /// `results.json`.
    pub fn json(&self) -> Result<String> {
        super::runner::json_text(&self.file()?)
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
        let any = |part: &dyn Fn(&EvalReport) -> bool| {
            models.iter().any(|m| m.any_eval(|e| part(e).then_some(())))
        };
        let has_sampled = any(&|e| e.mmd_sampled_codes_vs_prior.is_some());
        let has_space = Space::ALL.map(|space| any(&|e| space.prior(e).is_some()));
        let has_gmm = Space::ALL.map(|space| any(&|e| space.gmm(e).is_some()));
        let has_disentanglement = any(&|e| e.disentanglement.is_some());
        let num = |m: &ModelRuns, metric: &dyn Fn(&RunSummary) -> Option<f64>| {
            fmt_stats(m.stats(metric), several, fmt_f64)
        };
        let mut head = vec![
            "model",
            "steps",
            "train time (s)",
            "test recon. \\|\\|x - G(E(x))\\|\\|^2 (untrained)",
            "MMD^2(codes, prior)",
        ];
        if has_sampled {
            head.push("MMD^2(drawn codes, prior)");
        }
        head.push("sharpness of samples");
        for (space, has) in Space::ALL.iter().zip(has_space) {
            if has {
                head.extend(space.headers());
            }
        }
        for (space, has) in Space::ALL.iter().zip(has_gmm) {
            if has {
                head.extend(space.gmm_headers());
            }
        }
        if has_disentanglement {
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
                fmt_stats(m.stats(|r| Some(r.steps as f64)), several, whole),
                fmt_stats(m.stats(|r| Some(r.training_seconds)), several, whole),
                format!(
                    "{} ({})",
                    num(m, &|r| Some(r.eval.reconstruction_sq_l2)),
                    num(m, &|r| r.untrained_reconstruction_sq_l2)
                ),
                num(m, &|r| Some(r.eval.mmd_codes_vs_prior)),
            ];
            if has_sampled {
                row.push(num(m, &|r| r.eval.mmd_sampled_codes_vs_prior));
            }
            row.push(num(m, &|r| r.eval.sharpness_samples));
            for (space, has) in Space::ALL.into_iter().zip(has_space) {
                if has {
                    for score in SCORES {
                        row.push(num(m, &|r| space.prior(&r.eval).as_ref().map(score)));
                    }
                }
            }
            for (space, has) in Space::ALL.into_iter().zip(has_gmm) {
                if has {
                    for score in SCORES {
                        row.push(num(m, &|r| space.gmm(&r.eval).as_ref().map(score)));
                    }
                }
            }
            if has_disentanglement {
                let d = |r: &RunSummary| r.eval.disentanglement.clone();
                row.push(num(m, &|r| Some(d(r)?.beta_vae_4_factors?.accuracy)));
                row.push(num(m, &|r| Some(d(r)?.beta_vae_5_factors?.accuracy)));
                row.push(num(m, &|r| Some(d(r)?.factor_vae)));
                row.push(num(m, &|r| Some(d(r)?.mig)));
            }
            s.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        if has_gmm.contains(&true) {
            s.push_str(&format!(
                "\nGMM sampler: samples decoded from a {}-component full-covariance Gaussian \
                 mixture fitted by EM to the encoder means of 10,000 training images (`wae eval \
                 --sampler {}`), scored against the same test images as the prior's samples.\n",
                super::runner::GMM_SAMPLER.trim_start_matches("gmm:"),
                super::runner::GMM_SAMPLER
            ));
        }
        if has_sampled {
            s.push_str(
                "\nMMD^2(codes, prior) uses the encoder means; for random (Gaussian or \
                 uniform-noise) encoders MMD^2(drawn codes, prior) uses one code drawn from \
                 Q(z|x) per image (the aggregated posterior the WAE penalty matches).\n",
            );
        }
        if let Some(first) = models.first()
            && let Some(run) = first.runs.values().next()
        {
            s.push_str(&format!(
                "\n{} test images; MMD^2 between two prior samples (the value of a perfect \
                 match, up to noise): {}; sharpness of the test images: {}.\n",
                run.eval.examples,
                num(first, &|r| Some(r.eval.mmd_prior_vs_prior)),
                num(first, &|r| r.eval.sharpness_test_images),
            ));
        }
        let paper = paper_numbers(args.experiment);
        s.push_str(&format!("\nPaper: {}.\n", paper.source));
        if args.experiment == Experiment::Celeba {
            s.push_str("\n| model | paper FID |\n| --- | --- |\n");
            for (key, numbers) in &paper.models {
                s.push_str(&format!("| {key} | {} |\n", fmt_f64(numbers.fid)));
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
            for p in &run.pictures {
                let name = Path::new(p)
                    .file_stem()
                    .map(|x| x.to_string_lossy().into_owned())
                    .unwrap_or_default();
                s.push_str(&format!("![{} {name}]({p})\n", m.spec.key));
            }
        }
        s
    }
}

/// The papers' numbers for an experiment (`results.json` field `paper`: `source` and
/// one object per model, keyed by the model).
#[derive(Debug, Clone, PartialEq)]
pub struct PaperNumbers {
    /// Where they come from (or why there are none).
    pub source: &'static str,
    /// Model (or `real test images`) -> its numbers, in the paper's table order.
    pub models: Vec<(&'static str, PaperModel)>,
}

impl Serialize for PaperNumbers {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1 + self.models.len()))?;
        map.serialize_entry("source", self.source)?;
        for (model, numbers) in &self.models {
            map.serialize_entry(model, numbers)?;
        }
        map.end()
    }
}

/// One model's numbers in a paper.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PaperModel {
    /// FID.
    pub fid: f64,
    /// Sharpness (the paper's measure; see `results.md`).
    pub sharpness: f64,
}

/// The papers' numbers for the experiment, where there are any.
pub fn paper_numbers(experiment: Experiment) -> PaperNumbers {
    let model = |fid, sharpness| PaperModel { fid, sharpness };
    match experiment {
        Experiment::Celeba => PaperNumbers {
            source: "Tolstikhin et al. 2018, CelebA 64x64, 10k samples (docs: PAPER.md)",
            models: vec![
                ("vae", model(63.0, 3e-3)),
                ("wae-mmd", model(55.0, 6e-3)),
                ("wae-gan", model(42.0, 6e-3)),
                ("real test images", model(2.0, 2e-2)),
            ],
        },
        Experiment::Mnist => PaperNumbers {
            source: "Tolstikhin et al. 2018 show MNIST samples, reconstructions and interpolations only (no numbers)",
            models: Vec::new(),
        },
        Experiment::FadingSquares | Experiment::Dsprites => PaperNumbers {
            source: "Rubenstein et al. 2018 report the finding qualitatively (pictures); no numbers are compared here",
            models: Vec::new(),
        },
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
pub(crate) mod tests;
