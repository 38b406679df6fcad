//! `wae bench`: images per second of the WAE-MMD training step on this machine
//! (`wae_train::bench`), the step `cargo xtask bench` compares with PyTorch.

use anyhow::{Context, Result};
use clap::Args;
use wae_train::DeviceChoice;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    wae bench --device cuda --batch 400          # paper width, 400 images a step\n  \
    wae bench --width-div 4 --steps 10           # the CPU profile's width\n\n\
    Prints one JSON line (images_per_s, s_per_step, ...) on stdout; the peer is\n\
    xtask/peers/torch_wae_mmd.py with the same --width-div / --batch / --device.")]
pub struct BenchArgs {
    /// Where to run.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Divides every channel count of the MNIST networks (1: the paper's width).
    #[arg(long, default_value_t = 1)]
    pub width_div: usize,
    /// Images per step.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
}

pub fn run(args: BenchArgs) -> Result<()> {
    // The training step as `wae train` runs it, on huge pages.
    crate::ALLOC.set_huge_pages(true);
    let device = args.device.open()?;
    let timing =
        wae_train::bench::measure(args.width_div, args.batch, args.warmup, args.steps, &device)
            .context("the timed training step failed")?;
    eprintln!(
        "{}: width / {}, batch {}: {:.1} images/s ({:.4} s a step, {} steps)",
        timing.device,
        timing.width_div,
        timing.batch,
        timing.images_per_s,
        timing.s_per_step,
        timing.steps
    );
    println!("{}", serde_json::to_string(&timing)?);
    Ok(())
}
