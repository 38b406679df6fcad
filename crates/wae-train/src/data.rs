//! Which data a config trains on: the built-in sets (MNIST, CelebA, the generated fading
//! squares and dSprites with fixed data seeds) and the user's own images, arrays and Hub
//! datasets (through `wae_data::images`).

use std::path::{Path, PathBuf};

use wae_data::Dataset;

use crate::config::{DatasetKind, SplitKind, TrainConfig};
use crate::error::{Error, Result};

/// The training and test sets of a config (u8 images on the host).
pub fn load_data(cfg: &TrainConfig, data_dir: Option<&Path>) -> Result<(Dataset, Dataset)> {
    let dir = data_dir
        .map(Path::to_path_buf)
        .or_else(|| cfg.data.dir.clone());
    let (train, test) = match cfg.data.dataset {
        DatasetKind::Mnist => {
            let source = wae_data::MnistSource::locate(dir)?;
            let split = match cfg.data.split {
                SplitKind::Standard => wae_data::Split::Standard,
                SplitKind::Paper => wae_data::Split::Paper,
            };
            let mnist = wae_data::Mnist::load_split(&source, split)?;
            (mnist.train, mnist.test)
        }
        DatasetKind::Celeba => {
            if cfg.data.split != SplitKind::Paper {
                return Err(Error::InvalidConfig(
                    "dataset `celeba` has only the paper's split (seed 123, last 20k as test); \
                     set data.split = \"paper\""
                        .into(),
                ));
            }
            let path = wae_data::CelebA::locate(dir.as_deref())?;
            let celeba = wae_data::CelebA::load(&path)?;
            (celeba.train, celeba.test)
        }
        DatasetKind::FadingSquares => {
            let (n_train, n_test) = generated_sizes(cfg);
            let geometry = wae_data::FadingSquaresConfig::default();
            let deciles = |set: wae_data::FadingSquares| -> Result<Dataset> {
                let labels = set
                    .grey_levels
                    .iter()
                    .map(|g| ((g * 10.0).floor() as u8).min(9))
                    .collect();
                let (c, h, w) = set.images.image_shape();
                Ok(Dataset::new(set.images.images().to_vec(), labels, c, h, w)?)
            };
            let train = deciles(wae_data::FadingSquares::generate(
                n_train,
                TRAIN_DATA_SEED,
                &geometry,
            )?)?;
            let test = deciles(wae_data::FadingSquares::generate(
                n_test,
                TEST_DATA_SEED,
                &geometry,
            )?)?;
            return Ok((train, test));
        }
        DatasetKind::Dsprites => {
            let (train_rows, test_rows) = dsprites_rows(cfg);
            let load = |rows: &[usize]| -> Result<wae_data::Dsprites> {
                Ok(match dsprites_npz(dir.as_deref())? {
                    Some(path) => wae_data::Dsprites::load_npz_subset(&path, rows)?,
                    None => wae_data::Dsprites::generate_indices(rows)?,
                })
            };
            return Ok((load(&train_rows)?.images, load(&test_rows)?.images));
        }
        DatasetKind::Images | DatasetKind::Arrays | DatasetKind::Hub => {
            let loaded = load_user_data(cfg, None)?;
            (loaded.train, loaded.test)
        }
    };
    let limit = |set: Dataset, n: Option<usize>| -> Result<Dataset> {
        match n {
            Some(n) if n < set.len() => Ok(set.subset(&(0..n).collect::<Vec<_>>())?),
            _ => Ok(set),
        }
    };
    let train = limit(train, cfg.data.train_examples)?;
    let test = limit(test, cfg.data.test_examples)?;
    Ok((train, test))
}

