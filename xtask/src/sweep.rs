//! `cargo xtask sweep`: train and evaluate a config over a grid of values x seeds, here
//! (`--executor local`, `--jobs K` at once) or as a Slurm job array (`--executor slurm`),
//! and compare the grid points: `sweep.json`, `sweep.md`, `pareto.png`.
//!
//! Every point x seed is an ordinary run directory made by the `wae` binary, with the
//! commands a user could type (printed before they run): `wae train --config C --out R`
//! (or `wae train --resume R`), then `wae eval R`. Layout of the output folder:
//!
//! ```text
//! OUT/sweep.toml                          what the sweep is (base config, grid, seeds,
//!                                         budget): a folder of another sweep is refused
//! OUT/configs/<point>-seed-<s>.toml       the config of each run
//! OUT/configs/<point>-seed-<s>.done.json  its done.json, copied into the run once evaluated
//! OUT/<point>/seed-<s>/                   a `wae train` run directory with eval.json
//! OUT/tasks.tsv                           one line per run (the Slurm array's task list)
//! OUT/sweep.sbatch, OUT/slurm/            --executor slurm: the script and the task logs
//! OUT/logs/<point>-seed-<s>.log           --jobs K > 1: each run's output
//! OUT/sweep.json, sweep.md, pareto.png    the comparison of whatever has finished
//! ```
//!
//! Runs are skipped, resumed or refused exactly as `cargo xtask reproduce` does (the
//! shared [`crate::reproduce::runner::run_state`]).

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use wae_train::{DeviceChoice, TrainConfig};

use crate::reproduce::runner::{
    RunPaths, RunState, build_wae, json_text, run_cmd, run_state, train_or_resume, write_atomic,
};
use crate::workspace::workspace_root;
use grid::{GridAxis, Point};
use report::Report;
use slurm::SlurmArgs;

mod grid;
mod report;
pub(crate) mod slurm;

/// Arguments of `cargo xtask sweep`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    cargo xtask sweep --preset mnist-wae-mmd-cpu --grid objective.lambda=1,10,100 --seeds 0,1,2\n  \
    cargo xtask sweep --config my.toml --grid objective.lambda=1,10 \
    --grid model.encoder.latent_dim=8,16 --grid model.decoder.latent_dim=8,16 --jobs 2\n  \
    cargo xtask sweep --preset mnist-wae-mmd-cpu --grid objective.lambda=1,10,100 \
    --executor slurm --partition gpu --gres gpu:1 --device cuda --no-wait\n  \
    cargo xtask sweep --collect target/sweep/mnist-wae-mmd-cpu\n\n\
    See docs/sweeps.md.")]
pub struct SweepArgs {
    /// The base config: a preset (see `wae train --list-presets`).
    #[arg(long, value_name = "NAME", conflicts_with = "config")]
    pub preset: Option<String>,
    /// The base config: a TOML file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A grid axis, `KEY=V1,V2,...` with KEY any dotted config key (e.g.
    /// objective.lambda=1,10,100); repeat for more axes (their product is the grid).
    #[arg(long = "grid", value_name = "KEY=V1,V2,...")]
    pub grid: Vec<String>,
    /// Seeds (comma-separated): every grid point is trained once per seed.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub seeds: Vec<u64>,
    /// Output folder [default: target/sweep/<preset or config name>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Stop each run after N steps (`wae train --max-steps`; default: the config's epochs).
    #[arg(long, value_name = "N")]
    pub max_steps: Option<u64>,
    /// Test images (and prior samples) of each `wae eval --n`.
    #[arg(long, default_value_t = 10_000)]
    pub eval_n: usize,
    /// Where the networks run.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Data directory passed to `wae` (MNIST IDX files, or CelebA's cache).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where the runs run.
    #[arg(long, value_enum, default_value = "local")]
    pub executor: Executor,
    /// Local executor: runs at once (the CPU cores are divided between them).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Slurm: submit and return at once (print the job id and the --collect command).
    #[arg(long)]
    pub no_wait: bool,
    /// Only build sweep.json, sweep.md and pareto.png of the sweep in DIR from whatever
    /// has finished.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["preset", "config", "grid"])]
    pub collect: Option<PathBuf>,
    /// Use this `wae` binary instead of building one with `cargo build --release -p wae-cli`.
    #[arg(long, value_name = "FILE")]
    pub wae_bin: Option<PathBuf>,
    /// Build `wae` in the dev profile (dependencies optimised; quicker to build).
    #[arg(long)]
    pub dev_build: bool,
    #[command(flatten)]
    pub slurm: SlurmArgs,
}

