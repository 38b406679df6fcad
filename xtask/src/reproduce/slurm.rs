//! `cargo xtask reproduce --executor slurm`: one Slurm array task per model x seed, each
//! running this same `cargo xtask reproduce` for its one model and seed (the binary, not
//! cargo, with the `wae` binary built here), into the same output folder. A requeued or
//! preempted task resumes its run from the checkpoint `wae train` writes on SIGTERM. The
//! submitting process waits, then writes the table of every seed here.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use wae_train::RunDir;

use super::runner::{RunPaths, write_atomic};
use super::{ModelSpec, ReproduceArgs};
use crate::sweep::slurm::{self, quoted};

/// The runs still to do, as `(model key, seed)`.
pub fn pending(out: &Path, specs: &[ModelSpec], seeds: &[u64]) -> Vec<(&'static str, u64)> {
    let mut todo = Vec::new();
    for &seed in seeds {
        for spec in specs {
            let run = RunDir::new(out.join(RunPaths::new(spec.key, seed).run));
            if !run.done().is_file() {
                todo.push((spec.key, seed));
            }
        }
    }
    todo
}

/// What each array task passes to `xtask reproduce` besides its model and seed.
pub struct TaskInputs<'a> {
    /// Absolute path of this `xtask` binary.
    pub xtask: &'a Path,
    /// Absolute path of the `wae` binary.
    pub wae: &'a Path,
    /// Absolute output folder.
    pub out: &'a Path,
    /// The MNIST classifier (resolved before submitting, so no two tasks train it).
    pub classifier: Option<&'a Path>,
}