/// Loads a config's own data (`data.dataset` = images, arrays or hub) through the image
/// cache (`cache_dir`: `None` = `WAE_CACHE_DIR`, else the user's cache directory),
/// showing a progress bar while a source is decoded for the first time and saying how
/// many images were skipped.
pub fn load_user_data(
    cfg: &TrainConfig,
    cache_dir: Option<&Path>,
) -> Result<wae_data::images::LoadedImages> {
    use wae_data::images::{ImageOptions, TestSplit};
    let d = &cfg.data;
    let (channels, size, _) = d.user_image_shape().ok_or_else(|| {
        Error::InvalidConfig(
            "data.size is required for your own data (the side of the square images)".into(),
        )
    })?;
    let options = ImageOptions {
        size,
        channels,
        skip_bad: d.skip_bad_images,
    };
    let split = TestSplit::Fraction {
        fraction: d
            .test_fraction
            .unwrap_or(crate::config::DEFAULT_TEST_FRACTION),
        seed: d.split_seed.unwrap_or(crate::config::DEFAULT_SPLIT_SEED),
    };
    let bar = std::cell::RefCell::new(None::<indicatif::ProgressBar>);
    let mut progress = |done: usize, total: usize| {
        let mut bar = bar.borrow_mut();
        let bar = bar.get_or_insert_with(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                b.set_draw_target(indicatif::ProgressDrawTarget::hidden());
                eprintln!("decoding {total} images into the image cache (once)");
            }
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "decoding images {bar:30} {pos}/{len} (eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        bar.set_position(done as u64);
    };
    let required = |p: &Option<PathBuf>, what: &str| {
        p.clone()
            .ok_or_else(|| Error::InvalidConfig(format!("data.path is required ({what})")))
    };
    let loaded = match d.dataset {
        DatasetKind::Images => {
            let root = required(&d.path, "the folder of images")?;
            wae_data::images::load_folder(
                &root,
                d.test_path.as_deref(),
                &split,
                &options,
                cache_dir,
                &mut progress,
            )?
        }
        DatasetKind::Arrays => {
            let path = required(&d.path, "the .npy / .npz file")?;
            let split = if d.test_path.is_some() {
                TestSplit::None
            } else {
                split
            };
            let loaded = wae_data::images::load_array(
                &path,
                d.array.as_deref(),
                &split,
                &options,
                cache_dir,
                &mut progress,
            )?;
            match &d.test_path {
                Some(test) => loaded.with_test_from(wae_data::images::load_array(
                    test,
                    d.array.as_deref(),
                    &TestSplit::None,
                    &options,
                    cache_dir,
                    &mut |_, _| {},
                )?),
                None => loaded,
            }
        }
        DatasetKind::Hub => {
            let repo = d.repo.clone().ok_or_else(|| {
                Error::InvalidConfig("data.repo is required for data.dataset = \"hub\"".into())
            })?;
            wae_data::images::load_hub(
                &repo,
                &d.files,
                &d.test_files,
                d.column.as_deref().unwrap_or("image"),
                &split,
                &options,
                cache_dir,
                &mut progress,
            )?
        }
        other => {
            return Err(Error::InvalidConfig(format!(
                "{other:?} is not user data (images, arrays or hub)"
            )));
        }
    };
    if let Some(bar) = bar.into_inner() {
        bar.finish_and_clear();
    }
    let skipped = &loaded.header.skipped;
    if !skipped.is_empty() {
        eprintln!(
            "warning: {} image(s) left out as unreadable (data.skip_bad_images), e.g. {}: {}",
            skipped.len(),
            skipped[0].name,
            skipped[0].reason
        );
    }
    if loaded.test.is_empty() {
        eprintln!(
            "warning: the test set is empty (data.test_fraction = 0 and no data.test_path); \
             evaluation will have nothing to score"
        );
    }
    Ok(loaded)
}

/// Data seed of the generated training sets (fixed, so every model of an experiment sees
/// the same images whatever its own seed).
pub const TRAIN_DATA_SEED: u64 = 1;
/// Data seed of the generated test sets.
pub const TEST_DATA_SEED: u64 = 2;

/// Sizes of a generated data set: `(train, test)` from the config or the defaults.
fn generated_sizes(cfg: &TrainConfig) -> (usize, usize) {
    let (train, test) = match cfg.data.dataset {
        DatasetKind::Dsprites => (100_000, 10_000),
        _ => (10_000, 2_000),
    };
    (
        cfg.data.train_examples.unwrap_or(train),
        cfg.data.test_examples.unwrap_or(test),
    )
}

/// The rows of the official dSprites file a config trains and tests on: a permutation
/// of all 737,280 rows drawn with [`TRAIN_DATA_SEED`], its first `train_examples` rows
/// for training and the next `test_examples` for testing.
pub fn dsprites_rows(cfg: &TrainConfig) -> (Vec<usize>, Vec<usize>) {
    let (n_train, n_test) = generated_sizes(cfg);
    let total = wae_data::dsprites::DSPRITES_LEN;
    let n_train = n_train.min(total);
    let n_test = n_test.min(total - n_train);
    let order = wae_data::seeded_permutation(total, TRAIN_DATA_SEED);
    (
        order[..n_train].to_vec(),
        order[n_train..n_train + n_test].to_vec(),
    )
}

/// The factors of a dSprites config's test images, in order (`None` for other data sets).
pub fn dsprites_test_factors(cfg: &TrainConfig) -> Result<Option<Vec<wae_data::DspritesFactors>>> {
    if cfg.data.dataset != DatasetKind::Dsprites {
        return Ok(None);
    }
    let (_, test_rows) = dsprites_rows(cfg);
    let factors = test_rows
        .iter()
        .map(|&i| wae_data::DspritesFactors::from_index(i))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Some(factors))
}

/// The official dSprites npz named by `dir` (the file, or a folder holding it), or
/// `None` to use the procedural generator.
fn dsprites_npz(dir: Option<&Path>) -> Result<Option<PathBuf>> {
    let Some(dir) = dir else {
        return Ok(None);
    };
    let path = wae_data::data_dir::file_or_folder(dir, wae_data::dsprites::DSPRITES_FILE);
    if !path.is_file() {
        return Err(Error::InvalidConfig(format!(
            "dSprites: {} does not exist; give the official {} (or its folder) with \
             --data-dir / data.dir, get it with `cargo xtask download dsprites`, or leave \
             data.dir unset to render the images with the built-in generator",
            path.display(),
            wae_data::dsprites::DSPRITES_FILE
        )));
    }
    Ok(Some(path))
}
