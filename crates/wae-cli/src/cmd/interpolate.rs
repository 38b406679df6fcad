//! `wae interpolate`: decoded paths between the codes of test images, one row
//! per pair, or (`--grid N`) the "finer grid" between the codes of four images.

use std::path::PathBuf;

use anyhow::{Result, bail};
use candle_core::{Device, Tensor};
use clap::Args;
use wae_viz::Interpolation;

use crate::pictures::{self, Network, RunArgs, SplitArg};

/// Arguments of `wae interpolate`.
#[derive(Debug, Args)]
#[command(
    after_help = "Each row starts and ends with a test image; between them are the \
    decoded codes on the path between their encodings (the first and last of which are \
    the two reconstructions). With --grid N: an N x N grid between the codes of four test \
    images shown at the outer corners.\n\nExamples:\n  \
    wae interpolate runs/mmd                          # 10 pairs x 10 steps -> runs/mmd/interpolations.png\n  \
    wae interpolate runs/mmd --pairs 5 --steps 12 --spherical --seed 7\n  \
    wae interpolate runs/mmd --grid 12                # -> runs/mmd/interpolation-grid.png"
)]
pub struct InterpolateArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Number of image pairs (rows).
    #[arg(long, default_value_t = 10)]
    pub pairs: usize,
    /// Decoded points per path, both ends included (at least 2).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Move along great circles (spherical interpolation) instead of straight lines.
    #[arg(long)]
    pub spherical: bool,
    /// Draw an N x N grid between four images instead of rows between pairs.
    #[arg(long, value_name = "N")]
    pub grid: Option<usize>,
    /// Which split the images come from.
    #[arg(long, value_enum, default_value = "test")]
    pub split: SplitArg,
    /// Seed of the choice of images.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Up-scaling factor of every image (nearest neighbour).
    #[arg(long, default_value_t = 2)]
    pub scale: u32,
    /// Output PNG (default: RUN/interpolations.png, or RUN/interpolation-grid.png with --grid).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Runs `wae interpolate`.
pub fn run(args: InterpolateArgs) -> Result<()> {
    let mode = if args.spherical {
        Interpolation::Spherical
    } else {
        Interpolation::Linear
    };
    let mode_name = if args.spherical {
        "spherical"
    } else {
        "linear"
    };
    match args.grid {
        Some(size) if size < 2 => bail!("--grid must be at least 2"),
        None if args.pairs == 0 => bail!("--pairs must be at least 1"),
        None if args.steps < 2 => bail!("--steps must be at least 2 (the two ends)"),
        _ => {}
    }
    let run = pictures::load_run(
        &args.run,
        "interpolate",
        &[Network::Encoder, Network::Decoder],
    )?;
    let (cells, columns, flags) = match args.grid {
        Some(size) => {
            let outer = size as u128 + 2;
            (outer * outer, outer, format!("--grid {size}"))
        }
        None => (
            args.pairs as u128 * (args.steps as u128 + 2),
            args.steps as u128 + 2,
            format!("--pairs {} --steps {}", args.pairs, args.steps),
        ),
    };
    pictures::check_picture_size(
        &run,
        cells,
        columns,
        args.scale,
        &format!("{flags} --scale {}", args.scale),
    )?;
    let default_name = if args.grid.is_some() {
        "interpolation-grid.png"
    } else {
        "interpolations.png"
    };
    let out = run.output_path(args.out.as_deref(), default_name);
    let _lock = pictures::claim_output(&run.run_dir, &out, "wae interpolate")?;
    let data = run.data(args.split, args.run.data_dir.as_deref(), None)?;
    let wanted = match args.grid {
        Some(_) => 4,
        None => 2 * args.pairs,
    };
    if data.len() < wanted {
        bail!(
            "the {} split has {} images, fewer than the {wanted} needed",
            args.split.name(),
            data.len()
        );
    }
    let indices = pictures::choose_indices(data.len(), wanted, Some(args.seed));
    let originals = data.batch(&indices, &Device::Cpu)?;
    let (codes, _) = run.encode(&data, &indices)?;
    let codes = pictures::rows(&codes)?;
    let (_, c, h, w) = originals.dims4()?;
    // Blank cells are mid-grey, the colour of the grid's border.
    let (lo, hi) = run.value_range();
    let blank = (Tensor::ones((1, c, h, w), originals.dtype(), &Device::Cpu)?
        * f64::from((lo + hi) / 2.0))?;
    let (cells, columns, what) = match args.grid {
        None => {
            let mut path_codes = Vec::with_capacity(args.pairs * args.steps);
            for pair in codes.chunks_exact(2) {
                path_codes.extend(wae_viz::interpolation_path(
                    &pair[0], &pair[1], args.steps, mode,
                )?);
            }
            let decoded = run.decode(&run.codes_tensor(&path_codes)?)?;
            let mut rows = Vec::with_capacity(args.pairs * (args.steps + 2));
            for p in 0..args.pairs {
                rows.push(originals.narrow(0, 2 * p, 1)?);
                rows.push(decoded.narrow(0, p * args.steps, args.steps)?);
                rows.push(originals.narrow(0, 2 * p + 1, 1)?);
            }
            (
                Tensor::cat(&rows, 0)?,
                args.steps + 2,
                format!(
                    "{} {mode_name} interpolations of {} steps between {} images, step {}",
                    args.pairs,
                    args.steps,
                    args.split.name(),
                    run.step
                ),
            )
        }
        Some(size) => {
            let corners = [
                codes[0].as_slice(),
                codes[1].as_slice(),
                codes[2].as_slice(),
                codes[3].as_slice(),
            ];
            let grid_codes = wae_viz::corner_grid(corners, size, mode)?;
            let decoded = run.decode(&run.codes_tensor(&grid_codes)?)?;
            // (size + 2)^2 cells: the decoded grid inside, the four images at the
            // outer corners, blank cells elsewhere on the border.
            let outer = size + 2;
            let mut cells = Vec::with_capacity(outer * outer);
            for r in 0..outer {
                for col in 0..outer {
                    let corner = match (r, col) {
                        (0, 0) => Some(0),
                        (0, x) if x == outer - 1 => Some(1),
                        (y, 0) if y == outer - 1 => Some(2),
                        (y, x) if y == outer - 1 && x == outer - 1 => Some(3),
                        _ => None,
                    };
                    if let Some(k) = corner {
                        cells.push(originals.narrow(0, k, 1)?);
                    } else if r == 0 || col == 0 || r == outer - 1 || col == outer - 1 {
                        cells.push(blank.clone());
                    } else {
                        cells.push(decoded.narrow(0, (r - 1) * size + (col - 1), 1)?);
                    }
                }
            }
            (
                Tensor::cat(&cells, 0)?,
                outer,
                format!(
                    "{size}x{size} {mode_name} grid between the codes of 4 {} images, step {}",
                    args.split.name(),
                    run.step
                ),
            )
        }
    };
    let grid = wae_viz::image_grid(&cells, &pictures::grid_config(&run, columns, args.scale))?;
    pictures::save_picture(&grid, &out, &what)
}