/// Where the runs of a sweep run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Executor {
    /// Subprocesses on this machine.
    Local,
    /// A Slurm job array (`sbatch`), one array task per point x seed.
    Slurm,
}

/// What a sweep is, as `OUT/sweep.toml` holds it: a folder is refused for another one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// `preset NAME` or `config FILE`.
    pub base: String,
    /// The seeds.
    pub seeds: Vec<u64>,
    /// `wae train --max-steps`.
    pub max_steps: Option<u64>,
    /// `wae eval --n`.
    pub eval_n: usize,
    /// `--device`.
    pub device: String,
    /// The base config's TOML.
    pub base_config: String,
    /// The axes.
    pub grid: Vec<GridAxis>,
}

/// A sweep run's `done.json` (written as `configs/<point>-seed-<s>.done.json` and copied
/// into the run once it is evaluated).
#[derive(Debug, Serialize)]
struct DoneMarker<'a> {
    /// The grid point's folder name.
    point: &'a str,
    /// Axis key -> value.
    values: std::collections::BTreeMap<&'a str, &'a str>,
    /// The seed.
    seed: u64,
    /// The config the run is trained with (what `run_state` compares).
    config_toml: &'a str,
}

/// One point x seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Its line in tasks.tsv (the Slurm array index).
    pub index: usize,
    /// The grid point.
    pub point: Point,
    /// The seed.
    pub seed: u64,
    /// Its folders under OUT (`run`, `config`).
    pub paths: RunPaths,
}

impl Task {
    /// `configs/<point>-seed-<s>.done.json`, copied into the run once it is evaluated.
    fn done_template(&self) -> PathBuf {
        self.paths.config.with_extension("done.json")
    }

    /// Its line of tasks.tsv: index, point, seed, config, run, done template (paths
    /// relative to OUT).
    fn tsv_line(&self) -> String {
        let rel = |p: &Path| p.to_string_lossy().replace('\\', "/");
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            self.index,
            self.point.name,
            self.seed,
            rel(&self.paths.config),
            rel(&self.paths.run),
            rel(&self.done_template())
        )
    }
}

/// The tasks of a sweep, point by point (the seeds of a point together).
pub fn tasks(spec: &SweepSpec) -> Result<Vec<Task>> {
    let points = grid::points(&spec.grid)?;
    let mut out = Vec::new();
    for point in points {
        for &seed in &spec.seeds {
            out.push(Task {
                index: out.len(),
                paths: RunPaths::new(&point.name, seed),
                point: point.clone(),
                seed,
            });
        }
    }
    Ok(out)
}

/// The config of a task: the base with the point's values, its seed, and a description
/// naming the point.
fn task_config(base: &TrainConfig, task: &Task) -> Result<TrainConfig> {
    let mut cfg = grid::apply(base, &task.point.values)?;
    cfg.seed = task.seed;
    if !task.point.values.is_empty() {
        let shown: Vec<String> = task
            .point
            .values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        cfg.description = format!("{} (sweep point {})", cfg.description, shown.join(" "));
    }
    cfg.validate()?;
    Ok(cfg)
}

