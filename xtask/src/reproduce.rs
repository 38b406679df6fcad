//! `cargo xtask reproduce EXPERIMENT`: train every model of an experiment once per seed,
//! evaluate it, draw its pictures and write the comparison (`results.json`, `results.md`),
//! every number a mean over the seeds.
//!
//! The work is done by the `wae` binary (built here in release mode, with `--features
//! cuda` for `--device cuda`), one subprocess per step, so a reproduction is exactly a
//! sequence of commands a user could type; each is printed before it runs. Layout of
//! the output folder:
//!
//! ```text
//! OUT/results.json, OUT/results.md      the comparison (every seed, and the aggregate)
//! OUT/configs/<model>-seed-<s>.toml     the config each run was trained with
//! OUT/<model>/seed-<s>/                 a `wae train` run directory: config.toml,
//!                                       metrics.jsonl, checkpoints/, eval.json,
//!                                       the pictures, done.json once finished
//! OUT/untrained/<model>/seed-<s>/       the same config after 0 steps (the baseline
//!                                       a trained model's reconstruction must beat)
//! ```
//!
//! Re-running skips runs whose `done.json` exists (for the same config) and resumes a
//! run whose directory has a checkpoint; a config that differs from the one a folder
//! was trained with is an error rather than a silent mix. The runs are in
//! [`runner`], the aggregate and the two results files in [`report`].

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde::Deserialize;
pub(crate) use wae_train::DeviceChoice;
use wae_train::{TrainConfig, preset};

use crate::workspace::workspace_root;
use report::{ModelRuns, Results, check};
use runner::{Runner, build_wae, write_atomic};

pub(crate) mod report;
pub(crate) mod runner;
mod slurm;
pub(crate) mod summary;

#[cfg(test)]
mod committed_results;

/// Arguments of `cargo xtask reproduce`.
#[derive(Debug, Args)]
#[command(
    after_help = "Profiles: smoke = a minute or two on 2 CPU cores (for CI: fails when a \
    model's loss is NaN or its test reconstruction error is not below the untrained model's); \
    cpu = reduced width and epochs (see docs/results/README.md for the time it takes); \
    paper = the exact settings of docs (for a GPU: --device cuda).\n\n\
    Examples:\n  \
    cargo xtask reproduce mnist --profile smoke\n  \
    cargo xtask reproduce mnist --profile smoke --seeds 0,1,2\n  \
    cargo xtask reproduce mnist --profile cpu --out docs/results/mnist-cpu-profile\n  \
    cargo xtask reproduce mnist --profile paper --device cuda\n  \
    cargo xtask reproduce fading-squares --models wae-mmd-random,wae-mmd-det --seeds 0,1,2"
)]
pub struct ReproduceArgs {
    /// The experiment.
    #[arg(value_enum)]
    pub experiment: Experiment,
    /// How large a run.
    #[arg(long, value_enum, default_value = "cpu")]
    pub profile: Profile,
    /// Where the networks run.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Which models (comma-separated; default: all of the experiment's).
    #[arg(long, value_delimiter = ',')]
    pub models: Option<Vec<String>>,
    /// Output folder [default: target/reproduce/<experiment>-<profile>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Data directory passed to `wae` (MNIST IDX files, or CelebA's cache).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// MNIST classifier weights for FID-MNIST [default: target/wae/mnist-classifier.safetensors,
    /// trained there first if missing; the smoke profile skips FID].
    #[arg(long)]
    pub classifier: Option<PathBuf>,
    /// pytorch-fid Inception weights (.pth) for the Inception FID (slow on a CPU).
    #[arg(long)]
    pub inception: Option<PathBuf>,
    /// Seeds (comma-separated): every model is trained once per seed, in OUT/<model>/seed-<s>/,
    /// and the tables give mean ± sd over them. `--seed N` is an old spelling of `--seeds N`.
    #[arg(long, value_delimiter = ',', default_value = "0", alias = "seed")]
    pub seeds: Vec<u64>,
    /// Use this `wae` binary instead of building one (for tests, and the Slurm tasks).
    #[arg(long, hide = true)]
    pub wae_bin: Option<PathBuf>,
    /// Where the runs happen: here, or as a Slurm job array (one task per model x seed,
    /// each running this command for its model and seed; the table is written here when
    /// they are done). See docs/sweeps.md.
    #[arg(long, value_enum, default_value = "local")]
    pub executor: crate::sweep::Executor,
    /// With `--executor slurm`: submit and return; run the same command without
    /// `--executor` afterwards to write the table.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub slurm: crate::sweep::slurm::SlurmArgs,
}

