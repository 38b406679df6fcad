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
    wae sample runs/mmd --n 64 --seed 3 --out samples-64.png\n  \
    wae sample runs/mmd --sampler gmm:10     # a 10-component mixture fitted to training codes")]
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
    /// Output PNG (default: RUN/samples.png, or RUN/samples-gmm-K.png).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Where the codes come from: `prior`, or `gmm:K`, a K-component full-covariance
    /// Gaussian mixture fitted by EM to the encoder means of up to --fit-images training
    /// images (the post-hoc sampler; seeded with --seed).
    #[arg(long, default_value = "prior", value_name = "prior|gmm:K")]
    pub sampler: String,
    /// Training images whose codes the mixture is fitted to.
    #[arg(long, default_value_t = 10_000)]
    pub fit_images: usize,
}

/// `--sampler`: the prior, or a mixture with this many components.
pub fn parse_sampler(text: &str) -> Result<Option<usize>> {
    if text == "prior" {
        return Ok(None);
    }
    match text.strip_prefix("gmm:").map(str::parse::<usize>) {
        Some(Ok(k)) if k >= 1 => Ok(Some(k)),
        _ => bail!("--sampler {text}: expected `prior` or `gmm:K` with K >= 1, e.g. gmm:10"),
    }
}

/// Fits a `k`-component mixture to the encoder means of the first `fit_images` training
/// images of `run`, says so, and returns `n` codes drawn from it (`seed`).
fn gmm_codes(
    run: &pictures::LoadedRun,
    data_dir: Option<&std::path::Path>,
    k: usize,
    fit_images: usize,
    n: usize,
    seed: u64,
) -> Result<candle_core::Tensor> {
    let data = run.data(pictures::SplitArg::Train, data_dir, Some(fit_images))?;
    let drawn = run.gmm_codes(&data, k, n, seed)?;
    println!(
        "fitted a {k}-component Gaussian mixture to {} training codes ({} EM iterations, \
         mean log-likelihood {:.3})",
        drawn.fit_points, drawn.iterations, drawn.log_likelihood
    );
    Ok(drawn.codes)
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
    let components = parse_sampler(&args.sampler)?;
    let networks: &[Network] = match components {
        Some(_) => &[Network::Encoder, Network::Decoder],
        None => &[Network::Decoder],
    };
    let run = pictures::load_run(&args.run, "sample", networks)?;
    let columns = args.columns.unwrap_or_else(|| square_columns(args.n));
    pictures::check_picture_size(
        &run,
        args.n as u128,
        columns as u128,
        args.scale,
        &format!("--n {} --columns {columns} --scale {}", args.n, args.scale),
    )?;
    let default_name = match components {
        Some(k) => format!("samples-gmm-{k}.png"),
        None => "samples.png".into(),
    };
    let out = run.output_path(args.out.as_deref(), &default_name);
    let _lock = pictures::claim_output(&run.run_dir, &out, "wae sample")?;
    let codes = match components {
        Some(k) => gmm_codes(
            &run,
            args.run.data_dir.as_deref(),
            k,
            args.fit_images,
            args.n,
            args.seed,
        )?,
        None => {
            let mut rng = StdRng::seed_from_u64(args.seed);
            run.model()
                .sample_prior(args.n, &mut rng, &candle_core::Device::Cpu)?
        }
    };
    let source = match components {
        Some(k) => format!("a {k}-component mixture fitted to the training codes"),
        None => format!("the prior {}", run.prior_text()),
    };
    let images = run.decode(&codes)?;
    let grid = wae_viz::image_grid(&images, &pictures::grid_config(&run, columns, args.scale))?;
    pictures::save_picture(
        &grid,
        &out,
        &format!(
            "{} samples of {source}, seed {}, step {}",
            args.n, args.seed, run.step
        ),
    )
}
