//! Running one (model, seed) of a reproduction: the `wae` subprocesses that train,
//! evaluate and draw it, in its own run folder, skipping or resuming earlier work.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wae_train::checkpoint::TrainState;
use wae_train::evaluate::EvalReport;
use wae_train::{RunDir, TrainConfig};

use super::summary::{DoneConfig, RunSummary};
use super::{DeviceChoice, Experiment, ModelSpec, Profile, ReproduceArgs, eval_examples};
use crate::workspace::{target_dir, workspace_root};

/// The folder names of one (model, seed) under the output folder, relative to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPaths {
    /// The `wae train` run directory: `<model>/seed-<s>`.
    pub run: PathBuf,
    /// The untrained baseline's run directory: `untrained/<model>/seed-<s>`.
    pub untrained: PathBuf,
    /// The config it is trained with: `configs/<model>-seed-<s>.toml`.
    pub config: PathBuf,
}

impl RunPaths {
    /// The folders of `model_key` trained with `seed`.
    pub fn new(model_key: &str, seed: u64) -> Self {
        let seed_dir = format!("seed-{seed}");
        Self {
            run: Path::new(model_key).join(&seed_dir),
            untrained: Path::new("untrained").join(model_key).join(&seed_dir),
            config: Path::new("configs").join(format!("{model_key}-{seed_dir}.toml")),
        }
    }
}

/// Runs the `wae` commands of a reproduction into `out`.
pub struct Runner<'a> {
    /// The `wae` binary.
    pub wae: PathBuf,
    /// The command's arguments.
    pub args: &'a ReproduceArgs,
    /// The output folder.
    pub out: PathBuf,
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
    pub fn classifier(&self) -> Result<Option<PathBuf>> {
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
                device: self.args.device,
            })?;
        }
        Ok(Some(path))
    }

    /// Refuses an output folder where `<model>/` is itself a run directory: the layout
    /// from before `--seeds`, which the per-seed folders must not be mixed into.
    pub fn refuse_single_seed_layout(&self, spec: &ModelSpec) -> Result<()> {
        let dir = RunDir::new(self.out.join(spec.key));
        if [dir.done(), dir.config(), dir.checkpoints()]
            .iter()
            .any(|f| f.exists())
        {
            bail!(
                "{} is a run directory of a reproduction made before --seeds (one run per \
                 model, in OUT/<model>/); now every seed has its own OUT/<model>/seed-<s>/. \
                 Use another --out, or move the old folder away",
                dir.path().display()
            );
        }
        Ok(())
    }

    /// Trains (or resumes, or skips) one model with one seed, evaluates it and draws
    /// its pictures; returns the summary that its `done.json` holds.
    pub fn model(
        &self,
        spec: &ModelSpec,
        seed: u64,
        cfg: &TrainConfig,
        classifier: Option<&Path>,
    ) -> Result<RunSummary> {
        let paths = RunPaths::new(spec.key, seed);
        let dir = self.out.join(&paths.run);
        let config_text = cfg.to_toml_string()?;
        let done = RunDir::new(&dir).done();
        let what = format!(
            "{} / profile {} / seed {seed}",
            spec.key,
            self.args.profile.name()
        );
        let state = run_state(&dir, &config_text, &what)?;
        if state == RunState::Done {
            eprintln!(
                "{} seed {seed}: finished earlier, skipped (delete {} to redo it)",
                spec.key,
                dir.display()
            );
            return read_json(&done);
        }
        let config_path = self.out.join(&paths.config);
        fs::create_dir_all(config_path.parent().expect("has a parent"))?;
        write_atomic(&config_path, &config_text)?;

        // The untrained baseline: the same config after 0 steps (encoder pretraining
        // included where the config has it), evaluated by `wae eval` on the same test
        // images as the trained model.
        let n = eval_examples(self.args.profile);
        let untrained_dir = self.out.join(&paths.untrained);
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
            // The baseline only needs its reconstruction error; the disentanglement
            // scores of dSprites take minutes per evaluation.
            let mut cmd = self.wae("eval", Some(&untrained_dir));
            cmd.args(["--n", &n.to_string()])
                .arg("--no-disentanglement")
                .arg("--out")
                .arg(&untrained_eval);
            run_cmd(cmd)?;
        }
        let untrained = read_eval(&untrained_eval)?;

        // Train, or resume an interrupted run.
        train_or_resume(&state, &dir, &config_path, || Ok(self.wae("train", None)))?;

        // Evaluate.
        let mut cmd = self.wae("eval", Some(&dir));
        cmd.args(["--n", &n.to_string()]);
        if let Some(c) = classifier {
            cmd.arg("--classifier").arg(c);
        }
        if let Some(i) = &self.args.inception {
            cmd.arg("--inception").arg(i);
        }
        // Samples of the post-hoc mixture sampler scored beside the prior's, where
        // sample quality is measured (a feature network given).
        if classifier.is_some() || self.args.inception.is_some() {
            cmd.args(["--sampler", GMM_SAMPLER]);
        }
        run_cmd(cmd)?;
        let eval = read_eval(&RunDir::new(&dir).eval())?;

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
        let non_finite = non_finite_metrics(&RunDir::new(&dir).metrics())?;
        // Picture paths are relative to OUT, where results.md is.
        let run_folder = paths.run.to_string_lossy().replace('\\', "/");
        let summary = RunSummary {
            preset: spec.preset.to_string(),
            label: spec.label.to_string(),
            description: cfg.description.clone(),
            seed,
            steps: state.step,
            epochs: cfg.training.epochs,
            training_seconds: state.elapsed_seconds,
            eval,
            untrained_reconstruction_sq_l2: Some(untrained.reconstruction_sq_l2),
            untrained_mmd_codes_vs_prior: Some(untrained.mmd_codes_vs_prior),
            non_finite_metrics: non_finite,
            pictures: pictures
                .iter()
                .map(|p| format!("{run_folder}/{p}"))
                .collect(),
            config_toml: config_text,
        };
        write_atomic(&done, &json_text(&summary)?)?;
        Ok(summary)
    }
}

