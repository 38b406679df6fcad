//! `--executor slurm`: the job-array script (`OUT/sweep.sbatch`, one array task per line of
//! `OUT/tasks.tsv`), its submission with `sbatch --parsable`, and waiting for it with
//! `squeue`. Each array task runs the same `wae train` / `wae eval` commands as the local
//! executor and resumes from its checkpoint when it is requeued or preempted.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

/// Resources of each array task (`#SBATCH` lines).
#[derive(Debug, Clone, Args)]
pub struct SlurmArgs {
    /// Slurm: CPU cores per task (also its `CANDLE_NUM_THREADS` / `RAYON_NUM_THREADS`).
    #[arg(long, default_value_t = 2)]
    pub cpus_per_task: usize,
    /// Slurm: memory per task (`--mem`, e.g. 8G).
    #[arg(long, default_value = "8G")]
    pub mem: String,
    /// Slurm: wall-time limit per task (`--time`, e.g. 04:00:00). A task killed at the limit
    /// keeps its checkpoint; running the sweep again resumes it.
    #[arg(long, default_value = "04:00:00")]
    pub time: String,
    /// Slurm: the partition (default: the cluster's default partition).
    #[arg(long)]
    pub partition: Option<String>,
    /// Slurm: generic resources per task, e.g. `gpu:1` (with --device cuda).
    #[arg(long)]
    pub gres: Option<String>,
    /// Slurm: the job name.
    #[arg(long, default_value = "wae-sweep")]
    pub job_name: String,
    /// Slurm: seconds between two `squeue` polls while waiting.
    #[arg(long, default_value_t = 5)]
    pub poll_seconds: u64,
}

/// What the script needs besides the resources.
#[derive(Debug, Clone)]
pub struct ScriptInputs<'a> {
    /// Absolute path of the `wae` binary.
    pub wae: &'a Path,
    /// Absolute path of the sweep folder.
    pub out: &'a Path,
    /// The array indices to run (lines of tasks.tsv, from 0).
    pub indices: &'a [usize],
    /// `--device` of every `wae` command.
    pub device: &'a str,
    /// `--data-dir` of every `wae` command.
    pub data_dir: Option<&'a Path>,
    /// `wae train --max-steps`.
    pub max_steps: Option<u64>,
    /// `wae eval --n`.
    pub eval_n: usize,
}

