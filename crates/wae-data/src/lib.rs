//! Data for Wasserstein auto-encoders: MNIST and CelebA loading, checksums, splits and batches.
//!
//! - [`MnistSource`] finds the directory holding the four MNIST IDX files (gzip or raw):
//!   an explicit directory (`--data-dir`), else `WAE_DATA_DIR`, else `data/mnist` under
//!   the current directory, nothing else (see [`MnistSource::resolve`]); tests take
//!   theirs from [`testing::mnist_dir`].
//! - [`Mnist::load`] reads them, checks headers, sizes and labels, and verifies the
//!   canonical MD5s of the uncompressed content once per file version, caching the verdict
//!   in the user's cache directory (or `WAE_CACHE_DIR`) -- never in the data directory.
//! - [`Split`]: the standard 60k/10k split, or the paper's (70k merged, shuffled with
//!   seed 123, last 10k as test).
//! - [`Dataset`] keeps u8 images on the host; [`Dataset::batch`] gathers rows into a
//!   `(N, 1, 28, 28)` f32 tensor in `[0, 1]` on any device; [`EpochIter`] yields the
//!   seeded shuffled batches of one epoch and can start at any batch, so a run resumes
//!   exactly mid-epoch.
//! - With the cargo feature `hub`, `Mnist::from_hub` fetches the parquet files of the
//!   Hugging Face dataset `ylecun/mnist` instead (module `hub`); [`Mnist::write_idx`]
//!   writes any `Mnist` back as the four gzip IDX files.
//! - [`CelebA::load`] reads the 64x64 CelebA cache (train/test split of seed 123, last
//!   20k test) that `cargo xtask download celeba` builds; the module [`celeba`] also has
//!   the preprocessing (crop box, PIL-exact Lanczos resize; JPEG/PNG decoding with the
//!   cargo feature `celeba`) and the cache writer [`celeba::CacheWriter`].
//! - [`FadingSquares`] and [`Dsprites`] (procedural generator, official npz loader): the latent-space data.
//!
//! Batches and epochs, on a small in-memory dataset:
//!
//! ```
//! use candle_core::{DType, Device};
//! use wae_data::{Dataset, EpochIter};
//!
//! // 5 images of 1x2x2 pixels, labels 0..5.
//! let pixels: Vec<u8> = (0..20).map(|v| v * 12).collect();
//! let data = Dataset::new(pixels, vec![0, 1, 2, 3, 4], 1, 2, 2)?;
//! let batch = data.batch(&[4, 0], &Device::Cpu)?;
//! assert_eq!(batch.dims(), &[2, 1, 2, 2]);
//! assert_eq!(batch.dtype(), DType::F32);
//!
//! // Epoch 3 of a run seeded with 42, batches of 2; the last partial batch is dropped.
//! let epoch = EpochIter::new(&data, 2, 42, 3, &Device::Cpu)?;
//! assert_eq!(epoch.num_batches(), 2);
//! // Resuming at batch 1 yields exactly the batches not yet seen.
//! let all: Vec<Vec<usize>> = epoch.map(|b| b.map(|b| b.indices)).collect::<Result<_, _>>()?;
//! let resumed = EpochIter::new_at(&data, 2, 42, 3, 1, &Device::Cpu)?;
//! let rest: Vec<Vec<usize>> = resumed.map(|b| b.map(|b| b.indices)).collect::<Result<_, _>>()?;
//! assert_eq!(rest, all[1..]);
//! # Ok::<(), wae_data::Error>(())
//! ```
//!
//! Loading MNIST (needs the files, see `data/README.md`):
//!
//! ```no_run
//! use candle_core::Device;
//! use wae_data::{Mnist, MnistSource, Split};
//!
//! let source = MnistSource::locate(None)?; // or Some(dir) from `--data-dir`
//! let mnist = Mnist::load(&source)?.into_split(Split::Paper)?;
//! println!("{mnist}"); // counts, per-class counts, mean pixel
//! for batch in mnist.train.epoch(100, 1, 0, &Device::Cpu)? {
//!     let batch = batch?; // batch.images: (100, 1, 28, 28) f32 in [0, 1]
//! #   let _ = batch;
//! }
//! # Ok::<(), wae_data::Error>(())
//! ```
#![deny(missing_docs)]

pub mod celeba;
mod checksum;
pub mod data_dir;
mod dataset;
pub mod dsprites;
mod error;
pub mod fading_squares;
#[cfg(feature = "hub")]
pub mod hub;
pub mod idx;
#[cfg(feature = "images")]
pub mod images;
mod mnist;
pub mod npy;
mod source;
pub mod testing;

pub use celeba::CelebA;
pub use checksum::{CACHE_DIR_ENV, CACHE_FILE, Verify, default_cache_dir};
pub use dataset::{Batch, Dataset, EpochIter, Summary, epoch_permutation, seeded_permutation};
pub use dsprites::{DSPRITES_FACTOR_SIZES, Dsprites, DspritesFactors, DspritesShape};
pub use error::{Error, HOW_TO_GET_CELEBA, HOW_TO_GET_MNIST, Result};
pub use fading_squares::{FadingSquares, FadingSquaresConfig};
pub use mnist::{
    FILES as MNIST_FILES, MNIST_CLASSES, MNIST_SIDE, Mnist, PAPER_SPLIT_SEED, Split, TEST_SIZE,
};
pub use source::{DATA_DIR_ENV, MnistSource};
/// MD5 of bytes as lowercase hex (re-exported from `wae-io`, which owns file digests).
pub use wae_io::md5_hex;