/// The state file of a run's newest checkpoint.
fn latest_state(run: &Path) -> Result<TrainState> {
    let newest = RunDir::new(run)
        .require_checkpoint()
        .with_context(|| format!("reading the newest checkpoint of {}", run.display()))?;
    read_json(&newest.join(wae_train::checkpoint::STATE_FILE))
}

/// Names of the quantities that were NaN or infinite in some line of `metrics.jsonl`
/// (the trainer stops on a non-finite loss, so this is a second guard). Each line is a
/// record of named numbers (the trainer writes `null` for a NaN or an infinity); a line
/// that is not one is named as unreadable.
fn non_finite_metrics(path: &Path) -> Result<Vec<String>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bad = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // serde_json refuses NaN/inf literals; a line that does not parse is itself a fault.
        match serde_json::from_str::<BTreeMap<String, Option<f64>>>(line) {
            Ok(record) => bad.extend(
                record
                    .into_iter()
                    .filter(|(_, v)| v.is_none_or(|x| !x.is_finite()))
                    .map(|(k, _)| k),
            ),
            Err(_) => {
                bad.insert(format!("(line {} unreadable)", i + 1));
            }
        }
    }
    Ok(bad.into_iter().collect())
}

/// What to do with a run directory that must hold a run of one config.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RunState {
    /// Finished with this config (its `done.json` names it).
    Done,
    /// Interrupted with this config: resume from its newest checkpoint.
    Resume,
    /// No checkpoint there: train from scratch (into an emptied folder).
    Fresh,
}

/// Reads the state of run directory `dir` that must be trained with `config_text`
/// (TOML as [`TrainConfig::to_toml_string`] writes it): finished when `done.json` holds
/// `config_toml` equal to it, resumable when `checkpoints/latest` exists and the run's
/// `config.toml` equals it. A folder of another config is an error naming `what` (the
/// model or point and seed), never a silent mix.
pub(crate) fn run_state(dir: &Path, config_text: &str, what: &str) -> Result<RunState> {
    let run = RunDir::new(dir);
    let done = run.done();
    if done.is_file() {
        let previous: DoneConfig = serde_json::from_str(&fs::read_to_string(&done)?)
            .with_context(|| format!("{} is damaged; delete it to redo the run", done.display()))?;
        if previous.config_toml.as_deref() == Some(config_text) {
            return Ok(RunState::Done);
        }
        bail!(
            "{} was trained with another config than {what} gives now; use another --out, \
             or delete the folder to retrain",
            dir.display()
        );
    }
    if run.has_checkpoint() {
        let previous = fs::read_to_string(run.config()).unwrap_or_default();
        if previous != config_text {
            bail!(
                "{} holds an interrupted run of another config than {what} gives now; use \
                 another --out, or delete the folder to retrain",
                dir.display()
            );
        }
        return Ok(RunState::Resume);
    }
    Ok(RunState::Fresh)
}

