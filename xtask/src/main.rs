//! Project chores for `wae`: downloads, the reproduction matrix and benchmarks.
//!
//! Run as `cargo xtask <command>` (the alias lives in `.cargo/config.toml`).

use anyhow::Result;
use clap::{Parser, Subcommand};

mod bench;
mod download;
mod gpu_bundle;
mod mnist_classifier;
mod reproduce;
mod sweep;
mod workspace;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Project chores for wae", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Download a data set or weights file: mnist, celeba, inception or dsprites.
    Download(download::DownloadArgs),
    /// Train the MNIST classifier of the offline FID-MNIST and save its weights.
    TrainMnistClassifier(mnist_classifier::TrainClassifierArgs),
    /// Train, evaluate and compare an experiment's models: results.json, results.md, pictures.
    Reproduce(reproduce::ReproduceArgs),
    /// Train and evaluate a config over a grid x seeds, here or as a Slurm job array:
    /// sweep.json, sweep.md, pareto.png.
    Sweep(sweep::SweepArgs),
    /// Time our WAE-MMD training step against the PyTorch peer (issue 11).
    Bench(bench::BenchArgs),
    /// Build the CUDA binary and write the folder one GPU call runs (run.sh, docs/gpu.md).
    GpuBundle(gpu_bundle::GpuBundleArgs),
}

fn main() -> Result<()> {
    // SAFETY: first thing in `main`, before any other thread exists. The bench's workers
    // are this binary too, so they time what `wae train` runs.
    unsafe { wae_kernels::use_rayon_pool_only() };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Download(args) => download::run(&args),
        Command::TrainMnistClassifier(args) => mnist_classifier::run(&args),
        Command::Reproduce(args) => reproduce::run(&args),
        Command::Sweep(args) => sweep::run(&args),
        Command::Bench(args) => bench::run(args),
        Command::GpuBundle(args) => gpu_bundle::run(&args),
    }
}
