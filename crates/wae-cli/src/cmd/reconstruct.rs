//! `wae reconstruct`: images beside their reconstructions G(E(x)), in the
//! papers' layout (a row of originals, then the row of their reconstructions).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use crate::pictures::{self, Network, RunArgs, SplitArg};

/// Arguments of `wae reconstruct`.
#[derive(Debug, Args)]
#[command(
    after_help = "Odd rows are the images, even rows their reconstructions \
    (encoder mean, evaluation mode).\n\nExamples:\n  \
    wae reconstruct runs/mmd                    # first 50 test images -> runs/mmd/reconstructions.png\n  \
    wae reconstruct runs/mmd --split train --n 30 --columns 6 --seed 1"
)]
pub struct ReconstructArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Which split the images come from.
    #[arg(long, value_enum, default_value = "test")]
    pub split: SplitArg,
    /// Number of images (rounded down to whole rows of --columns).
    #[arg(long, default_value_t = 50)]
    pub n: usize,
    /// Images per row.
    #[arg(long, default_value_t = 10)]
    pub columns: usize,
    /// Pick the images at random with this seed (default: the first --n of the split).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Up-scaling factor of every image (nearest neighbour).
    #[arg(long, default_value_t = 2)]
    pub scale: u32,
    /// Output PNG (default: RUN/reconstructions.png).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Runs `wae reconstruct`.
pub fn run(args: ReconstructArgs) -> Result<()> {
    if args.n == 0 || args.columns == 0 {
        bail!("--n and --columns must be at least 1");
    }
    let run = pictures::load_run(
        &args.run,
        "reconstruct",
        &[Network::Encoder, Network::Decoder],
    )?;
    pictures::check_picture_size(
        &run,
        2 * args.n as u128,
        args.columns.min(args.n) as u128,
        args.scale,
        &format!(
            "--n {} --columns {} --scale {}",
            args.n, args.columns, args.scale
        ),
    )?;
    let out = run.output_path(args.out.as_deref(), "reconstructions.png");
    let _lock = pictures::claim_output(&run.run_dir, &out, "wae reconstruct")?;
    let data = run.data(args.split, args.run.data_dir.as_deref(), None)?;
    let wanted = args.n.min(data.len());
    let columns = args.columns.min(wanted);
    let n = wanted - wanted % columns;
    let indices = pictures::choose_indices(data.len(), n, args.seed);
    let images = data.batch(&indices, &candle_core::Device::Cpu)?;
    let (codes, _) = run.encode(&data, &indices)?;
    let reconstructions = run.decode(&codes)?;
    let both = wae_viz::interleave_rows(&images, &reconstructions, columns)?;
    let grid = wae_viz::image_grid(&both, &pictures::grid_config(&run, columns, args.scale))?;
    pictures::save_picture(
        &grid,
        &out,
        &format!(
            "{n} {} images (odd rows) and their reconstructions (even rows), step {}",
            args.split.name(),
            run.step
        ),
    )
}