/// The experiments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Experiment {
    /// VAE, WAE-MMD and WAE-GAN on MNIST (paper section 4).
    Mnist,
    /// VAE, WAE-MMD and WAE-GAN on CelebA 64x64 (needs `cargo xtask download celeba`).
    Celeba,
    /// WAE-MMD with d_z = 2 on fading squares: deterministic vs Gaussian encoder.
    FadingSquares,
    /// WAE-MMD (deterministic, random encoder) vs beta-VAE on dSprites.
    Dsprites,
}

impl Experiment {
    fn name(self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::Celeba => "celeba",
            Self::FadingSquares => "fading-squares",
            Self::Dsprites => "dsprites",
        }
    }
}

/// The size of a reproduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// A minute or two on 2 CPU cores; for CI.
    Smoke,
    /// Reduced width and epochs: what 2 CPU cores give in about an hour.
    Cpu,
    /// The papers' settings (for a GPU).
    Paper,
}

impl Profile {
    fn name(self) -> &'static str {
        match self {
            Self::Smoke => "smoke",
            Self::Cpu => "cpu",
            Self::Paper => "paper",
        }
    }
}

/// One model of an experiment: its key in `results.json`, its label, and how its
/// config is made for a profile.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// Key (folder name, `--models` value).
    pub key: &'static str,
    /// Label in tables.
    pub label: &'static str,
    /// The full-size preset.
    pub preset: &'static str,
}

/// One experiment of `xtask/experiments.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExperimentTable {
    /// Sizes of the smoke profile.
    smoke: SmokeSizes,
    /// The models run by default, in table order.
    models: Vec<ModelEntry>,
    /// Models run only when `--models` names them.
    #[serde(default)]
    extra_models: Vec<ModelEntry>,
}

/// How the smoke profile shrinks an experiment's presets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmokeSizes {
    width_div: usize,
    train_examples: usize,
    batch_size: usize,
}

/// A model of `xtask/experiments.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelEntry {
    key: String,
    label: String,
    preset: String,
}

/// `xtask/experiments.toml`, parsed once.
static MATRIX: LazyLock<BTreeMap<String, ExperimentTable>> = LazyLock::new(|| {
    toml::from_str(include_str!("../experiments.toml"))
        .unwrap_or_else(|e| panic!("xtask/experiments.toml: {e}"))
});

/// The table of `experiment` in `xtask/experiments.toml` (every experiment has one: a
/// test checks).
fn table(experiment: Experiment) -> &'static ExperimentTable {
    MATRIX
        .get(experiment.name())
        .unwrap_or_else(|| panic!("xtask/experiments.toml has no [{}]", experiment.name()))
}

fn specs(entries: &'static [ModelEntry]) -> Vec<ModelSpec> {
    entries
        .iter()
        .map(|m| ModelSpec {
            key: &m.key,
            label: &m.label,
            preset: &m.preset,
        })
        .collect()
}

/// The models of an experiment, in table order.
pub fn models(experiment: Experiment) -> Vec<ModelSpec> {
    specs(&table(experiment).models)
}

/// Models an experiment runs only when `--models` names them (newer objectives that
/// are not part of the papers' comparison).
pub fn extra_models(experiment: Experiment) -> Vec<ModelSpec> {
    specs(&table(experiment).extra_models)
}

/// Test images evaluated per profile.
fn eval_examples(profile: Profile) -> usize {
    match profile {
        Profile::Smoke => 500,
        Profile::Cpu | Profile::Paper => 10_000,
    }
}

/// The config of `spec` under `profile`: the preset, its CPU variant, or a tiny version.
pub fn profile_config(
    experiment: Experiment,
    spec: &ModelSpec,
    profile: Profile,
    seed: u64,
) -> Result<TrainConfig> {
    let mut cfg = match profile {
        Profile::Paper => preset(spec.preset)?,
        Profile::Cpu => preset(&format!("{}-cpu", spec.preset))?,
        Profile::Smoke => {
            let full = preset(spec.preset)?;
            let smoke = &table(experiment).smoke;
            let (width_div, train, batch) =
                (smoke.width_div, smoke.train_examples, smoke.batch_size);
            let mut cfg = wae_train::presets::cpu_variant(full, width_div, 1);
            cfg.data.train_examples = Some(train);
            cfg.data.test_examples = Some(eval_examples(profile));
            cfg.training.batch_size = batch;
            cfg.training.log_every_steps = 5;
            cfg.training.checkpoint_every_steps = 30;
            cfg.pretrain.sample_size = cfg.pretrain.sample_size.min(100);
            cfg.pretrain.max_steps = cfg.pretrain.max_steps.min(10);
            cfg.description = format!(
                "{} (reproduce smoke profile: width / {width_div}, {train} training images, \
                 batch {batch}, 1 epoch)",
                spec.preset
            );
            cfg
        }
    };
    cfg.seed = seed;
    // The run's own end-of-training evaluation stays short: `wae eval` does the full one.
    cfg.training.eval_examples = cfg
        .training
        .eval_examples
        .min(eval_examples(profile))
        .min(2000);
    cfg.validate()?;
    Ok(cfg)
}

