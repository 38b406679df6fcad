//! The PyTorch side of `cargo xtask bench`: the peer scripts run in a fresh interpreter
//! each, under `xtask/reference/peer_rss.py` for their peak RSS.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{BenchArgs, Case, report::Measurement};

/// The PyTorch side: interpreter, peer script and the RSS wrapper.
pub(super) struct Peer {
    python: PathBuf,
    script: PathBuf,
    wrapper: PathBuf,
}

impl Peer {
    /// PyTorch's own answer: `torch.backends.cpu.get_cpu_capability()` (the SIMD level its
    /// ATen kernels dispatch to; its GEMMs are oneDNN / MKL, which choose their own).
    pub(super) fn simd(&self) -> String {
        let out = Command::new(&self.python)
            .args([
                "-c",
                "import torch; print(torch.__version__, torch.backends.cpu.get_cpu_capability())",
            ])
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let text = String::from_utf8_lossy(&o.stdout).trim().to_string();
                format!("torch {text} (torch.backends.cpu.get_cpu_capability)")
            }
            _ => "unknown (torch.backends.cpu.get_cpu_capability failed)".into(),
        }
    }

    pub(super) fn locate(args: &BenchArgs, workspace: &Path) -> Result<Self> {
        let script = args
            .peer_script
            .clone()
            .unwrap_or_else(|| workspace.join("xtask/peers/torch_wae_mmd.py"));
        if !script.is_file() {
            bail!(
                "PyTorch peer script not found at {} (pass --peer-script, or --no-peer to run only ours)",
                script.display()
            );
        }
        let probe = Command::new(&args.torch_python)
            .args(["-c", "import torch; print(torch.__version__)"])
            .output();
        match probe {
            Ok(o) if o.status.success() => {}
            Ok(o) => bail!(
                "{} cannot import torch ({}); install it (`python3 -m venv V && V/bin/pip install torch numpy`, docs/performance.md), \
                 point --torch-python / WAE_TORCH_PYTHON at one that can, or pass --no-peer",
                args.torch_python.display(),
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("no message")
            ),
            Err(e) => bail!(
                "cannot run {}: {e}; pass --torch-python / WAE_TORCH_PYTHON, or --no-peer",
                args.torch_python.display()
            ),
        }
        Ok(Self {
            python: args.torch_python.clone(),
            script,
            wrapper: workspace.join("xtask/reference/peer_rss.py"),
        })
    }

    /// One measurement of `case` by its PyTorch counterpart, in a fresh interpreter.
    pub(super) fn run_case(&self, case: &Case, quick: bool) -> Result<Measurement> {
        let (reps, _) = case.reps(quick);
        let reference = self.wrapper.parent().unwrap_or(Path::new("."));
        let (script, args): (PathBuf, Vec<String>) = match case {
            // The peer script always warms up 3 steps itself.
            Case::Step {
                width_div, batch, ..
            } => (
                self.script.clone(),
                vec![
                    format!("--width-div={width_div}"),
                    format!("--batch={batch}"),
                    format!("--steps={reps}"),
                ],
            ),
            Case::Mmd { n, d } => (
                reference.join("mmd_bench_torch.py"),
                vec![
                    format!("--sizes={n}"),
                    format!("--dims={d}"),
                    "--variants=summed".into(),
                    format!("--reps={reps}"),
                ],
            ),
            Case::Eval { n } => (
                self.script.with_file_name("torch_eval.py"),
                vec![format!("--n={n}")],
            ),
            Case::Gemm { n } => (
                self.script.with_file_name("torch_gemm.py"),
                vec![format!("--n={n}"), format!("--reps={reps}")],
            ),
            Case::FcStep { batch } => (
                self.script.with_file_name("torch_fc_wae.py"),
                vec![format!("--batch={batch}"), format!("--steps={reps}")],
            ),
            Case::Inception { batch } => (
                reference.join("inception_reference.py"),
                vec![
                    "--bench-json".into(),
                    "--batch".into(),
                    batch.to_string(),
                    "--reps".into(),
                    reps.to_string(),
                ],
            ),
        };
        let out = Command::new(&self.python)
            .arg(&self.wrapper)
            .arg(&script)
            .args(&args)
            .args(["--threads", "2"])
            .output()
            .with_context(|| format!("running {}", self.python.display()))?;
        if !out.status.success() {
            bail!(
                "PyTorch peer {} failed ({}): {}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // The scripts print JSON lines among others; later keys win.
        let mut merged = serde_json::Map::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(line) {
                merged.extend(m);
            }
        }
        let mut run: Measurement =
            serde_json::from_value(Value::Object(merged)).with_context(|| {
                format!("PyTorch peer {} printed unexpected JSON", script.display())
            })?;
        if let Case::Mmd { n, .. } = case {
            // mmd_bench_torch.py reports the fastest step in milliseconds.
            if let Some(ms) = run.best_ms.filter(|ms| *ms > 0.0) {
                run.images_per_s = Some(*n as f64 / (ms / 1e3));
                run.framework = Some("PyTorch (summed formulation)".into());
            }
        }
        if run.images_per_s.is_none() {
            bail!("PyTorch peer {} printed no images_per_s", script.display());
        }
        Ok(run)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A stand-in interpreter that prints what the peer scripts print: a text line, the
    /// script's JSON line and the RSS wrapper's.
    fn fake_python(dir: &Path, lines: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("python");
        std::fs::write(&path, format!("#!/bin/sh\ncat <<'EOF'\n{lines}\nEOF\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn peer_lines_merge_into_one_measurement() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let peer = |lines: &str| Peer {
            python: fake_python(dir.path(), lines),
            script: dir.path().join("torch_wae_mmd.py"),
            wrapper: dir.path().join("peer_rss.py"),
        };
        let step = Case::Step {
            name: "train_step",
            width_div: 4,
            batch: 100,
        };
        let run = peer(
            "# warming up\n\
             {\"framework\": \"pytorch\", \"images_per_s\": 250.5, \"threads\": 2, \"torch\": \"2.5.1\"}\n\
             {\"peak_rss_kb\": 400000}",
        )
        .run_case(&step, true)?;
        assert_eq!(
            run,
            Measurement {
                images_per_s: Some(250.5),
                peak_rss_kb: Some(400000.0),
                threads: Some(2),
                framework: Some("pytorch".into()),
                torch: Some("2.5.1".into()),
                best_ms: None,
                product_gflop_per_step: None,
            }
        );
        // mmd_bench_torch.py gives the fastest step in milliseconds: codes per second.
        let mmd = peer(
            "{\"impl\": \"torch-summed\", \"n\": 100, \"best_ms\": 2.0}\n{\"peak_rss_kb\": 1}",
        )
        .run_case(&Case::Mmd { n: 100, d: 8 }, true)?;
        assert_eq!(mmd.images_per_s, Some(50_000.0));
        assert_eq!(
            mmd.framework.as_deref(),
            Some("PyTorch (summed formulation)")
        );
        let err = peer("{\"peak_rss_kb\": 1}")
            .run_case(&step, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("printed no images_per_s"), "{err}");
        Ok(())
    }
}
