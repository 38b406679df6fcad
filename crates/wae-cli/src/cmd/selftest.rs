//! `wae selftest`: every op and one training step of each model family on a device,
//! compared with the CPU running candle's own ops (`wae_train::selftest`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use wae_train::DeviceChoice;
use wae_train::selftest::{SelftestOptions, SelftestReport, selftest};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    wae selftest --device cuda            # CUDA against the CPU\n  \
    wae selftest --json selftest.json     # the fast CPU kernels against candle's ops\n\n\
    Exit status 1 when any check is outside its tolerance.")]
pub struct SelftestArgs {
    /// The device under test; the reference is always the CPU with candle's own ops.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Images per batch in the model steps.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Divides the convolutional nets' channel counts (1: the paper's width).
    #[arg(long, default_value_t = 4)]
    pub width_div: usize,
    /// Seed of the inputs, weights and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the report as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

fn print_report(r: &SelftestReport) {
    println!("device under test: {}", r.device.name);
    if let (Some(free), Some(total)) = (r.device.memory_free, r.device.memory_total) {
        println!(
            "memory: {:.1} GiB free of {:.1} GiB",
            free as f64 / (1u64 << 30) as f64,
            total as f64 / (1u64 << 30) as f64
        );
    }
    println!("reference: {}", r.reference);
    println!(
        "errors against the f64 truth; a check passes when the device's is at most {} x the \
         reference's or {} x the floor ({:.0e} of the largest value for ops, {:.0e} for models)",
        wae_train::selftest::TOLERANCE,
        wae_train::selftest::TOLERANCE,
        wae_train::selftest::OP_FLOOR,
        wae_train::selftest::MODEL_FLOOR,
    );
    println!(
        "{:<42} {:<34} {:>10} {:>10} {:>10} {:>7}",
        "op / model", "compared", "scale", "device", "reference", "ratio"
    );
    let mut group = "";
    for c in &r.checks {
        let shown = if c.group == group {
            ""
        } else {
            c.group.as_str()
        };
        group = &c.group;
        println!(
            "{:<42} {:<34} {:>10.2e} {:>10.2e} {:>10.2e} {:>7.2}  {}",
            shown,
            c.what,
            c.scale,
            c.error,
            c.reference_error,
            c.ratio,
            if c.passed() { "ok" } else { "MISMATCH" }
        );
    }
    if let Some(w) = r.worst() {
        println!(
            "{} checks, {} outside tolerance; largest ratio {:.2} ({}, {}); {:.1} s",
            r.checks.len(),
            r.failures().len(),
            w.ratio,
            w.group,
            w.what,
            r.seconds
        );
    }
}

pub fn run(args: SelftestArgs) -> Result<()> {
    let device = args.device.open()?;
    let opts = SelftestOptions {
        batch: args.batch,
        width_div: args.width_div,
        seed: args.seed,
    };
    let report = selftest(&device, &opts, |what| eprintln!("selftest: {what}"))
        .context("the self-test could not run")?;
    print_report(&report);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        wae_viz::write_atomic(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let failures = report.failures();
    if !failures.is_empty() {
        let names: Vec<String> = failures
            .iter()
            .map(|c| format!("{} ({})", c.group, c.what))
            .collect();
        bail!(
            "{} of {} checks differ from the reference beyond their tolerance: {}",
            failures.len(),
            report.checks.len(),
            names.join(", ")
        );
    }
    Ok(())
}
