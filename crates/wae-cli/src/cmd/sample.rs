//! `wae sample`: images decoded from random draws of the prior, as a PNG grid.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::pictures::{self, Network, RunArgs};

/// Arguments of `wae sample`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    wae sample runs/mmd                      # 100 samples -> runs/mmd/samples.png\n  \
    wae sample runs/mmd --n 64 --seed 3 --out samples-64.png")]
pub struct SampleArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Number of samples.
    #[arg(long, default_value_t = 100)]
    pub n: usize,
    /// Seed of the prior draws (the same seed gives the same picture).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Images per row (default: the square root of --n, rounded up).
    #[arg(long)]
    pub columns: Option<usize>,
    /// Up-scaling factor of every image (nearest neighbour).
    #[arg(long, default_value_t = 2)]
    pub scale: u32,
    /// Output PNG (default: RUN/samples.png).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The default number of columns for `n` images: a square-ish grid.
pub fn square_columns(n: usize) -> usize {
    ((n as f64).sqrt().ceil() as usize).max(1)
}

/// Runs `wae sample`.
pub fn run(args: SampleArgs) -> Result<()> {
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    let run = pictures::load_run(&args.run, "sample", &[Network::Decoder])?;
    let columns = args.columns.unwrap_or_else(|| square_columns(args.n));
    pictures::check_picture_size(
        &run,
        args.n as u128,
        columns as u128,
        args.scale,
        &format!("--n {} --columns {columns} --scale {}", args.n, args.scale),
    )?;
    let out = run.output_path(args.out.as_deref(), "samples.png");
    let _lock = pictures::claim_output(&run.run_dir, &out, "wae sample")?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let codes = run
        .model()
        .sample_prior(args.n, &mut rng, &candle_core::Device::Cpu)?;
    let images = run.decode(&codes)?;
    let grid = wae_viz::image_grid(&images, &pictures::grid_config(&run, columns, args.scale))?;
    pictures::save_picture(
        &grid,
        &out,
        &format!(
            "{} samples of the prior {}, seed {}, step {}",
            args.n,
            run.prior_text(),
            args.seed,
            run.step
        ),
    )
}
