//! `wae traverse`: one row per latent dimension, that coordinate swept over
//! a range while the others stay fixed.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::pictures::{self, Network, RunArgs, SplitArg};

/// Arguments of `wae traverse`.
#[derive(Debug, Args)]
#[command(
    after_help = "Row k shows the decoded codes base + t e_k for --steps values of t from \
    -range to +range prior standard deviations. The base is the prior's centre (0), or the \
    code of a test image with --from-image.\n\nExamples:\n  \
    wae traverse runs/mmd                          # every dimension -> runs/mmd/traverse.png\n  \
    wae traverse runs/mmd --dim 0,3 --range 2 --steps 9\n  \
    wae traverse runs/mmd --from-image 17"
)]
pub struct TraverseArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Which latent dimensions: `all` or a comma-separated list such as `0,3,5`.
    #[arg(long, default_value = "all")]
    pub dim: String,
    /// Half-width of the sweep, in prior standard deviations.
    #[arg(long, default_value_t = 3.0)]
    pub range: f32,
    /// Values per row.
    #[arg(long, default_value_t = 11)]
    pub steps: usize,
    /// Start from the code of this image of the test split instead of the prior's centre.
    #[arg(long, value_name = "INDEX")]
    pub from_image: Option<usize>,
    /// Up-scaling factor of every image (nearest neighbour).
    #[arg(long, default_value_t = 2)]
    pub scale: u32,
    /// Output PNG (default: RUN/traverse.png).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Parses `all` or `0,3,5` for a latent space of dimension `d`.
pub fn parse_dims(text: &str, d: usize) -> Result<Vec<usize>> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("all") {
        return Ok((0..d).collect());
    }
    let mut dims = Vec::new();
    for part in text.split(',') {
        let k: usize = part.trim().parse().with_context(|| {
            format!("--dim: `{part}` is not a dimension number (give `all` or e.g. `0,3,5`)")
        })?;
        if k >= d {
            bail!(
                "--dim: dimension {k} does not exist; this model has d_z = {d} (0..{})",
                d - 1
            );
        }
        dims.push(k);
    }
    Ok(dims)
}

/// Runs `wae traverse`.
pub fn run(args: TraverseArgs) -> Result<()> {
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    if !(args.range.is_finite() && args.range > 0.0) {
        bail!("--range must be a positive number, got {}", args.range);
    }
    let needs: &[Network] = if args.from_image.is_some() {
        &[Network::Encoder, Network::Decoder]
    } else {
        &[Network::Decoder]
    };
    let run = pictures::load_run(&args.run, "traverse", needs)?;
    let d = run.latent_dim();
    let dims = parse_dims(&args.dim, d)?;
    pictures::check_picture_size(
        &run,
        dims.len() as u128 * args.steps as u128,
        args.steps as u128,
        args.scale,
        &format!(
            "--steps {} over {} dimensions at --scale {}",
            args.steps,
            dims.len(),
            args.scale
        ),
    )?;
    let out = run.output_path(args.out.as_deref(), "traverse.png");
    let _lock = pictures::claim_output(&run.run_dir, &out, "wae traverse")?;
    let (base, base_text) = match args.from_image {
        None => (vec![0f32; d], "the prior's centre".to_string()),
        Some(index) => {
            let data = run.data(SplitArg::Test, args.run.data_dir.as_deref(), None)?;
            if index >= data.len() {
                bail!(
                    "--from-image {index}: the test split has {} images",
                    data.len()
                );
            }
            let (codes, _) = run.encode(&data, &[index])?;
            let base = pictures::rows(&codes)?.remove(0);
            (base, format!("the code of test image {index}"))
        }
    };
    let std = run.prior_std() as f32;
    let values: Vec<f32> = wae_viz::symmetric_values(args.range * std, args.steps)
        .into_iter()
        .collect();
    let codes = wae_viz::traversal(&base, &dims, &values)?;
    let images = run.decode(&run.codes_tensor(&codes)?)?;
    let grid = wae_viz::image_grid(
        &images,
        &pictures::grid_config(&run, args.steps, args.scale),
    )?;
    pictures::save_picture(
        &grid,
        &out,
        &format!(
            "{} dimensions x {} values in [-{r}, {r}] x {std:.3} around {base_text}, step {}",
            dims.len(),
            args.steps,
            run.step,
            r = args.range
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_parse() {
        assert_eq!(parse_dims("all", 3).unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_dims(" 2, 0 ", 3).unwrap(), vec![2, 0]);
        let err = parse_dims("3", 3).unwrap_err().to_string();
        assert!(err.contains("d_z = 3"), "{err}");
        assert!(parse_dims("x", 3).is_err());
    }
}