/// Trains the run in `dir` from `config_path`, or resumes it (`state` from [`run_state`];
/// nothing for [`RunState::Done`]). `wae_train` makes a `wae train` command with the
/// caller's common flags (device, data directory, a step budget); a fresh run's
/// unfinished folder is removed first.
pub(crate) fn train_or_resume(
    state: &RunState,
    dir: &Path,
    config_path: &Path,
    wae_train: impl Fn() -> Result<Command>,
) -> Result<()> {
    match state {
        RunState::Done => Ok(()),
        RunState::Resume => {
            let mut cmd = wae_train()?;
            cmd.arg("--resume").arg(dir);
            run_cmd(cmd)
        }
        RunState::Fresh => {
            if dir.exists() {
                fs::remove_dir_all(dir)
                    .with_context(|| format!("removing the unfinished {}", dir.display()))?;
            }
            let mut cmd = wae_train()?;
            cmd.arg("--config").arg(config_path).arg("--out").arg(dir);
            run_cmd(cmd)
        }
    }
}

/// Reads and parses a JSON file into `T`, naming it in errors.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Reads an `eval.json` (`wae eval --out`), naming it in errors.
pub(crate) fn read_eval(path: &Path) -> Result<EvalReport> {
    EvalReport::read(path).with_context(|| format!("reading {}", path.display()))
}

/// `value` as the pretty JSON the results files hold, every object's keys in
/// alphabetical order at every depth (`done.json`, `results.json`, `sweep.json` have been
/// written so since they were `serde_json::Value` maps, which sort their keys: going
/// through a `Value` keeps re-written files byte for byte the same).
pub(crate) fn json_text<T: Serialize>(value: &T) -> Result<String> {
    Ok(serde_json::to_string_pretty(&serde_json::to_value(value)?)?)
}

/// The post-hoc sampler `reproduce` scores beside the prior (`wae eval --sampler`).
pub const GMM_SAMPLER: &str = "gmm:10";

/// Writes `text` to `path` with [`wae_io::write_atomic`] (a temporary name beside it, then
/// a rename).
pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<()> {
    wae_io::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Runs `cmd` after printing it (`$ wae train ...`, the program's file name and its
/// arguments), failing when it does not succeed.
pub(crate) fn run_cmd(mut cmd: Command) -> Result<()> {
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

/// Builds the `wae` binary (with CUDA for `--device cuda`) and returns its path: in
/// release mode, or for the smoke profile in the dev profile, whose build `cargo test`
/// has usually made already (its kernels and dependencies are optimised too).
pub(crate) fn build_wae(device: DeviceChoice, release: bool) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec!["build"];
    if release {
        args.push("--release");
    }
    args.extend(["-p", "wae-cli"]);
    if device == DeviceChoice::Cuda {
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
    use crate::reproduce::models;

    #[test]
    fn every_seed_has_its_own_run_baseline_and_config() {
        let p = RunPaths::new("wae-mmd", 2);
        assert_eq!(p.run, Path::new("wae-mmd").join("seed-2"));
        assert_eq!(
            p.untrained,
            Path::new("untrained").join("wae-mmd").join("seed-2")
        );
        assert_eq!(p.config, Path::new("configs").join("wae-mmd-seed-2.toml"));
        assert_ne!(RunPaths::new("wae-mmd", 0), RunPaths::new("wae-mmd", 1));
    }

    #[test]
    fn a_folder_from_before_seeds_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let args = crate::reproduce::tests::smoke_args(vec![0]);
        let runner = Runner {
            wae: PathBuf::from("wae"),
            args: &args,
            out: dir.path().to_path_buf(),
        };
        let spec = &models(Experiment::Mnist)[0];
        runner.refuse_single_seed_layout(spec).unwrap();
        fs::create_dir_all(dir.path().join(spec.key).join("seed-0")).unwrap();
        runner.refuse_single_seed_layout(spec).unwrap();
        fs::write(dir.path().join(spec.key).join("done.json"), "{}").unwrap();
        let err = runner.refuse_single_seed_layout(spec).unwrap_err();
        assert!(err.to_string().contains("--seeds"), "{err}");
    }

    #[test]
    fn a_run_folder_is_skipped_resumed_or_refused_by_its_config() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        assert_eq!(run_state(&run, "a = 1\n", "m").unwrap(), RunState::Fresh);
        fs::create_dir_all(run.join("checkpoints")).unwrap();
        fs::write(run.join("checkpoints").join("latest"), "step-00000010").unwrap();
        fs::write(run.join("config.toml"), "a = 1\n").unwrap();
        assert_eq!(run_state(&run, "a = 1\n", "m").unwrap(), RunState::Resume);
        let err = run_state(&run, "a = 2\n", "point x seed 0")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("interrupted run of another config than point x seed 0"),
            "{err}"
        );
        fs::write(
            run.join("done.json"),
            r#"{"config_toml": "a = 1\n", "eval": {}}"#,
        )
        .unwrap();
        assert_eq!(run_state(&run, "a = 1\n", "m").unwrap(), RunState::Done);
        let err = run_state(&run, "a = 2\n", "m").unwrap_err().to_string();
        assert!(err.contains("trained with another config"), "{err}");
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
}