/// The base config and its name (for the default output folder).
fn base_config(args: &SweepArgs) -> Result<(TrainConfig, String, String)> {
    if let Some(name) = &args.preset {
        let cfg = wae_train::preset(name)?;
        return Ok((cfg, format!("preset {name}"), name.clone()));
    }
    if let Some(path) = &args.config {
        let cfg = TrainConfig::from_toml_file(path)
            .with_context(|| format!("while loading config {}", path.display()))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sweep".into());
        return Ok((cfg, format!("config {}", path.display()), stem));
    }
    bail!("say what to sweep: --preset NAME or --config FILE (or --collect DIR)");
}

/// Writes `OUT/sweep.toml`, or checks that the one there is the same sweep.
fn claim_folder(out: &Path, spec: &SweepSpec) -> Result<()> {
    let path = out.join("sweep.toml");
    let text = toml::to_string(spec).context("writing sweep.toml")?;
    if path.is_file() {
        let previous: SweepSpec = toml::from_str(&fs::read_to_string(&path)?)
            .with_context(|| format!("{} is damaged or of another version", path.display()))?;
        if previous != *spec {
            let mut differ = Vec::new();
            if previous.grid != spec.grid {
                let show = |g: &[GridAxis]| {
                    g.iter()
                        .map(|a| format!("{}={}", a.key, a.values.join(",")))
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                differ.push(format!(
                    "the grid ({} there, {} now)",
                    show(&previous.grid),
                    show(&spec.grid)
                ));
            }
            if previous.seeds != spec.seeds {
                differ.push(format!(
                    "the seeds ({:?} there, {:?} now)",
                    previous.seeds, spec.seeds
                ));
            }
            if previous.base != spec.base || previous.base_config != spec.base_config {
                differ.push(format!(
                    "the base config ({} there, {} now)",
                    previous.base, spec.base
                ));
            }
            if previous.max_steps != spec.max_steps
                || previous.eval_n != spec.eval_n
                || previous.device != spec.device
            {
                differ.push("--max-steps, --eval-n or --device".into());
            }
            bail!(
                "{} holds another sweep ({}); use another --out, or delete the folder",
                out.display(),
                differ.join(", ")
            );
        }
        return Ok(());
    }
    write_atomic(&path, &text)
}

/// Runs `cargo xtask sweep`.
pub fn run(args: &SweepArgs) -> Result<()> {
    if let Some(dir) = &args.collect {
        return collect(dir).map(|_| ());
    }
    let started = Instant::now();
    let seeds = crate::reproduce::checked_seeds(&args.seeds)?;
    let axes = args
        .grid
        .iter()
        .map(|g| GridAxis::parse(g))
        .collect::<Result<Vec<_>>>()?;
    grid::check_axes(&axes)?;
    if args.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let (base, base_name, stem) = base_config(args)?;
    let spec = SweepSpec {
        base: base_name,
        seeds,
        max_steps: args.max_steps,
        eval_n: args.eval_n,
        device: args.device.name().to_string(),
        base_config: base.to_toml_string()?,
        grid: axes,
    };
    let tasks = tasks(&spec)?;
    // Every config first: a bad grid value fails before anything runs.
    let configs = tasks
        .iter()
        .map(|t| {
            let text = task_config(&base, t)?.to_toml_string()?;
            Ok((t, text))
        })
        .collect::<Result<Vec<_>>>()?;
    if args.executor == Executor::Slurm {
        slurm::require_slurm()?;
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| workspace_root().join("target").join("sweep").join(&stem));
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let out = out
        .canonicalize()
        .with_context(|| format!("resolving {}", out.display()))?;
    claim_folder(&out, &spec)?;
    // What each run directory holds now: a folder of another config fails here.
    let mut pending = Vec::new();
    for (task, text) in &configs {
        let what = format!("point {} seed {}", task.point.name, task.seed);
        let state = run_state(&out.join(&task.paths.run), text, &what)?;
        if state != RunState::Done {
            pending.push((*task, text.as_str(), state));
        }
    }
    fs::create_dir_all(out.join("configs"))?;
    let mut tsv = String::new();
    for (task, text) in &configs {
        write_atomic(&out.join(&task.paths.config), text)?;
        let done = DoneMarker {
            point: &task.point.name,
            values: task
                .point
                .values
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            seed: task.seed,
            config_toml: text,
        };
        write_atomic(&out.join(task.done_template()), &json_text(&done)?)?;
        tsv.push_str(&task.tsv_line());
    }
    write_atomic(&out.join("tasks.tsv"), &tsv)?;
    eprintln!(
        "sweep: {} point(s) x {} seed(s) = {} run(s), {} to do, in {}",
        tasks.len() / spec.seeds.len(),
        spec.seeds.len(),
        tasks.len(),
        pending.len(),
        out.display()
    );
    let wae = match &args.wae_bin {
        Some(path) => path
            .canonicalize()
            .with_context(|| format!("--wae-bin {}", path.display()))?,
        None if pending.is_empty() => PathBuf::new(),
        None => build_wae(args.device, !args.dev_build)?,
    };
    let local = Local {
        wae: &wae,
        out: &out,
        args,
    };
    let failures = match args.executor {
        Executor::Local => local.run_all(&pending),
        Executor::Slurm if pending.is_empty() => Vec::new(),
        Executor::Slurm => {
            let indices: Vec<usize> = pending.iter().map(|(t, _, _)| t.index).collect();
            let job = submit_array(args, &spec, &wae, &out, &indices)?;
            if args.no_wait {
                eprintln!(
                    "submitted job {job} ({} array task(s)); logs in {}; when it is done:\n  \
                     cargo xtask sweep --collect {}",
                    indices.len(),
                    out.join("slurm").display(),
                    out.display()
                );
                println!("{job}");
                return Ok(());
            }
            slurm::wait(&job, Duration::from_secs(args.slurm.poll_seconds.max(1)))?;
            Vec::new()
        }
    };
    let report = collect(&out)?;
    eprintln!("sweep took {:.0} s", started.elapsed().as_secs_f64());
    if !failures.is_empty() {
        bail!(
            "{} run(s) failed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    if !report.missing.is_empty() {
        bail!(
            "{} of {} run(s) did not finish: {} (for Slurm, see {}/slurm/)",
            report.missing.len(),
            report.total,
            report.missing.join(", "),
            out.display()
        );
    }
    Ok(())
}

/// Writes the job-array script and submits it; returns the job id.
fn submit_array(
    args: &SweepArgs,
    spec: &SweepSpec,
    wae: &Path,
    out: &Path,
    indices: &[usize],
) -> Result<String> {
    fs::create_dir_all(out.join("slurm"))?;
    let data_dir = match &args.data_dir {
        Some(d) => Some(
            d.canonicalize()
                .with_context(|| format!("--data-dir {}", d.display()))?,
        ),
        None => None,
    };
    let text = slurm::script(
        &args.slurm,
        &slurm::ScriptInputs {
            wae,
            out,
            indices,
            device: &spec.device,
            data_dir: data_dir.as_deref(),
            max_steps: spec.max_steps,
            eval_n: spec.eval_n,
        },
    );
    let path = out.join("sweep.sbatch");
    write_atomic(&path, &text)?;
    let job = slurm::submit(&path)?;
    let jobs = out.join("slurm").join("jobs.txt");
    let mut previous = fs::read_to_string(&jobs).unwrap_or_default();
    previous.push_str(&format!("{job}\t{}\n", slurm::array_ranges(indices)));
    write_atomic(&jobs, &previous)?;
    eprintln!("submitted job {job}");
    Ok(job)
}

/// Builds the report of the sweep in `dir` from whatever has finished.
pub fn collect(dir: &Path) -> Result<Report> {
    let path = dir.join("sweep.toml");
    let text = fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (is {} a sweep folder?)",
            path.display(),
            dir.display()
        )
    })?;
    let spec: SweepSpec =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let tasks = tasks(&spec)?;
    let report = Report::collect(dir, &tasks)?;
    report.write(dir, &spec)?;
    eprintln!(
        "collected {} of {} run(s){}; wrote {}",
        report.total - report.missing.len(),
        report.total,
        if report.missing.is_empty() {
            String::new()
        } else {
            format!(" ({} missing)", report.missing.len())
        },
        dir.join("sweep.md").display()
    );
    print!("{}", report.markdown(&spec));
    Ok(report)
}