/// Runs `cargo xtask reproduce`: every selected model once per seed, then the aggregate.
pub fn run(args: &ReproduceArgs) -> Result<()> {
    let started = Instant::now();
    let specs = selected_models(args)?;
    let seeds = checked_seeds(&args.seeds)?;
    let out = args.out.clone().unwrap_or_else(|| {
        workspace_root()
            .join("target")
            .join("reproduce")
            .join(format!(
                "{}-{}",
                args.experiment.name(),
                args.profile.name()
            ))
    });
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let wae = match &args.wae_bin {
        Some(path) => path.clone(),
        None => build_wae(args.device, args.profile != Profile::Smoke)?,
    };
    let runner = Runner {
        wae,
        args,
        out: out.clone(),
    };
    for spec in &specs {
        runner.refuse_single_seed_layout(spec)?;
    }
    let classifier = runner.classifier()?;
    if args.executor == crate::sweep::Executor::Slurm
        && !slurm::run_array(
            args,
            &out,
            &runner.wae,
            classifier.as_deref(),
            &specs,
            &seeds,
        )?
    {
        return Ok(());
    }
    let mut models: Vec<ModelRuns> = specs
        .iter()
        .map(|spec| ModelRuns {
            spec: spec.clone(),
            runs: BTreeMap::new(),
        })
        .collect();
    let mut failures = Vec::new();
    // Seed by seed, so that an interrupted reproduction has whole comparisons first.
    for &seed in &seeds {
        for model in &mut models {
            let spec = &model.spec;
            eprintln!(
                "== {} / {} ({}), seed {seed} ==",
                args.experiment.name(),
                spec.key,
                spec.label
            );
            let cfg = profile_config(args.experiment, spec, args.profile, seed)?;
            let summary = runner
                .model(spec, seed, &cfg, classifier.as_deref())
                .with_context(|| {
                    format!(
                        "model `{}` of {}, seed {seed}",
                        spec.key,
                        args.experiment.name()
                    )
                })?;
            failures.extend(check(spec, seed, &summary));
            model.runs.insert(seed, summary);
        }
    }
    let results = Results {
        args,
        seeds: &seeds,
        command: command_line(args, &seeds),
        models,
        failures,
    };
    let json_path = out.join("results.json");
    write_atomic(&json_path, &results.json()?)?;
    let md_path = out.join("results.md");
    write_atomic(&md_path, &results.markdown())?;
    eprintln!(
        "wrote {} and {} ({:.0} s)",
        json_path.display(),
        md_path.display(),
        started.elapsed().as_secs_f64()
    );
    print!("{}", fs::read_to_string(&md_path)?);
    if !results.failures.is_empty() {
        bail!(
            "{} check(s) failed:\n  {}",
            results.failures.len(),
            results.failures.join("\n  ")
        );
    }
    Ok(())
}

/// The seeds to run: at least one, none twice.
pub(crate) fn checked_seeds(seeds: &[u64]) -> Result<Vec<u64>> {
    if seeds.is_empty() {
        bail!("--seeds is empty; give at least one seed, e.g. --seeds 0,1,2");
    }
    for (i, seed) in seeds.iter().enumerate() {
        if seeds[..i].contains(seed) {
            bail!("seed {seed} is given twice in --seeds");
        }
    }
    Ok(seeds.to_vec())
}

fn selected_models(args: &ReproduceArgs) -> Result<Vec<ModelSpec>> {
    let all = models(args.experiment);
    let Some(wanted) = &args.models else {
        return Ok(all);
    };
    let all: Vec<ModelSpec> = all
        .into_iter()
        .chain(extra_models(args.experiment))
        .collect();
    let mut picked = Vec::new();
    for name in wanted {
        match all.iter().find(|m| m.key == name.trim()) {
            Some(m) => picked.push(m.clone()),
            None => bail!(
                "unknown model `{}` for experiment {}; known: {}",
                name,
                args.experiment.name(),
                all.iter().map(|m| m.key).collect::<Vec<_>>().join(", ")
            ),
        }
    }
    if picked.is_empty() {
        bail!("--models is empty");
    }
    Ok(picked)
}

