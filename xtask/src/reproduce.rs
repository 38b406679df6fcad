//! `cargo xtask reproduce EXPERIMENT`: train every model of an experiment, evaluate it,
//! draw its pictures and write the comparison (`results.json`, `results.md`).
//!
//! The work is done by the `wae` binary (built here in release mode, with `--features
//! cuda` for `--device cuda`), one subprocess per step, so a reproduction is exactly a
//! sequence of commands a user could type; each is printed before it runs. Layout of
//! the output folder:
//!
//! ```text
//! OUT/results.json, OUT/results.md      the comparison
//! OUT/<model>/                          a `wae train` run directory: config.toml,
//!                                       metrics.jsonl, checkpoints/, eval.json,
//!                                       the pictures, done.json once finished
//! OUT/untrained/<model>/                the same config after 0 steps (the baseline
//!                                       a trained model's reconstruction must beat)
//! ```
//!
//! Re-running skips models whose `done.json` exists (for the same config) and resumes a
//! model whose run directory has a checkpoint; a config that differs from the one a
//! folder was trained with is an error rather than a silent mix.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use wae_train::{TrainConfig, preset};

use crate::workspace::{target_dir, workspace_root};

/// Arguments of `cargo xtask reproduce`.
#[derive(Debug, Args)]
#[command(
    after_help = "Profiles: smoke = a minute or two on 2 CPU cores (for CI: fails when a \
    model's loss is NaN or its test reconstruction error is not below the untrained model's); \
    cpu = reduced width and epochs (see docs/results/README.md for the time it takes); \
    paper = the exact settings of docs (for a GPU: --device cuda).\n\n\
    Examples:\n  \
    cargo xtask reproduce mnist --profile smoke\n  \
    cargo xtask reproduce mnist --profile cpu --out docs/results/mnist-cpu-profile\n  \
    cargo xtask reproduce mnist --profile paper --device cuda\n  \
    cargo xtask reproduce fading-squares --models wae-mmd-det,wae-mmd-gauss"
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
    pub device: DeviceArg,
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
    /// Seed of every run (weights, data order, noise).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Use this `wae` binary instead of building one (for tests).
    #[arg(long, hide = true)]
    pub wae_bin: Option<PathBuf>,
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

/// Where the networks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The CPU.
    Cpu,
    /// The first CUDA GPU (builds `wae` with `--features cuda`).
    Cuda,
}

