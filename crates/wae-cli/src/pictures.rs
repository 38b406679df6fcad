//! What the commands that use a trained model share: their arguments, loading the
//! run (or one of its checkpoints) through [`wae_train::TrainedRun`], which finds the
//! checkpoint, checks the networks a command needs are there and says what is wrong
//! otherwise, claiming and checking outputs, and saving pictures.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use image::RgbImage;
use wae_train::{DeviceChoice, RunLock};

/// The networks a command needs (the library's [`wae_train::Network`]).
pub use wae_train::Network;

/// Which split of the run's data a command reads.
pub use wae_train::Split as SplitArg;
/// A trained model loaded for use (the library's [`wae_train::TrainedRun`]).
pub use wae_train::TrainedRun as LoadedRun;

/// The arguments every model command takes.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Run directory of `wae train` (its newest checkpoint is used), or one of
    /// its `checkpoints/step-*` directories.
    #[arg(value_name = "RUN")]
    pub run: PathBuf,
    /// Device to run the networks on.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Directory holding the MNIST files (default: WAE_DATA_DIR, else data/mnist under the
    /// current directory).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// The rows of a host `(N, d)` tensor as vectors.
pub fn rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(t.to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .to_vec2::<f32>()?)
}

/// Loads the run or checkpoint at `args.run` for `command`, after checking that
/// its checkpoint holds the networks in `needs`.
pub fn load_run(args: &RunArgs, command: &str, needs: &[Network]) -> Result<LoadedRun> {
    let device = args.device.open()?;
    LoadedRun::load_needing(&args.run, &device, needs)
        .with_context(|| format!("`wae {command}` cannot use {}", args.run.display()))
}

/// Before any work starts: locks `run_dir` when `path` lies inside it (another
/// process writing there, e.g. `wae train`, makes this fail naming its PID), then
/// checks `path` can be written. Hold the returned lock until the output is saved.
pub fn claim_output(run_dir: &Path, path: &Path, command: &str) -> Result<Option<RunLock>> {
    let lock = if is_inside(path, run_dir) {
        Some(RunLock::acquire(run_dir, command).with_context(|| {
            format!(
                "`{command}` writes {} into the run directory; give --out FILE elsewhere \
                 to write while another process holds the run",
                path.display()
            )
        })?)
    } else {
        None
    };
    wae_viz::ensure_writable(path)
        .with_context(|| format!("the output {} cannot be written", path.display()))?;
    Ok(lock)
}

/// Whether `path` (which may not exist yet) lies inside the existing directory `dir`,
/// symbolic links resolved.
fn is_inside(path: &Path, dir: &Path) -> bool {
    let Ok(dir) = dir.canonicalize() else {
        return false;
    };
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    // The nearest ancestor that exists, resolved; what is below it cannot be a link.
    absolute
        .ancestors()
        .skip(1)
        .find_map(|a| a.canonicalize().ok())
        .is_some_and(|a| a.starts_with(&dir))
}

/// Saves a picture and says so.
pub fn save_picture(image: &RgbImage, path: &Path, what: &str) -> Result<()> {
    wae_viz::save_png(image, path).with_context(|| format!("while saving {what}"))?;
    println!(
        "wrote {} ({what}, {}x{} pixels)",
        path.display(),
        image.width(),
        image.height()
    );
    Ok(())
}

/// The grid settings of a picture of this run: `columns` per row, scale
/// `scale`, the run's pixel range.
pub fn grid_config(run: &LoadedRun, columns: usize, scale: u32) -> wae_viz::GridConfig {
    wae_viz::GridConfig {
        columns: columns.max(1),
        scale: scale.max(1),
        value_range: run.value_range(),
        ..wae_viz::GridConfig::default()
    }
}

/// Most pixels a picture may have (67 million: 200 MB of RGB), so that a slip such
/// as `--n 100000000` or `--scale 100000` is an error instead of an allocation abort.
pub const MAX_PICTURE_PIXELS: u128 = 1 << 26;
/// Largest `--scale`.
pub const MAX_SCALE: u32 = 64;

/// Checks, before anything is decoded, that a grid of `cells` images of this run in
/// `columns` columns at `scale` stays within [`MAX_PICTURE_PIXELS`]; `flags` names
/// the options that set its size (e.g. `--n 100 --columns 10 --scale 2`) for the error.
pub fn check_picture_size(
    run: &LoadedRun,
    cells: u128,
    columns: u128,
    scale: u32,
    flags: &str,
) -> Result<()> {
    if scale > MAX_SCALE {
        bail!("--scale {scale} is too large: at most {MAX_SCALE}");
    }
    let (_, h, w) = run.cfg.model.decoder.architecture.image_shape();
    let border = u128::from(wae_viz::GridConfig::default().border);
    let scale = u128::from(scale.max(1));
    let columns = columns.max(1);
    let rows = cells.div_ceil(columns);
    let width = columns
        .saturating_mul(w as u128 * scale + border)
        .saturating_add(border);
    let height = rows
        .saturating_mul(h as u128 * scale + border)
        .saturating_add(border);
    let pixels = width.saturating_mul(height);
    if pixels > MAX_PICTURE_PIXELS || width > u128::from(u32::MAX) || height > u128::from(u32::MAX)
    {
        bail!(
            "{flags} asks for a picture of {width} x {height} pixels, more than the {} million \
             a picture may have; ask for fewer images, fewer columns or a smaller --scale",
            MAX_PICTURE_PIXELS / 1_000_000
        );
    }
    Ok(())
}

/// `count` distinct indices below `len`: the first ones, or a seeded random
/// choice when `seed` is given.
pub fn choose_indices(len: usize, count: usize, seed: Option<u64>) -> Vec<usize> {
    let count = count.min(len);
    match seed {
        None => (0..count).collect(),
        Some(seed) => {
            use rand::SeedableRng;
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            rand::seq::index::sample(&mut rng, len, count).into_vec()
        }
    }
}