/// `0-3` for 0, 1, 2, 3; `0,2-4,7` for a selection (what `--array=` takes).
pub fn array_ranges(indices: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            end += 1;
            i += 1;
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// A path in single quotes for bash.
pub fn quoted(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// The `#SBATCH` lines of a job array over `indices` writing its logs to `out/slurm/`,
/// written by `written_by` (a comment line).
pub fn header(slurm: &SlurmArgs, out: &Path, indices: &[usize], written_by: &str) -> String {
    let mut s = String::from("#!/bin/bash\n");
    s.push_str(&format!("# Written by {written_by}.\n"));
    s.push_str(&format!("#SBATCH --job-name={}\n", slurm.job_name));
    s.push_str(&format!("#SBATCH --array={}\n", array_ranges(indices)));
    s.push_str("#SBATCH --requeue\n");
    s.push_str("#SBATCH --ntasks=1\n");
    s.push_str(&format!(
        "#SBATCH --cpus-per-task={}\n",
        slurm.cpus_per_task
    ));
    s.push_str(&format!("#SBATCH --mem={}\n", slurm.mem));
    s.push_str(&format!("#SBATCH --time={}\n", slurm.time));
    if let Some(p) = &slurm.partition {
        s.push_str(&format!("#SBATCH --partition={p}\n"));
    }
    if let Some(g) = &slurm.gres {
        s.push_str(&format!("#SBATCH --gres={g}\n"));
    }
    s.push_str(&format!(
        "#SBATCH --output={}/slurm/%A_%a.out\n",
        out.display()
    ));
    s.push_str("#SBATCH --open-mode=append\n");
    s
}

/// The job-array script.
pub fn script(slurm: &SlurmArgs, inputs: &ScriptInputs) -> String {
    let out = inputs.out;
    let mut s = header(
        slurm,
        out,
        inputs.indices,
        "`cargo xtask sweep --executor slurm` (see docs/sweeps.md)",
    );
    // The body: a task's line of tasks.tsv, then the commands a user could type.
    s.push_str(&format!(
        "\nset -euo pipefail\nWAE={}\nOUT={}\n",
        quoted(inputs.wae),
        quoted(out)
    ));
    let mut common = format!("--device {}", inputs.device);
    if let Some(d) = inputs.data_dir {
        common.push_str(&format!(" --data-dir {}", quoted(d)));
    }
    let budget = inputs
        .max_steps
        .map_or(String::new(), |n| format!(" --max-steps {n}"));
    s.push_str(&format!(
        r#"line=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$OUT/tasks.tsv")
[ -n "$line" ] || {{ echo "no line $SLURM_ARRAY_TASK_ID in $OUT/tasks.tsv" >&2; exit 1; }}
IFS=$'\t' read -r index point seed config run done_json <<<"$line"
export CANDLE_NUM_THREADS=${{SLURM_CPUS_PER_TASK:-1}} RAYON_NUM_THREADS=${{SLURM_CPUS_PER_TASK:-1}}
echo "== task $index: $point seed $seed on $(hostname), restart ${{SLURM_RESTART_COUNT:-0}} =="
show() {{ echo "$ $*"; "$@"; }}
if [ -f "$OUT/$run/done.json" ]; then
    echo "finished earlier: $OUT/$run"
    exit 0
fi
if [ -f "$OUT/$run/checkpoints/latest" ]; then
    cmp -s "$OUT/$config" "$OUT/$run/config.toml" || {{
        echo "$OUT/$run holds a run of another config than $OUT/$config" >&2; exit 1; }}
    show "$WAE" train --resume "$OUT/$run" {common}{budget}
else
    rm -rf "$OUT/$run"
    show "$WAE" train --config "$OUT/$config" --out "$OUT/$run" {common}{budget}
fi
show "$WAE" eval "$OUT/$run" --n {eval_n} {common}
cp "$OUT/$done_json" "$OUT/$run/.done.json.tmp"
mv "$OUT/$run/.done.json.tmp" "$OUT/$run/done.json"
echo "== task $index finished =="
"#,
        eval_n = inputs.eval_n,
    ));
    s
}

/// `program` found in `paths` (a `PATH` value).
fn on_path(paths: Option<&OsStr>, program: &str) -> Option<PathBuf> {
    paths.and_then(|paths| {
        std::env::split_paths(paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// Fails with what to do where Slurm's client commands are missing from `PATH`.
pub fn require_slurm() -> Result<()> {
    require_slurm_in(std::env::var_os("PATH").as_deref())
}

/// [`require_slurm`] for the `PATH` value `paths`.
fn require_slurm_in(paths: Option<&OsStr>) -> Result<()> {
    for program in ["sbatch", "squeue"] {
        if on_path(paths, program).is_none() {
            bail!(
                "`{program}` is not on PATH: --executor slurm needs a Slurm cluster's client \
                 commands (on a login node), or a local Slurm (`scripts/slurm-local.sh start`); \
                 see docs/sweeps.md. `--executor local` runs the same sweep here"
            );
        }
    }
    Ok(())
}

/// Submits `script_path` with `sbatch --parsable`; returns the job id.
pub fn submit(script_path: &Path) -> Result<String> {
    eprintln!("$ sbatch --parsable {}", script_path.display());
    let output = Command::new("sbatch")
        .arg("--parsable")
        .arg(script_path)
        .output()
        .context("running sbatch")?;
    if !output.status.success() {
        bail!(
            "sbatch failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    // `--parsable` prints `ID` or `ID;CLUSTER`.
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch printed `{}`, not a job id", text.trim());
    }
    Ok(id)
}

/// The job's array tasks still queued or running (`squeue -j ID -h`); empty once it is done.
pub fn queued(job: &str) -> Result<Vec<String>> {
    let output = Command::new("squeue")
        .args(["-j", job, "-h", "-o", "%i %T"])
        .output()
        .context("running squeue")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        // A job that has left the controller's memory is "Invalid job id".
        if err.contains("Invalid job id") {
            return Ok(Vec::new());
        }
        bail!("squeue -j {job} failed: {}", err.trim());
    }
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// Polls `squeue` every `poll` until job `job` has no task left.
pub fn wait(job: &str, poll: Duration) -> Result<()> {
    let mut last = String::new();
    loop {
        let tasks = queued(job)?;
        if tasks.is_empty() {
            eprintln!("job {job}: no task left in the queue");
            return Ok(());
        }
        let now = tasks.join(", ");
        if now != last {
            eprintln!("job {job}: {now}");
            last = now;
        }
        std::thread::sleep(poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slurm() -> SlurmArgs {
        SlurmArgs {
            cpus_per_task: 4,
            mem: "16G".into(),
            time: "01:30:00".into(),
            partition: None,
            gres: None,
            job_name: "wae-sweep".into(),
            poll_seconds: 5,
        }
    }

    #[test]
    fn missing_slurm_commands_point_to_the_docs() {
        let empty = tempfile::tempdir().unwrap();
        let err = require_slurm_in(Some(empty.path().as_os_str()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`sbatch` is not on PATH") && err.contains("docs/sweeps.md"),
            "{err}"
        );
        assert!(require_slurm_in(None).is_err());
    }

    #[test]
    fn array_indices_are_written_as_ranges() {
        assert_eq!(array_ranges(&[0, 1, 2, 3]), "0-3");
        assert_eq!(array_ranges(&[0, 2, 3, 4, 7]), "0,2-4,7");
        assert_eq!(array_ranges(&[5]), "5");
    }

    #[test]
    fn the_script_holds_the_resources_paths_and_resume() {
        let inputs = ScriptInputs {
            wae: Path::new("/opt/wae/bin/wae"),
            out: Path::new("/scratch/sweeps/lambda"),
            indices: &[0, 1, 2, 3, 4, 5],
            device: "cuda",
            data_dir: Some(Path::new("/data/it's mnist")),
            max_steps: Some(500),
            eval_n: 2000,
        };
        let s = script(&slurm(), &inputs);
        for line in [
            "#!/bin/bash\n",
            "#SBATCH --array=0-5\n",
            "#SBATCH --requeue\n",
            "#SBATCH --cpus-per-task=4\n",
            "#SBATCH --mem=16G\n",
            "#SBATCH --time=01:30:00\n",
            "#SBATCH --output=/scratch/sweeps/lambda/slurm/%A_%a.out\n",
            "WAE='/opt/wae/bin/wae'\n",
            "OUT='/scratch/sweeps/lambda'\n",
            "\"$((SLURM_ARRAY_TASK_ID + 1))p\" \"$OUT/tasks.tsv\"",
            "train --resume \"$OUT/$run\" --device cuda --data-dir '/data/it'\\''s mnist' --max-steps 500\n",
            "train --config \"$OUT/$config\" --out \"$OUT/$run\" --device cuda",
            "eval \"$OUT/$run\" --n 2000 --device cuda",
            "mv \"$OUT/$run/.done.json.tmp\" \"$OUT/$run/done.json\"",
        ] {
            assert!(s.contains(line), "missing {line:?} in\n{s}");
        }
        assert!(!s.contains("--partition") && !s.contains("--gres"), "{s}");
        let with = SlurmArgs {
            partition: Some("gpu".into()),
            gres: Some("gpu:1".into()),
            ..slurm()
        };
        let s = script(&with, &inputs);
        assert!(
            s.contains("#SBATCH --partition=gpu\n") && s.contains("#SBATCH --gres=gpu:1\n"),
            "{s}"
        );
        // Every #SBATCH line comes before the first command (sbatch stops reading there).
        let first_command = s.find("set -euo").unwrap();
        assert!(s.rfind("#SBATCH").unwrap() < first_command);
    }
}
