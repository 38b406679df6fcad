//! `wae`: train and use Wasserstein auto-encoders.
//!
//! A thin binary: argument parsing, wiring and error display. Each subcommand
//! lives in its own module under `cmd/`; the work is done by the library crates.

mod cmd;

use std::process::ExitCode;

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
    /// Train a model from a preset or a TOML config, or resume a run.
    Train(cmd::train::TrainArgs),
}

fn main() -> ExitCode {
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
