//! `cargo xtask download mnist|celeba|inception|dsprites [--dir DIR]`.
//!
//! | target | source | check | result (default `DIR`) |
//! | --- | --- | --- | --- |
//! | `mnist` | Hugging Face dataset `ylecun/mnist`, its two parquet files (hf-hub cache) | canonical MD5s of the uncompressed IDX content (wae-data's loader) | the four `*-ubyte.gz` IDX files in `data/mnist` |
//! | `inception` | pytorch-fid's release `pt_inception-2015-12-05-6726825d.pth` (or `--weights FILE`) | SHA-256 of docs/PAPER.md | the `.pth` and its safetensors conversion in `data/weights` |
//! | `dsprites` | `dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz` from google-deepmind/dsprites-dataset | no published checksum: the arrays' names and shapes are checked instead | the `.npz` in `data/dsprites` |
//! | `celeba` | Hugging Face dataset `flwrlabs/celeba` (parquet shards under `img_align+identity+attr/`), or `--from` a local `img_align_celeba.zip` / directory | decoding, 178x218 size, CRC-32 of the cache | `celeba64.bin` in `data/celeba` ([`wae_data::celeba`]) |
//!
//! HTTP downloads resume after an interruption and are skipped when the file is already
//! there with the right checksum ([`wae_download::download`]); hub files live in hf-hub's
//! cache (`HF_HOME`), `HF_HUB_OFFLINE=1` keeps to it. Every failure to fetch names the
//! URL or repository and says where to put a copy made by hand.

mod celeba;
mod dsprites;
mod inception;
mod mnist;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use wae_data::celeba::CELEBA_TEST_SIZE;
use wae_download::{Options, Outcome};
use wae_metrics::inception::FID_WEIGHTS_URL;

use dsprites::{DSPRITES_IMAGES, DSPRITES_URL};

/// What `cargo xtask download` fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// MNIST from the hub's parquet copy, written as the four IDX files.
    Mnist,
    /// CelebA's aligned images, cropped and resized to 64x64 into one cache file.
    Celeba,
    /// pytorch-fid's Inception weights, converted to safetensors.
    Inception,
    /// The dSprites npz.
    Dsprites,
}

/// Arguments of `cargo xtask download`.
#[derive(Args, Debug, Clone)]
pub struct DownloadArgs {
    /// What to get.
    #[arg(value_enum)]
    pub what: Target,
    /// Directory to write into (default: data/mnist, data/celeba, data/weights or
    /// data/dsprites).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// celeba: build the cache from a local `img_align_celeba.zip` or a directory of the
    /// aligned images (178x218 JPEG/PNG) instead of the hub copy.
    #[arg(long, value_name = "ZIP_OR_DIR")]
    pub from: Option<PathBuf>,
    /// celeba: number of test images (the last of the seed-123 order).
    #[arg(long, default_value_t = CELEBA_TEST_SIZE)]
    pub test_size: usize,
    /// inception: convert this local copy of the `.pth` instead of downloading it.
    #[arg(long, value_name = "PTH")]
    pub weights: Option<PathBuf>,
    /// inception: where to write the safetensors (default:
    /// DIR/pt_inception-2015-12-05-6726825d.safetensors).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// inception --weights: convert even when the file's SHA-256 is not the published one.
    #[arg(long)]
    pub no_checksum: bool,
    /// Redo the work even when the result is already there (mnist, celeba).
    #[arg(long)]
    pub force: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `cargo xtask download`.
pub fn run(args: &DownloadArgs) -> Result<()> {
    let dir = |name: &str| {
        args.dir
            .clone()
            .unwrap_or_else(|| wae_data::data_dir::default_dir(name))
    };
    match args.what {
        Target::Mnist => mnist::mnist(&dir("mnist"), args.force, !args.quiet),
        Target::Inception => {
            let dir = dir("weights");
            let report = inception::inception(
                FID_WEIGHTS_URL,
                &dir,
                args.weights.as_deref(),
                args.out.as_deref(),
                !args.no_checksum,
                !args.quiet,
            )?;
            println!("{report}");
            Ok(())
        }
        Target::Dsprites => {
            let dest = dsprites::dsprites(DSPRITES_URL, &dir("dsprites"), !args.quiet)?;
            println!(
                "dSprites: {} ({DSPRITES_IMAGES} images of 64x64; arrays and shapes checked, \
                 no checksum is published)",
                dest.display()
            );
            Ok(())
        }
        Target::Celeba => celeba::celeba(
            &dir("celeba"),
            args.from.as_deref(),
            args.test_size,
            args.force,
            !args.quiet,
        ),
    }
}

fn options(progress: bool) -> Options {
    Options {
        progress,
        ..Options::default()
    }
}

fn describe(outcome: Outcome) -> String {
    match outcome {
        Outcome::CacheHit => "already there".into(),
        Outcome::Downloaded => "downloaded".into(),
        Outcome::Resumed { from_bytes } => format!("download resumed at byte {from_bytes}"),
    }
}