impl DeviceArg {
    fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
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

/// The models of an experiment, in table order.
pub fn models(experiment: Experiment) -> Vec<ModelSpec> {
    let m = |key, label, preset| ModelSpec { key, label, preset };
    match experiment {
        Experiment::Mnist => vec![
            m("vae", "VAE", "mnist-vae"),
            m("wae-mmd", "WAE-MMD", "mnist-wae-mmd"),
            m("wae-gan", "WAE-GAN", "mnist-wae-gan"),
        ],
        Experiment::Celeba => vec![
            m("vae", "VAE", "celeba-vae"),
            m("wae-mmd", "WAE-MMD", "celeba-wae-mmd"),
            m("wae-gan", "WAE-GAN", "celeba-wae-gan"),
        ],
        Experiment::FadingSquares => vec![
            m(
                "wae-mmd-det",
                "WAE-MMD, deterministic encoder",
                "fading-squares-wae-mmd",
            ),
            m(
                "wae-mmd-gauss",
                "WAE-MMD, Gaussian encoder",
                "fading-squares-wae-mmd-gauss",
            ),
        ],
        Experiment::Dsprites => vec![
            m(
                "wae-mmd-det",
                "WAE-MMD, deterministic encoder",
                "dsprites-wae-mmd",
            ),
            m(
                "wae-mmd-gauss",
                "WAE-MMD, Gaussian encoder",
                "dsprites-wae-mmd-gauss",
            ),
            m("beta-vae-1", "VAE (beta 1)", "dsprites-vae"),
            m("beta-vae-4", "beta-VAE (beta 4)", "dsprites-beta-vae"),
            m("beta-vae-16", "beta-VAE (beta 16)", "dsprites-beta-vae-16"),
        ],
    }
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
            let (width_div, train, batch) = match experiment {
                Experiment::Mnist | Experiment::FadingSquares => (8, 3000, 50),
                Experiment::Celeba => (16, 1000, 50),
                Experiment::Dsprites => (8, 2000, 50),
            };
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

/// Runs `cargo xtask reproduce`.
pub fn run(args: &ReproduceArgs) -> Result<()> {
    let started = Instant::now();
    let specs = selected_models(args)?;
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
    let classifier = runner.classifier()?;
    let mut results = BTreeMap::new();
    let mut failures = Vec::new();
    for spec in &specs {
        eprintln!(
            "== {} / {} ({}) ==",
            args.experiment.name(),
            spec.key,
            spec.label
        );
        let cfg = profile_config(args.experiment, spec, args.profile, args.seed)?;
        let model = runner
            .model(spec, &cfg, classifier.as_deref())
            .with_context(|| format!("model `{}` of {}", spec.key, args.experiment.name()))?;
        failures.extend(check(spec, &model));
        results.insert(spec.key.to_string(), model);
    }
    let all = json!({
        "experiment": args.experiment.name(),
        "profile": args.profile.name(),
        "device": args.device.name(),
        "seed": args.seed,
        "command": command_line(args),
        "models": results,
        "paper": paper_numbers(args.experiment),
        "failures": failures,
    });
    let json_path = out.join("results.json");
    write_atomic(&json_path, &serde_json::to_string_pretty(&all)?)?;
    let md_path = out.join("results.md");
    write_atomic(&md_path, &results_markdown(args, &specs, &all))?;
    eprintln!(
        "wrote {} and {} ({:.0} s)",
        json_path.display(),
        md_path.display(),
        started.elapsed().as_secs_f64()
    );
    print!("{}", fs::read_to_string(&md_path)?);
    if !failures.is_empty() {
        bail!(
            "{} check(s) failed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    Ok(())
}

fn selected_models(args: &ReproduceArgs) -> Result<Vec<ModelSpec>> {
    let all = models(args.experiment);
    let Some(wanted) = &args.models else {
        return Ok(all);
    };
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

/// The checks a reproduction must pass: finite losses, and a test reconstruction error
/// below the untrained model's.
fn check(spec: &ModelSpec, model: &Value) -> Vec<String> {
    let mut failures = Vec::new();
    if let Some(bad) = model["non_finite_metrics"].as_array()
        && !bad.is_empty()
    {
        failures.push(format!(
            "{}: non-finite values logged in metrics.jsonl: {}",
            spec.key,
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
            "{}: test reconstruction error {t} is not below the untrained model's {u}",
            spec.key
        )),
        _ => failures.push(format!(
            "{}: reconstruction errors missing from eval.json",
            spec.key
        )),
    }
    failures
}

struct Runner<'a> {
    wae: PathBuf,
    args: &'a ReproduceArgs,
    out: PathBuf,
}

impl Runner<'_> {
    /// A `wae` command with the device (and data directory where the subcommand takes one).
    fn wae(&self, sub: &str, run: Option<&Path>) -> Command {
        let mut cmd = Command::new(&self.wae);
        cmd.arg(sub);
        if let Some(run) = run {
            cmd.arg(run);
        }
        if sub != "plot" {
            cmd.args(["--device", self.args.device.name()]);
        }
        if let Some(dir) = &self.args.data_dir
            && sub != "plot"
        {
            cmd.arg("--data-dir").arg(dir);
        }
        cmd
    }

    /// The MNIST classifier for FID-MNIST (trained on first use), or `None` where the
    /// experiment or profile does not use it.
    fn classifier(&self) -> Result<Option<PathBuf>> {
        if self.args.experiment != Experiment::Mnist {
            return Ok(None);
        }
        if let Some(path) = &self.args.classifier {
            if !path.is_file() {
                bail!(
                    "--classifier {}: no such file (make one with `cargo xtask train-mnist-classifier --out {}`)",
                    path.display(),
                    path.display()
                );
            }
            return Ok(Some(path.clone()));
        }
        if self.args.profile == Profile::Smoke {
            return Ok(None);
        }
        let path = workspace_root()
            .join("target")
            .join("wae")
            .join("mnist-classifier.safetensors");
        if !path.is_file() {
            eprintln!(
                "training the MNIST classifier for FID-MNIST once: {}",
                path.display()
            );
            crate::mnist_classifier::run(&crate::mnist_classifier::TrainClassifierArgs {
                data_dir: self.args.data_dir.clone(),
                out: path.clone(),
                epochs: wae_metrics::mnist_classifier::MnistTrainConfig::default().epochs,
                steps: None,
                seed: wae_metrics::mnist_classifier::MnistTrainConfig::default().seed,
                device: self.args.device.name().to_string(),
            })?;
        }
        Ok(Some(path))
    }

    /// Trains (or resumes, or skips) one model, evaluates it and draws its pictures.
    fn model(
        &self,
        spec: &ModelSpec,
        cfg: &TrainConfig,
        classifier: Option<&Path>,
    ) -> Result<Value> {
        let dir = self.out.join(spec.key);
        let config_text = cfg.to_toml_string()?;
        let done = dir.join("done.json");
        if done.is_file() {
            let previous: Value =
                serde_json::from_str(&fs::read_to_string(&done)?).with_context(|| {
                    format!("{} is damaged; delete it to redo the model", done.display())
                })?;
            if previous["config_toml"].as_str() == Some(config_text.as_str()) {
                eprintln!(
                    "{}: finished earlier, skipped (delete {} to redo it)",
                    spec.key,
                    dir.display()
                );
                return Ok(previous);
            }
            bail!(
                "{} was trained with another config than {} / profile {} now gives; \
                 use another --out, or delete the folder to retrain",
                dir.display(),
                spec.key,
                self.args.profile.name()
            );
        }
        let config_path = self.out.join("configs").join(format!("{}.toml", spec.key));
        fs::create_dir_all(config_path.parent().expect("has a parent"))?;
        write_atomic(&config_path, &config_text)?;

        // The untrained baseline: the same config after 0 steps (encoder pretraining
        // included where the config has it), evaluated by `wae eval` on the same test
        // images as the trained model.
        let n = eval_examples(self.args.profile);
        let untrained_dir = self.out.join("untrained").join(spec.key);
        let untrained_eval = untrained_dir.join("baseline-eval.json");
        if !untrained_eval.is_file() {
            if untrained_dir.exists() {
                fs::remove_dir_all(&untrained_dir)?;
            }
            let mut cmd = self.wae("train", None);
            cmd.arg("--config")
                .arg(&config_path)
                .arg("--out")
                .arg(&untrained_dir)
                .args(["--max-steps", "0"]);
            run_cmd(cmd)?;
            let mut cmd = self.wae("eval", Some(&untrained_dir));
            cmd.args(["--n", &n.to_string()])
                .arg("--out")
                .arg(&untrained_eval);
            run_cmd(cmd)?;
        }
        let untrained: Value = read_json(&untrained_eval)?;

        // Train, or resume an interrupted run.
        let has_checkpoint = dir.join("checkpoints").join("latest").is_file();
        if has_checkpoint {
            let previous = fs::read_to_string(dir.join("config.toml")).unwrap_or_default();
            if previous != config_text {
                bail!(
                    "{} holds an interrupted run of another config; use another --out, or \
                     delete the folder to retrain",
                    dir.display()
                );
            }
            let mut cmd = self.wae("train", None);
            cmd.arg("--resume").arg(&dir);
            run_cmd(cmd)?;
        } else {
            if dir.exists() {
                fs::remove_dir_all(&dir)
                    .with_context(|| format!("removing the unfinished {}", dir.display()))?;
            }
            let mut cmd = self.wae("train", None);
            cmd.arg("--config").arg(&config_path).arg("--out").arg(&dir);
            run_cmd(cmd)?;
        }

        // Evaluate.
        let mut cmd = self.wae("eval", Some(&dir));
        cmd.args(["--n", &n.to_string()]);
        if let Some(c) = classifier {
            cmd.arg("--classifier").arg(c);
        }
        if let Some(i) = &self.args.inception {
            cmd.arg("--inception").arg(i);
        }
        run_cmd(cmd)?;
        let eval = read_json(&dir.join("eval.json"))?;

        // Pictures.
        let mut pictures = vec![
            "samples.png",
            "reconstructions.png",
            "interpolations.png",
            "latent.png",
            "losses.png",
        ];
        run_cmd(self.wae("sample", Some(&dir)))?;
        run_cmd(self.wae("reconstruct", Some(&dir)))?;
        run_cmd(self.wae("interpolate", Some(&dir)))?;
        let mut latent = self.wae("latent-plot", Some(&dir));
        latent.args(["--n", &n.min(2000).to_string()]);
        run_cmd(latent)?;
        run_cmd(self.wae("plot", Some(&dir)))?;
        if cfg.model.encoder.latent_dim <= 16 {
            run_cmd(self.wae("traverse", Some(&dir)))?;
            pictures.push("traverse.png");
        }

        let state = latest_state(&dir)?;
        let non_finite = non_finite_metrics(&dir.join("metrics.jsonl"))?;
        let summary = json!({
            "preset": spec.preset,
            "label": spec.label,
            "description": cfg.description,
            "steps": state["step"],
            "epochs": cfg.training.epochs,
            "training_seconds": state["elapsed_seconds"],
            "eval": eval,
            "untrained_reconstruction_sq_l2": untrained["reconstruction_sq_l2"],
            "untrained_mmd_codes_vs_prior": untrained["mmd_codes_vs_prior"],
            "non_finite_metrics": non_finite,
            "pictures": pictures.iter().map(|p| format!("{}/{p}", spec.key)).collect::<Vec<_>>(),
            "config_toml": config_text,
        });
        write_atomic(&done, &serde_json::to_string_pretty(&summary)?)?;
        Ok(summary)
    }
}

/// The state file of a run's newest checkpoint.
fn latest_state(run: &Path) -> Result<Value> {
    let latest = run.join("checkpoints").join("latest");
    let name =
        fs::read_to_string(&latest).with_context(|| format!("reading {}", latest.display()))?;
    read_json(&run.join("checkpoints").join(name.trim()).join("state.json"))
}

/// Names of the quantities that were NaN or infinite in some line of `metrics.jsonl`
/// (the trainer stops on a non-finite loss, so this is a second guard).
fn non_finite_metrics(path: &Path) -> Result<Vec<String>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bad = std::collections::BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // serde_json refuses NaN/inf literals; a line that does not parse is itself a fault.
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(map)) => {
                for (k, v) in map {
                    if v.is_null() || v.as_f64().is_some_and(|x| !x.is_finite()) {
                        bad.insert(k);
                    }
                }
            }
            _ => {
                bad.insert(format!("(line {} unreadable)", i + 1));
            }
        }
    }
    Ok(bad.into_iter().collect())
}

fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

fn run_cmd(mut cmd: Command) -> Result<()> {
    let shown = format!(
        "{} {}",
        Path::new(cmd.get_program())
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    eprintln!("$ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("starting `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status}); its output is above");
    }
    Ok(())
}

fn command_line(args: &ReproduceArgs) -> String {
    let mut s = format!(
        "cargo xtask reproduce {} --profile {} --device {}",
        args.experiment.name(),
        args.profile.name(),
        args.device.name()
    );
    if let Some(m) = &args.models {
        s.push_str(&format!(" --models {}", m.join(",")));
    }
    if args.seed != 0 {
        s.push_str(&format!(" --seed {}", args.seed));
    }
    s
}

/// The papers' numbers for the experiment, where there are any.
fn paper_numbers(experiment: Experiment) -> Value {
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

fn fmt_num(v: &Value) -> String {
    match v.as_f64() {
        None => "-".into(),
        Some(0.0) => "0".into(),
        Some(x) if x.abs() >= 1000.0 || x.abs() < 0.01 => format!("{x:.2e}"),
        Some(x) if x.abs() >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.3}"),
    }
}

/// `results.md`: the table, the paper's numbers where they exist, and the pictures.
fn results_markdown(args: &ReproduceArgs, specs: &[ModelSpec], all: &Value) -> String {
    let mut s = String::new();
    let exp = args.experiment.name();
    s.push_str(&format!(
        "# `{exp}`, profile `{}`, device `{}`\n\nMade by `{}`.\n\n",
        args.profile.name(),
        args.device.name(),
        all["command"].as_str().unwrap_or_default()
    ));
    let models = &all["models"];
    let first_eval = specs
        .first()
        .map(|m| &models[m.key]["eval"])
        .cloned()
        .unwrap_or(Value::Null);
    let has = |key: &str| specs.iter().any(|m| !models[m.key]["eval"][key].is_null());
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
    if has("disentanglement") {
        head.extend(["FactorVAE score", "MIG"]);
    }
    s.push_str(&format!("| {} |\n", head.join(" | ")));
    s.push_str(&format!("|{}\n", " --- |".repeat(head.len())));
    for m in specs {
        let r = &models[m.key];
        let e = &r["eval"];
        let mut row = vec![
            m.label.to_string(),
            r["steps"].as_u64().map_or("-".into(), |v| v.to_string()),
            format!("{:.0}", r["training_seconds"].as_f64().unwrap_or(f64::NAN)),
            format!(
                "{} ({})",
                fmt_num(&e["reconstruction_sq_l2"]),
                fmt_num(&r["untrained_reconstruction_sq_l2"])
            ),
            fmt_num(&e["mmd_codes_vs_prior"]),
        ];
        if has("mmd_sampled_codes_vs_prior") {
            row.push(fmt_num(&e["mmd_sampled_codes_vs_prior"]));
        }
        row.push(fmt_num(&e["sharpness_samples"]));
        for space in ["classifier", "inception"] {
            if has(space) {
                row.push(fmt_num(&e[space]["fid"]));
                row.push(fmt_num(&e[space]["precision"]));
                row.push(fmt_num(&e[space]["recall"]));
            }
        }
        if has("disentanglement") {
            row.push(fmt_num(&e["disentanglement"]["factor_vae"]));
            row.push(fmt_num(&e["disentanglement"]["mig"]));
        }
        s.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    if has("mmd_sampled_codes_vs_prior") {
        s.push_str(
            "\nMMD^2(codes, prior) uses the encoder means; for Gaussian encoders \
             MMD^2(drawn codes, prior) uses one code drawn from Q(z|x) per image (the \
             aggregated posterior the WAE penalty matches).\n",
        );
    }
    s.push_str(&format!(
        "\n{} test images; MMD^2 between two prior samples (the value of a perfect match, up to \
         noise): {}; sharpness of the test images: {}.\n",
        first_eval["examples"],
        fmt_num(&first_eval["mmd_prior_vs_prior"]),
        fmt_num(&first_eval["sharpness_test_images"]),
    ));
    let paper = &all["paper"];
    s.push_str(&format!(
        "\nPaper: {}.\n",
        paper["source"].as_str().unwrap_or_default()
    ));
    if args.experiment == Experiment::Celeba {
        s.push_str("\n| model | paper FID | paper sharpness |\n| --- | --- | --- |\n");
        for key in ["vae", "wae-mmd", "wae-gan", "real test images"] {
            s.push_str(&format!(
                "| {key} | {} | {} |\n",
                fmt_num(&paper[key]["fid"]),
                fmt_num(&paper[key]["sharpness"])
            ));
        }
    }
    if let Some(f) = all["failures"].as_array()
        && !f.is_empty()
    {
        s.push_str("\n**Failed checks:**\n\n");
        for line in f {
            s.push_str(&format!("- {}\n", line.as_str().unwrap_or_default()));
        }
    }
    s.push_str("\n## Pictures\n");
    for m in specs {
        s.push_str(&format!("\n### {}\n\n", m.label));
        if let Some(pics) = models[m.key]["pictures"].as_array() {
            for p in pics.iter().filter_map(Value::as_str) {
                let name = Path::new(p)
                    .file_stem()
                    .map(|x| x.to_string_lossy().into_owned())
                    .unwrap_or_default();
                s.push_str(&format!("![{} {name}]({p})\n", m.key));
            }
        }
    }
    s
}

/// Builds the `wae` binary (with CUDA for `--device cuda`) and returns its path: in
/// release mode, or for the smoke profile in the dev profile, whose build `cargo test`
/// has usually made already (its kernels and dependencies are optimised too).
fn build_wae(device: DeviceArg, release: bool) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec!["build"];
    if release {
        args.push("--release");
    }
    args.extend(["-p", "wae-cli"]);
    if device == DeviceArg::Cuda {
        args.extend(["--features", "cuda"]);
    }
    eprintln!("building wae: cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args(&args)
        .status()
        .context("running cargo build -p wae-cli")?;
    if !status.success() {
        bail!("`cargo {}` failed (output above)", args.join(" "));
    }
    let exe = target_dir()
        .join(if release { "release" } else { "debug" })
        .join(format!("wae{}", std::env::consts::EXE_SUFFIX));
    if !exe.is_file() {
        bail!("built wae not found at {}", exe.display());
    }
    Ok(exe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_has_a_valid_config_in_every_profile() {
        for experiment in Experiment::value_variants() {
            for spec in models(*experiment) {
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
    fn checks_catch_nan_and_a_reconstruction_no_better_than_untrained() {
        let spec = &models(Experiment::Mnist)[1];
        let good = json!({"eval": {"reconstruction_sq_l2": 20.0},
            "untrained_reconstruction_sq_l2": 180.0, "non_finite_metrics": []});
        assert!(check(spec, &good).is_empty());
        let worse = json!({"eval": {"reconstruction_sq_l2": 181.0},
            "untrained_reconstruction_sq_l2": 180.0, "non_finite_metrics": []});
        assert_eq!(check(spec, &worse).len(), 1);
        let nan = json!({"eval": {"reconstruction_sq_l2": 20.0},
            "untrained_reconstruction_sq_l2": 180.0, "non_finite_metrics": ["total"]});
        assert!(check(spec, &nan)[0].contains("total"));
        let missing = json!({"eval": {}, "non_finite_metrics": []});
        assert_eq!(check(spec, &missing).len(), 1);
    }

    #[test]
    fn non_finite_metrics_are_found_in_metrics_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        fs::write(
            &path,
            "{\"step\":1,\"total\":2.5}\n{\"step\":2,\"total\":null}\n",
        )
        .unwrap();
        assert_eq!(
            non_finite_metrics(&path).unwrap(),
            vec!["total".to_string()]
        );
        fs::write(&path, "{\"step\":1,\"total\":NaN}\n").unwrap();
        assert_eq!(non_finite_metrics(&path).unwrap().len(), 1);
        fs::write(&path, "{\"step\":1,\"total\":2.5}\n").unwrap();
        assert!(non_finite_metrics(&path).unwrap().is_empty());
    }

    #[test]
    fn unknown_models_are_refused_with_the_known_ones() {
        let args = ReproduceArgs {
            experiment: Experiment::Mnist,
            profile: Profile::Smoke,
            device: DeviceArg::Cpu,
            models: Some(vec!["wae-mmd".into(), "wae-gna".into()]),
            out: None,
            data_dir: None,
            classifier: None,
            inception: None,
            seed: 0,
            wae_bin: None,
        };
        let err = selected_models(&args).unwrap_err().to_string();
        assert!(
            err.contains("wae-gna") && err.contains("vae, wae-mmd, wae-gan"),
            "{err}"
        );
    }
}