/// The job-array script: task i runs line i of `OUT/reproduce-tasks.tsv`.
pub fn script(args: &ReproduceArgs, inputs: &TaskInputs, count: usize) -> String {
    let indices: Vec<usize> = (0..count).collect();
    let mut s = slurm::header(
        &args.slurm,
        inputs.out,
        &indices,
        "`cargo xtask reproduce --executor slurm` (see docs/sweeps.md)",
    );
    let mut extra = String::new();
    if let Some(d) = &args.data_dir {
        let _ = write!(extra, " --data-dir {}", quoted(&absolute(d)));
    }
    if let Some(c) = inputs.classifier {
        let _ = write!(extra, " --classifier {}", quoted(c));
    }
    if let Some(i) = &args.inception {
        let _ = write!(extra, " --inception {}", quoted(&absolute(i)));
    }
    let _ = write!(
        s,
        r#"
set -euo pipefail
XTASK={xtask}
WAE={wae}
OUT={out}
line=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$OUT/reproduce-tasks.tsv")
[ -n "$line" ] || {{ echo "no line $SLURM_ARRAY_TASK_ID in $OUT/reproduce-tasks.tsv" >&2; exit 1; }}
IFS=$'\t' read -r model seed <<<"$line"
export CANDLE_NUM_THREADS=${{SLURM_CPUS_PER_TASK:-1}} RAYON_NUM_THREADS=${{SLURM_CPUS_PER_TASK:-1}}
echo "== $model seed $seed on $(hostname), restart ${{SLURM_RESTART_COUNT:-0}} =="
"$XTASK" reproduce {experiment} --profile {profile} --device {device} --models "$model" --seeds "$seed" --out "$OUT" --wae-bin "$WAE"{extra}
"#,
        xtask = quoted(inputs.xtask),
        wae = quoted(inputs.wae),
        out = quoted(inputs.out),
        experiment = args.experiment.name(),
        profile = args.profile.name(),
        device = args.device.name(),
    );
    s
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Submits the pending runs as a job array and, unless `--no-wait`, waits for it and checks
/// that every run finished. Returns `false` when the caller should stop (nothing waited for).
pub fn run_array(
    args: &ReproduceArgs,
    out: &Path,
    wae: &Path,
    classifier: Option<&Path>,
    specs: &[ModelSpec],
    seeds: &[u64],
) -> Result<bool> {
    let todo = pending(out, specs, seeds);
    if todo.is_empty() {
        eprintln!("every run is finished already; writing the table");
        return Ok(true);
    }
    slurm::require_slurm()?;
    let out = absolute(out);
    fs::create_dir_all(out.join("slurm"))?;
    let tasks: String = todo.iter().map(|(m, s)| format!("{m}\t{s}\n")).collect();
    write_atomic(&out.join("reproduce-tasks.tsv"), &tasks)?;
    let xtask = std::env::current_exe().context("locating this xtask binary")?;
    let wae = absolute(wae);
    let classifier = classifier.map(absolute);
    let text = script(
        args,
        &TaskInputs {
            xtask: &xtask,
            wae: &wae,
            out: &out,
            classifier: classifier.as_deref(),
        },
        todo.len(),
    );
    let path = out.join("reproduce.sbatch");
    write_atomic(&path, &text)?;
    let job = slurm::submit(&path)?;
    eprintln!(
        "submitted job {job}: {} array task(s), logs in {}",
        todo.len(),
        out.join("slurm").display()
    );
    if args.no_wait {
        println!(
            "job {job} submitted; when it has finished, run the same command without \
             --executor slurm to write the table (finished runs are skipped)"
        );
        return Ok(false);
    }
    slurm::wait(&job, Duration::from_secs(args.slurm.poll_seconds.max(1)))?;
    let missing = pending(&out, specs, seeds);
    if !missing.is_empty() {
        let names: Vec<String> = missing
            .iter()
            .map(|(m, s)| format!("{m} seed {s}"))
            .collect();
        bail!(
            "job {job} ended with {} run(s) unfinished: {}; see {}/slurm/{job}_*.out, then run \
             the command again (it resumes them)",
            missing.len(),
            names.join(", "),
            out.display()
        );
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reproduce::tests::smoke_args;

    #[test]
    fn each_array_task_runs_reproduce_for_its_model_and_seed() {
        let mut args = smoke_args(vec![0, 1]);
        args.slurm.cpus_per_task = 3;
        args.slurm.partition = Some("gpu".into());
        let text = script(
            &args,
            &TaskInputs {
                xtask: Path::new("/abs/xtask"),
                wae: Path::new("/abs/wae"),
                out: Path::new("/abs/out dir"),
                classifier: Some(Path::new("/abs/c.safetensors")),
            },
            4,
        );
        for line in [
            "#SBATCH --array=0-3",
            "#SBATCH --requeue",
            "#SBATCH --cpus-per-task=3",
            "#SBATCH --partition=gpu",
            "#SBATCH --output=/abs/out dir/slurm/%A_%a.out",
            "XTASK='/abs/xtask'",
            "OUT='/abs/out dir'",
            "IFS=$'\\t' read -r model seed <<<\"$line\"",
            "\"$XTASK\" reproduce mnist --profile smoke --device cpu --models \"$model\" --seeds \
             \"$seed\" --out \"$OUT\" --wae-bin \"$WAE\" --classifier '/abs/c.safetensors'",
        ] {
            assert!(text.contains(line), "missing `{line}` in:\n{text}");
        }
    }

    #[test]
    fn finished_runs_are_not_submitted_again() {
        let tmp = tempfile::tempdir().unwrap();
        let specs = crate::reproduce::models(crate::reproduce::Experiment::Mnist);
        let done = RunDir::new(tmp.path().join(RunPaths::new(specs[1].key, 1).run));
        fs::create_dir_all(done.path()).unwrap();
        fs::write(done.done(), "{}").unwrap();
        let todo = pending(tmp.path(), &specs, &[0, 1]);
        assert_eq!(todo.len(), 2 * specs.len() - 1);
        assert!(!todo.contains(&(specs[1].key, 1)));
        assert_eq!(
            todo[0],
            (specs[0].key, 0),
            "seed by seed, as the local order"
        );
    }
}
