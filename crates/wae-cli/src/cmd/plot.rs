//! `wae plot`: the loss curves of a run's `metrics.jsonl` as one PNG, one
//! panel per logged quantity.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use wae_train::metrics::{METRICS_FILE, read_metrics};
use wae_viz::{LinePlot, YScale};

/// Arguments of `wae plot`.
#[derive(Debug, Args)]
#[command(
    after_help = "One panel per number logged in RUN/metrics.jsonl (total, reconstruction, \
    penalty, gradient norms, learning rates, ...), against the training step. No checkpoint \
    is needed: it works while a run is still training.\n\nExamples:\n  \
    wae plot runs/mmd                          # -> runs/mmd/losses.png\n  \
    wae plot runs/mmd --only total,penalty --y-scale log --out curves.png"
)]
pub struct PlotArgs {
    /// Run directory of `wae train` (holding metrics.jsonl).
    #[arg(value_name = "RUN")]
    pub run: PathBuf,
    /// Plot only these quantities (comma-separated names as in metrics.jsonl).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Vertical scale of every panel.
    #[arg(long, value_enum, default_value = "auto")]
    pub y_scale: ScaleArg,
    /// Panels per row.
    #[arg(long, default_value_t = 2)]
    pub columns: usize,
    /// Output PNG (default: RUN/losses.png).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `--y-scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScaleArg {
    /// Logarithmic when all values are positive and span more than a factor of 30.
    Auto,
    /// Linear.
    Linear,
    /// Logarithmic (non-positive values are left out).
    Log,
}

/// Keys of a metrics record that are not curves.
const NOT_CURVES: [&str; 3] = ["step", "epoch", "seconds"];

/// Order of the panels: the loss parts first, learning rates last.
fn panel_rank(name: &str) -> (u8, String) {
    let rank = match name {
        "total" => 0,
        "reconstruction" => 1,
        "penalty" => 2,
        n if n.starts_with("lr") => 9,
        n if n.starts_with("grad_norm") => 8,
        _ => 5,
    };
    (rank, name.to_string())
}

/// Runs `wae plot`.
pub fn run(args: PlotArgs) -> Result<()> {
    if !args.run.exists() {
        bail!("run directory {} does not exist", args.run.display());
    }
    if !args.run.is_dir() {
        bail!(
            "{} is a file, not a run directory of `wae train`",
            args.run.display()
        );
    }
    let metrics_path = args.run.join(METRICS_FILE);
    if !metrics_path.is_file() {
        bail!(
            "{} has no {METRICS_FILE}: it is not a run directory of `wae train`",
            args.run.display()
        );
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.run.join("losses.png"));
    let _lock = crate::pictures::claim_output(&args.run, &out, "wae plot")?;
    let records = read_metrics(&metrics_path)
        .with_context(|| format!("while reading {}", metrics_path.display()))?;
    let mut curves: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (i, record) in records.iter().enumerate() {
        let step = record
            .get("step")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(i as f64);
        for (key, value) in record {
            if NOT_CURVES.contains(&key.as_str()) {
                continue;
            }
            if let Some(v) = value.as_f64() {
                curves.entry(key.clone()).or_default().push((step, v));
            }
        }
    }
    if curves.is_empty() {
        bail!(
            "{} holds no logged numbers yet (the run logs every training.log_every_steps steps)",
            metrics_path.display()
        );
    }
    if !args.only.is_empty() {
        let known: Vec<String> = curves.keys().cloned().collect();
        for name in &args.only {
            if !curves.contains_key(name) {
                bail!(
                    "--only: `{name}` is not in {}; it logs: {}",
                    metrics_path.display(),
                    known.join(", ")
                );
            }
        }
        curves.retain(|k, _| args.only.contains(k));
    }
    let mut names: Vec<String> = curves.keys().cloned().collect();
    names.sort_by_key(|n| panel_rank(n));
    let scale = match args.y_scale {
        ScaleArg::Auto => YScale::Auto,
        ScaleArg::Linear => YScale::Linear,
        ScaleArg::Log => YScale::Log,
    };
    let mut panels = Vec::with_capacity(names.len());
    for name in &names {
        let points = curves.remove(name).unwrap_or_default();
        let mut plot = LinePlot::new(name.clone(), "step").with_series(name.clone(), points);
        plot.y_scale = scale;
        let title = if plot.uses_log_scale() {
            format!("{name} (log scale)")
        } else {
            name.clone()
        };
        plot.title = title;
        panels.push(
            plot.render()
                .with_context(|| format!("while drawing the curve of `{name}`"))?,
        );
    }
    let picture = wae_viz::tile(&panels, args.columns.max(1), 4, [255, 255, 255]);
    crate::pictures::save_picture(
        &picture,
        &out,
        &format!(
            "{} curves from {} records of {}",
            names.len(),
            records.len(),
            metrics_path.display()
        ),
    )
}
