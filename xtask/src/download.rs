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

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use wae_data::celeba::{
    CACHE_FILE_NAME, CELEBA_IMAGES, CELEBA_SPLIT_SEED, CELEBA_TEST_SIZE, CacheHeader, CacheWriter,
    CelebA,
};
use wae_data::{MNIST_FILES, Mnist, MnistSource, Verify};
use wae_download::{Checksum, Options, Outcome};
use wae_metrics::inception::{
    FID_WEIGHTS_FILE_NAME, FID_WEIGHTS_SHA256, FID_WEIGHTS_URL, convert_pth,
};

/// The hub dataset holding the aligned CelebA images.
pub const CELEBA_HUB_DATASET: &str = "flwrlabs/celeba";
/// The folder of [`CELEBA_HUB_DATASET`] with the aligned images' parquet shards.
pub const CELEBA_HUB_FOLDER: &str = "img_align+identity+attr/";
/// Where the dSprites file is published (no checksum is published with it).
pub const DSPRITES_URL: &str = "https://github.com/google-deepmind/dsprites-dataset/raw/master/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz";
/// The dSprites file name.
pub const DSPRITES_FILE_NAME: &str = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz";
/// Number of images in dSprites.
pub const DSPRITES_IMAGES: usize = 737_280;
/// File name of the converted Inception weights.
pub const FID_SAFETENSORS_FILE_NAME: &str = "pt_inception-2015-12-05-6726825d.safetensors";

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
        Target::Mnist => mnist(&dir("mnist"), args.force, !args.quiet),
        Target::Inception => {
            let dir = dir("weights");
            let report = inception(
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
            let dest = dsprites(DSPRITES_URL, &dir("dsprites"), !args.quiet)?;
            println!(
                "dSprites: {} ({DSPRITES_IMAGES} images of 64x64; arrays and shapes checked, \
                 no checksum is published)",
                dest.display()
            );
            Ok(())
        }
        Target::Celeba => celeba(
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

// ---------------------------------------------------------------------------------------
// MNIST

/// Fetches MNIST's parquet files from the hub, writes the IDX files into `dir` and
/// checks them against the canonical MD5s.
fn mnist(dir: &Path, force: bool, progress: bool) -> Result<()> {
    if !force
        && MNIST_FILES
            .iter()
            .all(|(name, _)| dir.join(format!("{name}.gz")).is_file())
    {
        let source = MnistSource::from_dir(dir);
        if let Ok(m) = Mnist::load(&source) {
            println!(
                "MNIST already in {} ({} train, {} test, canonical MD5s); --force to redo",
                dir.display(),
                m.train.len(),
                m.test.len()
            );
            return Ok(());
        }
    }
    let hub = |file: &str| {
        wae_download::hub_file(wae_data::hub::HUB_DATASET, file, progress).with_context(|| {
            format!(
                "MNIST could not be fetched. Without network, copy the four IDX files \
                 (train-images-idx3-ubyte.gz, ...) into {} instead (see data/README.md)",
                dir.display()
            )
        })
    };
    let train = hub(wae_data::hub::HUB_TRAIN_FILE)?;
    let test = hub(wae_data::hub::HUB_TEST_FILE)?;
    let mnist = mnist_from_parquet(&train, &test, dir, Verify::Always)?;
    println!(
        "MNIST: {} train and {} test images from the hub dataset {} written to {} \
         as IDX files; their uncompressed content has the canonical MD5s",
        mnist.train.len(),
        mnist.test.len(),
        wae_data::hub::HUB_DATASET,
        dir.display()
    );
    Ok(())
}

/// Reads the two parquet files, writes the four gzip IDX files into `dir` and loads them
/// back with `verify`; on a failed check the written files are removed again.
fn mnist_from_parquet(train: &Path, test: &Path, dir: &Path, verify: Verify) -> Result<Mnist> {
    let mnist = Mnist::from_parquet(train, test).context("while reading MNIST's parquet files")?;
    let written = mnist
        .write_idx(dir)
        .with_context(|| format!("while writing the IDX files into {}", dir.display()))?;
    let source = MnistSource::from_dir(dir).with_verify(verify);
    match Mnist::load(&source) {
        Ok(back) if back == mnist => Ok(back),
        Ok(_) => bail!(
            "the IDX files written to {} read back differently",
            dir.display()
        ),
        Err(e) => {
            for path in &written {
                let _ = std::fs::remove_file(path);
            }
            Err(anyhow::Error::new(e).context(format!(
                "the hub's MNIST copy, written as IDX files, is not the canonical MNIST \
                 (the files were removed again); get the original IDX files instead \
                 (see data/README.md) and put them in {}",
                dir.display()
            )))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Inception

/// Fetches (or takes `local`) the FID Inception `.pth`, checks its SHA-256 (unless
/// `check` is false, only allowed with `local`) and converts it to safetensors.
/// Returns a one-paragraph report.
fn inception(
    url: &str,
    dir: &Path,
    local: Option<&Path>,
    out: Option<&Path>,
    check: bool,
    progress: bool,
) -> Result<String> {
    let mut report = Vec::new();
    let pth = match local {
        Some(path) => {
            ensure!(path.is_file(), "--weights {}: no such file", path.display());
            if check {
                let actual = wae_io::sha256_file(path)
                    .with_context(|| format!("while hashing {}", path.display()))?;
                ensure!(
                    actual == FID_WEIGHTS_SHA256,
                    "{}: SHA-256 {actual}, but pytorch-fid's {FID_WEIGHTS_FILE_NAME} has \
                     {FID_WEIGHTS_SHA256}. Pass --no-checksum to convert it anyway.",
                    path.display()
                );
                report.push(format!(
                    "{}: SHA-256 matches the published one",
                    path.display()
                ));
            } else {
                report.push(format!(
                    "{}: SHA-256 NOT checked (--no-checksum)",
                    path.display()
                ));
            }
            path.to_path_buf()
        }
        None => {
            ensure!(
                check,
                "--no-checksum only applies to a local file given with --weights"
            );
            let dest = dir.join(FID_WEIGHTS_FILE_NAME);
            let outcome = wae_download::download(
                url,
                &dest,
                Some(&Checksum::sha256(FID_WEIGHTS_SHA256)),
                &options(progress),
            )
            .context("the FID Inception weights could not be downloaded")?;
            report.push(format!(
                "{}: {} (SHA-256 {FID_WEIGHTS_SHA256} checked)",
                dest.display(),
                describe(outcome)
            ));
            dest
        }
    };
    let out = out.map_or_else(|| dir.join(FID_SAFETENSORS_FILE_NAME), Path::to_path_buf);
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("while creating {}", parent.display()))?;
    }
    let count = convert_pth(&pth, &out)
        .with_context(|| format!("while converting {} to safetensors", pth.display()))?;
    report.push(format!("{}: {count} tensors converted", out.display()));
    if check {
        wae_metrics::InceptionV3::load(&out, &candle_core::Device::Cpu).with_context(|| {
            format!(
                "{} does not load as the FID Inception network",
                out.display()
            )
        })?;
        report.push("it loads as the FID Inception-v3 (every weight name and shape)".into());
    }
    Ok(report.join("\n"))
}

fn describe(outcome: Outcome) -> String {
    match outcome {
        Outcome::CacheHit => "already there".into(),
        Outcome::Downloaded => "downloaded".into(),
        Outcome::Resumed { from_bytes } => format!("download resumed at byte {from_bytes}"),
    }
}

// ---------------------------------------------------------------------------------------
// dSprites

/// Fetches the dSprites npz into `dir` and checks its arrays. Returns its path.
fn dsprites(url: &str, dir: &Path, progress: bool) -> Result<PathBuf> {
    let dest = dir.join(DSPRITES_FILE_NAME);
    let outcome = wae_download::download(url, &dest, None, &options(progress))
        .context("dSprites could not be downloaded")?;
    tracing::info!(path = %dest.display(), outcome = describe(outcome), "dSprites");
    check_dsprites_npz(&dest, DSPRITES_IMAGES).with_context(|| {
        format!(
            "{} is not the dSprites file (no checksum is published, so its arrays are \
             checked instead); delete it and run the command again, or fetch {url} by hand",
            dest.display()
        )
    })?;
    Ok(dest)
}

/// Checks that the npz at `path` holds `imgs` `(images, 64, 64)` of one-byte values and
/// `latents_classes`, `latents_values` of shape `(images, 6)`.
fn check_dsprites_npz(path: &Path, images: usize) -> Result<()> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut archive = zip::ZipArchive::new(file).context("not a zip (npz) file")?;
    let expected: [(&str, Vec<usize>); 3] = [
        ("imgs", vec![images, 64, 64]),
        ("latents_classes", vec![images, 6]),
        ("latents_values", vec![images, 6]),
    ];
    for (name, shape) in expected {
        let mut entry = archive
            .by_name(&format!("{name}.npy"))
            .with_context(|| format!("no array `{name}`"))?;
        let wae_data::npy::NpyHeader {
            descr,
            shape: found,
            ..
        } = wae_data::npy::read_header(&mut entry).with_context(|| format!("array `{name}`"))?;
        ensure!(
            found == shape,
            "array `{name}` has shape {found:?}, expected {shape:?}"
        );
        if name == "imgs" {
            ensure!(
                descr.ends_with("u1") || descr.ends_with("b1"),
                "array `imgs` has dtype `{descr}`, expected one byte per pixel"
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CelebA

/// Where CelebA's aligned images come from, in source order (see [`CelebaSource::open`]).
#[derive(Debug)]
enum CelebaSource {
    /// Image files, sorted by name.
    Dir(Vec<PathBuf>),
    /// Entries of a zip archive, sorted by name: (name, index in the archive).
    Zip {
        path: PathBuf,
        entries: Vec<(String, usize)>,
    },
    /// Parquet shards in order (train, valid, test, then others; by name within each),
    /// with their row counts.
    Parquet(Vec<(PathBuf, usize)>),
}

/// One encoded image and its position in the source order.
struct Encoded {
    index: usize,
    name: String,
    bytes: Vec<u8>,
}

fn is_image_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let base = lower.rsplit('/').next().unwrap_or(&lower);
    !base.starts_with('.')
        && !lower.contains("__macosx/")
        && [".jpg", ".jpeg", ".png"].iter().any(|e| lower.ends_with(e))
}

/// Shard order: train, valid/validation/val, test, anything else; then by path.
fn shard_rank(path: &Path) -> (u8, PathBuf) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let rank = if name.starts_with("train") {
        0
    } else if name.starts_with("val") {
        1
    } else if name.starts_with("test") {
        2
    } else {
        3
    };
    (rank, path.to_path_buf())
}

impl CelebaSource {
    /// A local `img_align_celeba.zip`, or a directory of aligned images (or one holding an
    /// `img_align_celeba/` folder), or a directory of parquet shards.
    fn open(path: &Path) -> Result<Self> {
        if path.is_file() {
            let is_zip = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
            ensure!(
                is_zip,
                "{}: expected a .zip archive or a directory",
                path.display()
            );
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let mut archive = zip::ZipArchive::new(file)
                .with_context(|| format!("{}: not a readable zip archive", path.display()))?;
            let mut entries = Vec::new();
            for i in 0..archive.len() {
                let entry = archive
                    .by_index_raw(i)
                    .with_context(|| format!("{}: entry {i}", path.display()))?;
                let name = entry
                    .name()
                    .with_context(|| format!("{}: name of entry {i}", path.display()))?
                    .into_owned();
                if entry.is_file() && is_image_name(&name) {
                    entries.push((name, i));
                }
            }
            entries.sort();
            ensure!(
                !entries.is_empty(),
                "{}: no JPEG/PNG images inside",
                path.display()
            );
            return Ok(Self::Zip {
                path: path.to_path_buf(),
                entries,
            });
        }
        ensure!(
            path.is_dir(),
            "{}: no such file or directory. {}",
            path.display(),
            wae_data::HOW_TO_GET_CELEBA
        );
        let nested = path.join("img_align_celeba");
        let dir = if nested.is_dir() {
            nested
        } else {
            path.to_path_buf()
        };
        let mut images = Vec::new();
        let mut shards = Vec::new();
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
        {
            let p = entry?.path();
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if p.is_file() && is_image_name(&name) {
                images.push(p);
            } else if p.is_file() && name.ends_with(".parquet") {
                shards.push(p);
            }
        }
        if !images.is_empty() {
            images.sort();
            return Ok(Self::Dir(images));
        }
        ensure!(
            !shards.is_empty(),
            "{}: no JPEG/PNG images or parquet shards inside",
            dir.display()
        );
        Self::parquet(shards)
    }

    fn parquet(mut shards: Vec<PathBuf>) -> Result<Self> {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        shards.sort_by_key(|p| shard_rank(p));
        let mut counted = Vec::new();
        for shard in shards {
            let file =
                File::open(&shard).with_context(|| format!("cannot open {}", shard.display()))?;
            let reader = SerializedFileReader::new(file)
                .with_context(|| format!("{}: not a readable parquet file", shard.display()))?;
            let rows = usize::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0);
            counted.push((shard, rows));
        }
        Ok(Self::Parquet(counted))
    }

    fn len(&self) -> usize {
        match self {
            Self::Dir(files) => files.len(),
            Self::Zip { entries, .. } => entries.len(),
            Self::Parquet(shards) => shards.iter().map(|(_, n)| n).sum(),
        }
    }

    /// What the cache header records about the source and its order.
    fn describe(&self) -> String {
        match self {
            Self::Dir(files) => format!(
                "directory {}: image files sorted by name",
                files
                    .first()
                    .and_then(|f| f.parent())
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            ),
            Self::Zip { path, .. } => format!("{}: entries sorted by name", path.display()),
            Self::Parquet(shards) => format!(
                "{} parquet shards ({}), train/valid/test shard order, rows in file order",
                shards.len(),
                shards
                    .first()
                    .and_then(|(p, _)| p.parent())
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            ),
        }
    }

    /// Hands every image, in source order, to `sink`.
    fn read_all(&self, sink: &mut dyn FnMut(Encoded) -> Result<()>) -> Result<()> {
        match self {
            Self::Dir(files) => {
                for (index, path) in files.iter().enumerate() {
                    let bytes = std::fs::read(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    let name = path.display().to_string();
                    sink(Encoded { index, name, bytes })?;
                }
            }
            Self::Zip { path, entries } => {
                let file =
                    File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
                let mut archive = zip::ZipArchive::new(file)?;
                for (index, (name, at)) in entries.iter().enumerate() {
                    let mut entry = archive
                        .by_index(*at)
                        .with_context(|| format!("{}: entry {name}", path.display()))?;
                    let mut bytes = Vec::with_capacity(entry.size() as usize);
                    entry
                        .read_to_end(&mut bytes)
                        .with_context(|| format!("{}: cannot inflate {name}", path.display()))?;
                    sink(Encoded {
                        index,
                        name: name.clone(),
                        bytes,
                    })?;
                }
            }
            Self::Parquet(shards) => {
                use parquet::file::reader::{FileReader, SerializedFileReader};
                let mut index = 0;
                for (shard, rows) in shards {
                    let file = File::open(shard)
                        .with_context(|| format!("cannot open {}", shard.display()))?;
                    let reader = SerializedFileReader::new(file).with_context(|| {
                        format!("{}: not a readable parquet file", shard.display())
                    })?;
                    let iter = reader
                        .get_row_iter(None)
                        .with_context(|| format!("{}: cannot read rows", shard.display()))?;
                    let mut seen = 0;
                    for (row_number, row) in iter.enumerate() {
                        let row =
                            row.with_context(|| format!("{}: row {row_number}", shard.display()))?;
                        let image = wae_data::hub::image_column(&row)
                            .with_context(|| format!("{}: row {row_number}", shard.display()))?;
                        let (path, bytes) = (image.path.map(str::to_owned), image.bytes.to_vec());
                        let name =
                            path.unwrap_or_else(|| format!("{}#{row_number}", shard.display()));
                        sink(Encoded { index, name, bytes })?;
                        index += 1;
                        seen += 1;
                    }
                    ensure!(
                        seen == *rows,
                        "{}: {seen} rows read, the metadata says {rows}",
                        shard.display()
                    );
                }
            }
        }
        Ok(())
    }
}

/// Builds the CelebA cache in `dir` from `from` (local) or the hub copy.
fn celeba(
    dir: &Path,
    from: Option<&Path>,
    test_size: usize,
    force: bool,
    progress: bool,
) -> Result<()> {
    let dest = dir.join(CACHE_FILE_NAME);
    if !force && let Ok(header) = CelebA::read_header(&dest) {
        println!(
            "CelebA cache already at {} ({} images, {} test); --force to rebuild",
            dest.display(),
            header.count,
            header.test_count
        );
        return Ok(());
    }
    let source = match from {
        Some(path) => CelebaSource::open(path)?,
        None => CelebaSource::parquet(celeba_hub_shards(progress)?)?,
    };
    let start = Instant::now();
    let header = build_celeba_cache(&source, &dest, test_size, progress)?;
    println!(
        "CelebA: {} images ({} train, {} test: seed-{} shuffle, last {} as test) cropped to \
         {:?} and resized to 64x64 (Lanczos, as PIL) into {} in {:.0} s",
        header.count,
        header.count - header.test_count,
        header.test_count,
        header.split_seed,
        header.test_count,
        header.crop_box,
        dest.display(),
        start.elapsed().as_secs_f64()
    );
    if header.count != CELEBA_IMAGES {
        println!(
            "note: the full aligned CelebA has {CELEBA_IMAGES} images; this source had {}",
            header.count
        );
    }
    Ok(())
}

/// Lists [`CELEBA_HUB_DATASET`] and fetches its parquet shards of the aligned images.
fn celeba_hub_shards(progress: bool) -> Result<Vec<PathBuf>> {
    let by_hand = || {
        format!(
            "CelebA could not be fetched from the hub dataset {CELEBA_HUB_DATASET}. Without \
             network, download img_align_celeba.zip from \
             https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html by hand and run \
             `cargo xtask download celeba --from img_align_celeba.zip`"
        )
    };
    let files = wae_download::hub_dataset_files(CELEBA_HUB_DATASET).with_context(by_hand)?;
    let shards: Vec<&String> = files
        .iter()
        .filter(|f| f.starts_with(CELEBA_HUB_FOLDER) && f.ends_with(".parquet"))
        .collect();
    ensure!(
        !shards.is_empty(),
        "the hub dataset {CELEBA_HUB_DATASET} has no parquet files under {CELEBA_HUB_FOLDER} \
         (its files: {}). {}",
        files.join(", "),
        by_hand()
    );
    shards
        .into_iter()
        .map(|f| wae_download::hub_file(CELEBA_HUB_DATASET, f, progress).with_context(by_hand))
        .collect()
}

/// Decodes, crops and resizes every image of `source` (in parallel, in chunks) into a
/// new cache at `dest`.
fn build_celeba_cache(
    source: &CelebaSource,
    dest: &Path,
    test_size: usize,
    progress: bool,
) -> Result<CacheHeader> {
    let count = source.len();
    ensure!(
        count > test_size,
        "{count} images cannot give {test_size} test images and a training set \
         (use --test-size)"
    );
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("while creating {}", parent.display()))?;
    }
    let mut writer = CacheWriter::create(
        dest,
        count,
        test_size,
        CELEBA_SPLIT_SEED,
        &source.describe(),
    )?;
    let bar = if progress {
        let bar = ProgressBar::new(count as u64);
        bar.set_draw_target(ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("CelebA 64x64 [{bar:30}] {pos}/{len} images, eta {eta}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    const CHUNK: usize = 512;
    let mut chunk: Vec<Encoded> = Vec::with_capacity(CHUNK);
    let flush = |chunk: &mut Vec<Encoded>, writer: &mut CacheWriter| -> Result<()> {
        let done: Vec<(usize, wae_data::Result<Vec<u8>>)> = chunk
            .par_iter()
            .map(|e| {
                (
                    e.index,
                    wae_data::celeba::preprocess_encoded(&e.name, &e.bytes),
                )
            })
            .collect();
        for (index, pixels) in done {
            writer.write(index, &pixels?)?;
        }
        bar.inc(chunk.len() as u64);
        chunk.clear();
        Ok(())
    };
    source.read_all(&mut |encoded| {
        ensure!(
            encoded.index < count,
            "the source holds more images than it announced"
        );
        chunk.push(encoded);
        if chunk.len() == CHUNK {
            flush(&mut chunk, &mut writer)?;
        }
        Ok(())
    })?;
    flush(&mut chunk, &mut writer)?;
    bar.finish_and_clear();
    Ok(writer.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    // --- MNIST ---------------------------------------------------------------------

    /// Writes an MNIST-layout parquet file of PNG images with `labels`; image `i` has
    /// pixel `p` = `(i * 11 + p) % 256`.
    fn write_mnist_parquet(path: &Path, labels: &[i64]) -> wae_data::Dataset {
        use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
        use parquet::file::properties::WriterProperties;
        use parquet::file::writer::SerializedFileWriter;
        use parquet::schema::parser::parse_message_type;
        use std::sync::Arc;
        let schema = "message schema { optional group image { optional binary bytes; \
                      optional binary path (STRING); } optional int64 label; }";
        let pixels: Vec<u8> = (0..labels.len() * 784)
            .map(|k| ((k / 784) * 11 + k % 784) as u8)
            .collect();
        let pngs: Vec<ByteArray> = pixels
            .chunks(784)
            .map(|img| {
                let gray = image::GrayImage::from_raw(28, 28, img.to_vec()).unwrap();
                let mut out = std::io::Cursor::new(Vec::new());
                gray.write_to(&mut out, image::ImageFormat::Png).unwrap();
                ByteArray::from(out.into_inner())
            })
            .collect();
        let schema = Arc::new(parse_message_type(schema).unwrap());
        let props = Arc::new(WriterProperties::builder().build());
        let file = File::create(path).unwrap();
        let mut writer = SerializedFileWriter::new(file, schema, props).unwrap();
        let mut group = writer.next_row_group().unwrap();
        let n = labels.len();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<ByteArrayType>()
            .write_batch(&pngs, Some(&vec![2; n]), None)
            .unwrap();
        col.close().unwrap();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<ByteArrayType>()
            .write_batch(&[], Some(&vec![1; n]), None)
            .unwrap();
        col.close().unwrap();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<Int64Type>()
            .write_batch(labels, Some(&vec![1; n]), None)
            .unwrap();
        col.close().unwrap();
        group.close().unwrap();
        writer.close().unwrap();
        let labels = labels.iter().map(|&l| l as u8).collect();
        wae_data::Dataset::new(pixels, labels, 1, 28, 28).unwrap()
    }

    #[test]
    fn mnist_parquet_becomes_idx_files_the_loader_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let train = write_mnist_parquet(&tmp.path().join("train.parquet"), &[5, 0, 4]);
        let test = write_mnist_parquet(&tmp.path().join("test.parquet"), &[7, 2]);
        let dir = tmp.path().join("mnist");
        let got = mnist_from_parquet(
            &tmp.path().join("train.parquet"),
            &tmp.path().join("test.parquet"),
            &dir,
            Verify::Skip,
        )
        .unwrap();
        assert_eq!(got.train, train);
        assert_eq!(got.test, test);
        for (name, _) in MNIST_FILES {
            assert!(dir.join(format!("{name}.gz")).is_file(), "{name}.gz");
        }
        // The normal loader reads what was written.
        let loaded = Mnist::load(&MnistSource::from_dir(&dir).with_verify(Verify::Skip)).unwrap();
        assert_eq!((loaded.train, loaded.test), (train, test));

        // Not canonical MNIST: with the MD5 check the files are refused and removed.
        let dir2 = tmp.path().join("mnist2");
        let err = mnist_from_parquet(
            &tmp.path().join("train.parquet"),
            &tmp.path().join("test.parquet"),
            &dir2,
            Verify::Always,
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("not the canonical MNIST"), "{msg}");
        assert!(msg.contains("checksum mismatch"), "{msg}");
        assert_eq!(std::fs::read_dir(&dir2).unwrap().count(), 0);
    }

    // --- Inception -----------------------------------------------------------------

    fn legacy_pth() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../crates/wae-metrics/tests/data/legacy_state_dict.pth")
    }

    #[test]
    fn inception_converts_a_local_pth_and_checks_its_sha256() {
        let tmp = tempfile::tempdir().unwrap();
        // The tiny test file is not the FID weights: refused unless told otherwise.
        let err =
            inception("unused", tmp.path(), Some(&legacy_pth()), None, true, false).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(FID_WEIGHTS_SHA256), "{msg}");
        assert!(msg.contains("--no-checksum"), "{msg}");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);

        let out = tmp.path().join("sub/tiny.safetensors");
        let report = inception(
            "unused",
            tmp.path(),
            Some(&legacy_pth()),
            Some(&out),
            false,
            false,
        )
        .unwrap();
        assert!(report.contains("NOT checked"), "{report}");
        let tensors = candle_core::safetensors::load(&out, &candle_core::Device::Cpu).unwrap();
        assert_eq!(tensors["block.conv.weight"].dims(), &[4, 3, 3, 3]);
        assert_eq!(tensors["fc.weight"].dims(), &[3, 5]);
        assert!(
            report.contains(&format!("{} tensors converted", tensors.len())),
            "{report}"
        );
        // Default output name in DIR.
        inception(
            "unused",
            tmp.path(),
            Some(&legacy_pth()),
            None,
            false,
            false,
        )
        .unwrap();
        assert!(tmp.path().join(FID_SAFETENSORS_FILE_NAME).is_file());
    }

    #[test]
    fn refused_downloads_name_the_url_and_where_to_put_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        // Nothing listens on port 9 of loopback (discard; closed on test machines).
        let url = "http://127.0.0.1:9/pt_inception-2015-12-05-6726825d.pth";
        let err = inception(url, tmp.path(), None, None, true, false).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(url), "{msg}");
        assert!(msg.contains("place the file at"), "{msg}");
        assert!(msg.contains(FID_WEIGHTS_SHA256), "{msg}");

        let url = "http://127.0.0.1:9/dsprites.npz";
        let err = dsprites(url, tmp.path(), false).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(url), "{msg}");
        assert!(msg.contains(DSPRITES_FILE_NAME), "{msg}");
    }

    // --- dSprites ------------------------------------------------------------------

    fn npy(descr: &str, shape: &str) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out
    }

    fn write_npz(path: &Path, arrays: &[(&str, Vec<u8>)]) {
        let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
        for (name, bytes) in arrays {
            zip.start_file(
                format!("{name}.npy"),
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            std::io::Write::write_all(&mut zip, bytes).unwrap();
        }
        zip.finish().unwrap();
    }

    #[test]
    fn dsprites_npz_arrays_and_shapes_are_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("d.npz");
        let mut imgs = npy("|u1", "(3, 64, 64)");
        imgs.extend(vec![0u8; 3 * 64 * 64]);
        let good = [
            ("imgs", imgs),
            ("latents_classes", npy("<i8", "(3, 6)")),
            ("latents_values", npy("<f8", "(3, 6)")),
        ];
        write_npz(&path, &good);
        check_dsprites_npz(&path, 3).unwrap();
        let err = check_dsprites_npz(&path, DSPRITES_IMAGES).unwrap_err();
        assert!(format!("{err:#}").contains("shape [3, 64, 64], expected [737280, 64, 64]"));

        write_npz(&path, &good[..2]);
        let err = check_dsprites_npz(&path, 3).unwrap_err();
        assert!(format!("{err:#}").contains("latents_values"), "{err:#}");

        write_npz(
            &path,
            &[
                ("imgs", npy("<f4", "(3, 64, 64)")),
                ("latents_classes", npy("<i8", "(3, 6)")),
                ("latents_values", npy("<f8", "(3, 6)")),
            ],
        );
        let err = check_dsprites_npz(&path, 3).unwrap_err();
        assert!(format!("{err:#}").contains("dtype `<f4`"), "{err:#}");

        std::fs::write(&path, b"<html>rate limited</html>").unwrap();
        let err = check_dsprites_npz(&path, 3).unwrap_err();
        assert!(format!("{err:#}").contains("not a zip"), "{err:#}");
    }

    // --- CelebA --------------------------------------------------------------------

    /// Aligned-size test image `k`: a colour ramp shifted by `k`.
    fn face(k: u32) -> image::RgbImage {
        image::RgbImage::from_fn(178, 218, |x, y| {
            image::Rgb([
                ((x + 9 * k) % 256) as u8,
                ((y + 5 * k) % 256) as u8,
                (40 * k) as u8,
            ])
        })
    }

    fn encode(img: &image::RgbImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    /// Five aligned images named 000001..000005, as PNG (lossless, so the expected
    /// pixels are exact) except 000004 as JPEG.
    fn faces() -> Vec<(String, Vec<u8>)> {
        (1..=5u32)
            .map(|k| {
                let (ext, format) = if k == 4 {
                    ("jpg", image::ImageFormat::Jpeg)
                } else {
                    ("png", image::ImageFormat::Png)
                };
                (format!("{k:06}.{ext}"), encode(&face(k), format))
            })
            .collect()
    }

    /// Checks a cache built from [`faces`]: source index `i` is file `i + 1`.
    fn check_faces_cache(path: &Path, images: &[(String, Vec<u8>)]) -> CelebA {
        let celeba = CelebA::load(path).unwrap();
        assert_eq!((celeba.train.len(), celeba.test.len()), (3, 2));
        let order = wae_data::seeded_permutation(5, CELEBA_SPLIT_SEED);
        for (slot, &source) in order.iter().enumerate() {
            let expected =
                wae_data::celeba::preprocess_encoded(&images[source].0, &images[source].1).unwrap();
            let got = if slot < 3 {
                celeba.train.image(slot).unwrap()
            } else {
                celeba.test.image(slot - 3).unwrap()
            };
            assert_eq!(
                got,
                expected.as_slice(),
                "slot {slot} = {}",
                images[source].0
            );
        }
        celeba
    }

    #[test]
    fn celeba_cache_from_a_zip_and_from_a_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let images = faces();
        // The archive lists the files out of order, inside a folder, with junk beside.
        let zip_path = tmp.path().join("img_align_celeba.zip");
        let mut zip = zip::ZipWriter::new(File::create(&zip_path).unwrap());
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.add_directory("img_align_celeba/", deflated).unwrap();
        for i in [3, 0, 4, 1, 2] {
            zip.start_file(format!("img_align_celeba/{}", images[i].0), deflated)
                .unwrap();
            std::io::Write::write_all(&mut zip, &images[i].1).unwrap();
        }
        zip.start_file("img_align_celeba/README.txt", deflated)
            .unwrap();
        zip.start_file("__MACOSX/img_align_celeba/._000001.png", deflated)
            .unwrap();
        zip.finish().unwrap();

        let out = tmp.path().join("zip-cache");
        celeba(&out, Some(&zip_path), 2, false, false).unwrap();
        let from_zip = check_faces_cache(&out.join(CACHE_FILE_NAME), &images);
        assert!(from_zip.header.source.contains("sorted by name"));
        // A second run finds the cache and does nothing.
        let before = std::fs::metadata(out.join(CACHE_FILE_NAME))
            .unwrap()
            .modified()
            .unwrap();
        celeba(&out, Some(&zip_path), 2, false, false).unwrap();
        let after = std::fs::metadata(out.join(CACHE_FILE_NAME))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);

        // The same images unpacked into a directory (holding img_align_celeba/).
        let root = tmp.path().join("unpacked");
        std::fs::create_dir_all(root.join("img_align_celeba")).unwrap();
        for (name, bytes) in &images {
            std::fs::write(root.join("img_align_celeba").join(name), bytes).unwrap();
        }
        let out = tmp.path().join("dir-cache");
        celeba(&out, Some(&root), 2, false, false).unwrap();
        let from_dir = check_faces_cache(&out.join(CACHE_FILE_NAME), &images);
        assert_eq!(
            (from_dir.train, from_dir.test),
            (from_zip.train, from_zip.test)
        );

        // Too few images for the test size; a wrong-size image names itself.
        let err = celeba(&tmp.path().join("x"), Some(&root), 5, true, false).unwrap_err();
        assert!(format!("{err:#}").contains("--test-size"), "{err:#}");
        std::fs::write(
            root.join("img_align_celeba/000006.png"),
            encode(&image::RgbImage::new(64, 64), image::ImageFormat::Png),
        )
        .unwrap();
        let err = celeba(&tmp.path().join("y"), Some(&root), 2, true, false).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("000006.png") && msg.contains("178x218"),
            "{msg}"
        );
        assert!(!tmp.path().join("y").join(CACHE_FILE_NAME).exists());
    }

    /// Writes a hub-layout parquet shard: `image {bytes, path}` and an int `celeb_id`.
    fn write_celeba_shard(path: &Path, rows: &[(String, Vec<u8>)]) {
        use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
        use parquet::file::properties::WriterProperties;
        use parquet::file::writer::SerializedFileWriter;
        use parquet::schema::parser::parse_message_type;
        use std::sync::Arc;
        let schema = "message schema { optional group image { optional binary bytes; \
                      optional binary path (STRING); } optional int64 celeb_id; }";
        let schema = Arc::new(parse_message_type(schema).unwrap());
        let props = Arc::new(WriterProperties::builder().build());
        let mut writer =
            SerializedFileWriter::new(File::create(path).unwrap(), schema, props).unwrap();
        let mut group = writer.next_row_group().unwrap();
        let n = rows.len();
        let bytes: Vec<ByteArray> = rows
            .iter()
            .map(|(_, b)| ByteArray::from(b.clone()))
            .collect();
        let names: Vec<ByteArray> = rows
            .iter()
            .map(|(n, _)| ByteArray::from(n.as_str()))
            .collect();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<ByteArrayType>()
            .write_batch(&bytes, Some(&vec![2; n]), None)
            .unwrap();
        col.close().unwrap();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<ByteArrayType>()
            .write_batch(&names, Some(&vec![2; n]), None)
            .unwrap();
        col.close().unwrap();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<Int64Type>()
            .write_batch(&vec![1; n], Some(&vec![1; n]), None)
            .unwrap();
        col.close().unwrap();
        group.close().unwrap();
        writer.close().unwrap();
    }

    #[test]
    fn celeba_cache_from_parquet_shards_in_train_valid_test_order() {
        let tmp = tempfile::tempdir().unwrap();
        let images = faces();
        let shards = tmp.path().join("img_align+identity+attr");
        std::fs::create_dir_all(&shards).unwrap();
        // Alphabetical order would be test, train, valid: the order must not be that.
        write_celeba_shard(&shards.join("test-00000-of-00001.parquet"), &images[4..]);
        write_celeba_shard(&shards.join("train-00000-of-00002.parquet"), &images[..2]);
        write_celeba_shard(&shards.join("train-00001-of-00002.parquet"), &images[2..3]);
        write_celeba_shard(&shards.join("valid-00000-of-00001.parquet"), &images[3..4]);
        let out = tmp.path().join("cache");
        celeba(&out, Some(&shards), 2, false, false).unwrap();
        let cache = check_faces_cache(&out.join(CACHE_FILE_NAME), &images);
        assert!(
            cache.header.source.contains("4 parquet shards"),
            "{}",
            cache.header.source
        );

        // A shard without an `image` column is refused with its columns named.
        let bad = tmp.path().join("bad");
        std::fs::create_dir_all(&bad).unwrap();
        write_mnist_parquet(&bad.join("train.parquet"), &[1, 2, 3]);
        std::fs::rename(bad.join("train.parquet"), bad.join("train-0.parquet")).unwrap();
        let err = celeba(&tmp.path().join("c2"), Some(&bad), 1, false, false).unwrap_err();
        let msg = format!("{err:#}");
        // MNIST's parquet has an image column but 28x28 images.
        assert!(msg.contains("28x28") && msg.contains("178x218"), "{msg}");
    }

    #[test]
    fn shard_order_and_image_names() {
        let mut shards = [
            PathBuf::from("x/test-0.parquet"),
            PathBuf::from("x/valid-0.parquet"),
            PathBuf::from("x/train-1.parquet"),
            PathBuf::from("x/extra.parquet"),
            PathBuf::from("x/train-0.parquet"),
        ];
        shards.sort_by_key(|p| shard_rank(p));
        let names: Vec<_> = shards
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "train-0.parquet",
                "train-1.parquet",
                "valid-0.parquet",
                "test-0.parquet",
                "extra.parquet"
            ]
        );
        assert!(is_image_name("img_align_celeba/000001.jpg"));
        assert!(is_image_name("A.PNG"));
        assert!(!is_image_name("__MACOSX/img_align_celeba/._000001.jpg"));
        assert!(!is_image_name("img_align_celeba/._000001.jpg"));
        assert!(!is_image_name("list_eval_partition.txt"));
    }
}