/// The command line that makes these results (the seeds always named).
fn command_line(args: &ReproduceArgs, seeds: &[u64]) -> String {
    let mut s = format!(
        "cargo xtask reproduce {} --profile {} --device {}",
        args.experiment.name(),
        args.profile.name(),
        args.device.name()
    );
    if let Some(m) = &args.models {
        s.push_str(&format!(" --models {}", m.join(",")));
    }
    let seeds: Vec<String> = seeds.iter().map(u64::to_string).collect();
    s.push_str(&format!(" --seeds {}", seeds.join(",")));
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::Parser;

    /// `cargo xtask reproduce ...` parsed on its own.
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ReproduceArgs,
    }

    pub(crate) fn parse(line: &[&str]) -> Result<ReproduceArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("reproduce").chain(line.iter().copied()))
            .map(|c| c.args)
    }

    /// Arguments of a smoke reproduction of MNIST with these seeds.
    pub(crate) fn smoke_args(seeds: Vec<u64>) -> ReproduceArgs {
        let mut args = parse(&["mnist", "--profile", "smoke"]).unwrap();
        args.seeds = seeds;
        args
    }

    #[test]
    fn every_model_has_a_valid_config_in_every_profile() {
        for experiment in Experiment::value_variants() {
            for spec in models(*experiment)
                .into_iter()
                .chain(extra_models(*experiment))
            {
                for profile in Profile::value_variants() {
                    let cfg = profile_config(*experiment, &spec, *profile, 3)
                        .unwrap_or_else(|e| panic!("{experiment:?} {} {profile:?}: {e}", spec.key));
                    assert_eq!(cfg.seed, 3);
                    if *profile == Profile::Smoke {
                        assert_eq!(cfg.training.epochs, 1);
                        assert!(cfg.data.train_examples.unwrap() <= 3000);
                    }
                }
            }
        }
    }

    #[test]
    fn the_seed_list_parses() {
        let args = parse(&["mnist", "--profile", "smoke", "--seeds", "0,1,2"]).unwrap();
        assert_eq!(args.seeds, vec![0, 1, 2]);
        assert_eq!(parse(&["mnist"]).unwrap().seeds, vec![0], "default");
        assert_eq!(
            parse(&["mnist", "--seed", "7"]).unwrap().seeds,
            vec![7],
            "the old --seed N means --seeds N"
        );
        assert_eq!(
            parse(&["mnist", "--seeds", "3", "--seeds", "5"])
                .unwrap()
                .seeds,
            vec![3, 5]
        );
        assert!(parse(&["mnist", "--seeds", "0,x"]).is_err());
        assert!(parse(&["mnist", "--seeds", "-1"]).is_err());
        assert_eq!(checked_seeds(&[2, 0, 1]).unwrap(), vec![2, 0, 1]);
        let err = checked_seeds(&[0, 1, 0]).unwrap_err().to_string();
        assert!(err.contains("seed 0 is given twice"), "{err}");
        assert!(checked_seeds(&[]).is_err());
    }

    #[test]
    fn the_command_line_names_the_seeds() {
        let args = smoke_args(vec![0, 1]);
        assert_eq!(
            command_line(&args, &args.seeds),
            "cargo xtask reproduce mnist --profile smoke --device cpu --seeds 0,1"
        );
        let again = parse(&[
            "mnist",
            "--profile",
            "smoke",
            "--device",
            "cpu",
            "--seeds",
            "0,1",
        ])
        .unwrap();
        assert_eq!(again.seeds, args.seeds);
    }

    /// `xtask/experiments.toml` has exactly the experiments of the command line, with
    /// distinct model keys (the presets they name are checked above, in every profile).
    #[test]
    fn the_experiment_matrix_matches_the_command_line() {
        let names: Vec<&str> = Experiment::value_variants()
            .iter()
            .map(|e| e.name())
            .collect();
        let in_file: Vec<&str> = MATRIX.keys().map(String::as_str).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(in_file, sorted);
        for experiment in Experiment::value_variants() {
            let mut keys: Vec<&str> = models(*experiment)
                .iter()
                .chain(&extra_models(*experiment))
                .map(|m| m.key)
                .collect();
            assert!(!keys.is_empty(), "{experiment:?}");
            keys.sort_unstable();
            let before = keys.len();
            keys.dedup();
            assert_eq!(keys.len(), before, "{experiment:?}: a model key twice");
        }
        assert_eq!(models(Experiment::Mnist)[1].preset, "mnist-wae-mmd");
        assert_eq!(extra_models(Experiment::Celeba).len(), 0);
    }

    #[test]
    fn unknown_models_are_refused_with_the_known_ones() {
        let args = ReproduceArgs {
            models: Some(vec!["wae-mmd".into(), "wae-gna".into()]),
            ..smoke_args(vec![0])
        };
        let err = selected_models(&args).unwrap_err().to_string();
        assert!(
            err.contains("wae-gna") && err.contains("vae, wae-mmd, wae-gan"),
            "{err}"
        );
    }
}