/// The local executor.
struct Local<'a> {
    wae: &'a Path,
    out: &'a Path,
    args: &'a SweepArgs,
}

impl Local<'_> {
    /// Runs the pending tasks, `--jobs` at once; returns the failures.
    fn run_all(&self, pending: &[(&Task, &str, RunState)]) -> Vec<String> {
        let jobs = self.args.jobs.min(pending.len()).max(1);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = (cores / jobs).max(1);
        let next = AtomicUsize::new(0);
        let failures = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some((task, _, state)) = pending.get(i) else {
                            break;
                        };
                        if let Err(e) = self.task(task, state, threads, jobs > 1) {
                            let msg = format!("{} seed {}: {e:#}", task.point.name, task.seed);
                            eprintln!("FAILED {msg}");
                            failures.lock().expect("no panic holds it").push(msg);
                        }
                    }
                });
            }
        });
        failures.into_inner().expect("no panic holds it")
    }

    /// A `wae` command with the sweep's device, data directory and thread count.
    fn wae(&self, sub: &str, threads: usize, log: Option<&Path>) -> Result<Command> {
        let mut cmd = Command::new(self.wae);
        cmd.arg(sub)
            .env("CANDLE_NUM_THREADS", threads.to_string())
            .env("RAYON_NUM_THREADS", threads.to_string());
        if let Some(log) = log {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .with_context(|| format!("opening {}", log.display()))?;
            cmd.stdout(Stdio::from(file.try_clone()?))
                .stderr(Stdio::from(file));
        }
        Ok(cmd)
    }

    /// Trains (or resumes) and evaluates one task, then marks it done.
    fn task(&self, task: &Task, state: &RunState, threads: usize, logged: bool) -> Result<()> {
        let dir = self.out.join(&task.paths.run);
        let log = if logged {
            let logs = self.out.join("logs");
            fs::create_dir_all(&logs)?;
            let log = logs.join(format!("{}-seed-{}.log", task.point.name, task.seed));
            eprintln!(
                "{} seed {}: output in {}",
                task.point.name,
                task.seed,
                log.display()
            );
            Some(log)
        } else {
            eprintln!("== {} seed {} ==", task.point.name, task.seed);
            None
        };
        let common = |cmd: &mut Command| {
            cmd.args(["--device", self.args.device.name()]);
            if let Some(d) = &self.args.data_dir {
                cmd.arg("--data-dir").arg(d);
            }
        };
        let config_path = self.out.join(&task.paths.config);
        let result = train_or_resume(state, &dir, &config_path, || {
            let mut cmd = self.wae("train", threads, log.as_deref())?;
            common(&mut cmd);
            if let Some(n) = self.args.max_steps {
                cmd.args(["--max-steps", &n.to_string()]);
            }
            Ok(cmd)
        });
        let with_log = |e: anyhow::Error| match &log {
            Some(l) => e.context(format!("its output is in {}", l.display())),
            None => e,
        };
        result.map_err(with_log)?;
        let mut eval = self.wae("eval", threads, log.as_deref())?;
        eval.arg(&dir).args(["--n", &self.args.eval_n.to_string()]);
        common(&mut eval);
        run_cmd(eval).map_err(with_log)?;
        fs::copy(
            self.out.join(task.done_template()),
            dir.join(".done.json.tmp"),
        )?;
        fs::rename(
            dir.join(".done.json.tmp"),
            wae_train::RunDir::new(&dir).done(),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
