//! `wae`: train and use Wasserstein auto-encoders.
//!
//! A thin binary: argument parsing, wiring and error display. Each subcommand
//! lives in its own module under `cmd/`; the work is done by the library crates.

mod cmd;
mod pictures;

use std::process::ExitCode;

/// Freed large blocks (activations, gradients, im2col buffers: the same sizes every
/// step) are kept for reuse instead of being unmapped and page-faulted in again; this
/// is what `cargo xtask bench` measures with (see `wae_kernels::alloc`). At most 1 GiB
/// of freed memory stays cached. `wae train` and `wae bench` also ask for huge pages.
#[global_allocator]
static ALLOC: wae_kernels::alloc::LargeBlockCache =
    wae_kernels::alloc::LargeBlockCache::new(1 << 30);

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Wasserstein auto-encoders (Tolstikhin et al. 2018) on candle.
#[derive(Debug, Parser)]
#[command(name = "wae", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a commented config for your own data (or print a preset as TOML).
    Init(cmd::init::InitArgs),
    /// Train a model from a preset or a TOML config, or resume a run.
    Train(cmd::train::TrainArgs),
    /// Decode random draws of the prior into a PNG grid.
    Sample(cmd::sample::SampleArgs),
    /// Show images above their reconstructions (PNG).
    Reconstruct(cmd::reconstruct::ReconstructArgs),
    /// Decode paths between the codes of test images (PNG).
    Interpolate(cmd::interpolate::InterpolateArgs),
    /// Sweep one latent coordinate at a time (PNG, one row per dimension).
    Traverse(cmd::traverse::TraverseArgs),
    /// Write the codes and labels of a split to a safetensors file.
    Encode(cmd::encode::EncodeArgs),
    /// Scatter the test codes (PCA when d_z > 2) beside prior samples (PNG).
    LatentPlot(cmd::latent_plot::LatentPlotArgs),
    /// Evaluate a run on the test set: eval.json and a table.
    Eval(cmd::eval::EvalArgs),
    /// Draw the loss curves of metrics.jsonl (PNG).
    Plot(cmd::plot::PlotArgs),
    /// Compare every op and one training step of each model on a device with the CPU.
    Selftest(cmd::selftest::SelftestArgs),
    /// Time the paper's MNIST WAE-MMD training step (images per second, JSON).
    Bench(cmd::bench::BenchArgs),
}

fn main() -> ExitCode {
    // SAFETY: first thing in `main`, before any other thread exists.
    unsafe { wae_kernels::use_rayon_pool_only() };
    let filter = EnvFilter::try_from_env("WAE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => cmd::train::run(args),
        other => run_other(other).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Every command but `train`, which has its own exit codes (130 / 143 when stopped by a signal).
fn run_other(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Train(args) => cmd::train::run(args).map(|_| ()),
        Command::Init(args) => cmd::init::run(args),
        Command::Sample(args) => cmd::sample::run(args),
        Command::Reconstruct(args) => cmd::reconstruct::run(args),
        Command::Interpolate(args) => cmd::interpolate::run(args),
        Command::Traverse(args) => cmd::traverse::run(args),
        Command::Encode(args) => cmd::encode::run(args),
        Command::LatentPlot(args) => cmd::latent_plot::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Plot(args) => cmd::plot::run(args),
        Command::Selftest(args) => cmd::selftest::run(args),
        Command::Bench(args) => cmd::bench::run(args),
    }
}
