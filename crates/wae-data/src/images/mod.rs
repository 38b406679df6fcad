//! Your own data: folders of images, `.npy` / `.npz` arrays and (feature `hub`) Hugging
//! Face Hub parquet image columns, decoded once into a checksummed cache that is then
//! memory-mapped.
//!
//! Every source goes through the same steps:
//! 1. its examples are listed in a fixed order (a folder: every PNG / JPEG / BMP / WebP
//!    file below it, sorted by relative path; an array: its rows; a parquet file: its rows);
//! 2. a test split is chosen: a seeded fraction of them ([`TestSplit::Fraction`]: the
//!    first `round(fraction * n)` positions of [`crate::seeded_permutation`]`(n, seed)`),
//!    a separate source, or none; both sets keep the source order;
//! 3. each image is converted to `channels` (1: grey, 3: RGB; mixed sources are
//!    converted), cropped to its centred square and resized to `size x size` with the
//!    PIL-exact Lanczos filter of [`crate::celeba::resize_lanczos`] (skipped when it
//!    already has that size), and stored planar (`C x H x W`) as u8;
//! 4. the result goes into one cache file under `<cache dir>/images/`, named by a digest
//!    of the source's identity (file list with sizes and modification times, or the
//!    array file's size and time), the preprocessing and the split, so a changed source
//!    is read again. The file is written atomically, carries a CRC-32 of its content
//!    that is checked on every load (a failing cache is rebuilt), and is memory-mapped:
//!    a data set larger than RAM trains with the resident set of a small one
//!    ([`crate::Dataset::from_mapped`]).
//!
//! Labels: images in a folder whose every file sits in a first-level subfolder get the
//! subfolder's index in sorted order (as torchvision's `ImageFolder`), up to 256 classes;
//! arrays take an integer `labels` (or `y`) array from the same `.npz`; otherwise 0.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::celeba::resize_lanczos;

mod arrays;
mod cache;
#[cfg(feature = "hub")]
mod parquet;

use crate::dataset::{Dataset, seeded_permutation};
use crate::error::{Error, Result};
pub use arrays::load_array;
use cache::load_cached;
#[cfg(feature = "hub")]
pub use parquet::{load_hub, load_parquet};

/// File extensions read from an image folder (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "bmp", "webp"];

/// Magic bytes of an image cache file.
pub const CACHE_MAGIC: [u8; 8] = *b"WAEIMGS1";
/// Format version written into every cache header; a cache of another version is rebuilt.
pub const CACHE_VERSION: u32 = 1;
/// The pixels start at this byte (the header is padded to it), so they are page-aligned.
const HEADER_BYTES: usize = 4096;

/// Preprocessing of one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageOptions {
    /// Side of the square images, in pixels.
    pub size: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Skip (and count) images that cannot be decoded or are smaller than `size`, instead
    /// of failing on the first.
    pub skip_bad: bool,
}

impl ImageOptions {
    fn check(&self) -> Result<()> {
        if self.size == 0 {
            return Err(Error::InvalidArgument(
                "data.size must be at least 1 pixel".into(),
            ));
        }
        if self.channels != 1 && self.channels != 3 {
            return Err(Error::InvalidArgument(format!(
                "data.channels must be 1 (grey) or 3 (RGB), got {}",
                self.channels
            )));
        }
        Ok(())
    }

    fn pixels(&self) -> usize {
        self.channels * self.size * self.size
    }
}

/// How the test set is made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TestSplit {
    /// A seeded fraction of the source (see the module docs).
    Fraction {
        /// Share of the examples in the test set, in `[0, 1)`.
        fraction: f64,
        /// Seed of the permutation that picks them.
        seed: u64,
    },
    /// All of the source is training data (the caller reads the test set elsewhere).
    None,
}

impl TestSplit {
    /// The positions (in source order) that go to the test set, as a membership mask.
    fn test_mask(&self, n: usize) -> Result<Vec<bool>> {
        let mut mask = vec![false; n];
        if let TestSplit::Fraction { fraction, seed } = *self {
            if !(0.0..1.0).contains(&fraction) {
                return Err(Error::InvalidArgument(format!(
                    "data.test_fraction must be in [0, 1), got {fraction}"
                )));
            }
            let n_test = (fraction * n as f64).round() as usize;
            for &i in &seeded_permutation(n, seed)[..n_test.min(n)] {
                mask[i] = true;
            }
        }
        Ok(mask)
    }
}

/// An image that was skipped (with [`ImageOptions::skip_bad`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedImage {
    /// The file (or `file#row`).
    pub name: String,
    /// Why.
    pub reason: String,
}

/// The header of an image cache file (JSON, after the magic and its length).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageCacheHeader {
    /// Always `wae-image-cache`.
    pub format: String,
    /// [`CACHE_VERSION`].
    pub version: u32,
    /// What was read (a folder, an array file, Hub files), for people reading the header.
    pub source: String,
    /// Image side.
    pub size: usize,
    /// Channels.
    pub channels: usize,
    /// Training images (stored first).
    pub train_count: usize,
    /// Test images (stored after the training images).
    pub test_count: usize,
    /// Class names of the labels (folder names), empty when unlabelled.
    pub classes: Vec<String>,
    /// Images left out as unreadable.
    pub skipped: Vec<SkippedImage>,
    /// CRC-32 of the pixels, then the labels.
    pub crc32: u32,
}

/// A loaded source: its training and test sets (memory-mapped) and where the cache is.
#[derive(Debug, Clone)]
pub struct LoadedImages {
    /// Training images, in source order.
    pub train: Dataset,
    /// Test images, in source order.
    pub test: Dataset,
    /// The cache file they are mapped from.
    pub cache: PathBuf,
    /// Whether this call decoded the source (false: an existing cache was used).
    pub built: bool,
    /// The cache's header (class names, skipped images).
    pub header: ImageCacheHeader,
}

impl LoadedImages {
    /// This source as training data and the training set of `test` (a separately read
    /// test folder / file / parquet files, loaded with [`TestSplit::None`]) as test data.
    pub fn with_test_from(mut self, test: LoadedImages) -> LoadedImages {
        self.test = test.train;
        self.header.test_count = self.test.len();
        self.built |= test.built;
        self
    }
}

/// Progress of a cache build: `(examples done, examples in all)`.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize);

/// One example in source order: `Ok(Some((planar pixels, label)))`, `Ok(None)` when it
/// was skipped (pushed to the skipped list), or a hard error.
type Row = Result<Option<(Vec<u8>, u8)>>;

/// The folder's image files (relative paths, sorted) and their labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderListing {
    /// The folder.
    pub root: PathBuf,
    /// Image files below it, relative, sorted (byte order of the path).
    pub files: Vec<PathBuf>,
    /// One label per file (see the module docs).
    pub labels: Vec<u8>,
    /// Class names (first-level subfolders), empty when unlabelled.
    pub classes: Vec<String>,
}

/// Lists the images below `root` (recursively; hidden files and folders are skipped).
/// An empty or missing folder is an error that says what was looked for.
pub fn list_folder(root: &Path) -> Result<FolderListing> {
    if !root.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{}: not a folder (data.path must name a folder of images, searched recursively)",
            root.display()
        )));
    }
    let mut files = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let entries = fs::read_dir(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let path = rel.join(&name);
            let kind = entry.file_type().map_err(|source| Error::Io {
                path: root.join(&path),
                source,
            })?;
            let kind_is_dir = if kind.is_symlink() {
                root.join(&path).is_dir()
            } else {
                kind.is_dir()
            };
            if kind_is_dir {
                stack.push(path);
            } else if is_image_name(&path) {
                files.push(path);
            }
        }
    }
    if files.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: no images found (looked recursively for {} files)",
            root.display(),
            IMAGE_EXTENSIONS.join(" / ")
        )));
    }
    files.sort();
    let (labels, classes) = folder_labels(&files);
    Ok(FolderListing {
        root: root.to_path_buf(),
        files,
        labels,
        classes,
    })
}

/// A file's modification time in nanoseconds since 1970 (0 where unknown), part of the
/// identity that names a cache.
fn mtime_nanos(meta: &fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Labels from first-level subfolders when every file has one and there are at most 256.
fn folder_labels(files: &[PathBuf]) -> (Vec<u8>, Vec<String>) {
    let class_of = |f: &PathBuf| -> Option<String> {
        let mut parts = f.components();
        let first = parts.next()?;
        parts.next()?; // the file itself must be below it
        Some(first.as_os_str().to_string_lossy().into_owned())
    };
    let per_file: Option<Vec<String>> = files.iter().map(class_of).collect();
    let Some(per_file) = per_file else {
        return (vec![0; files.len()], Vec::new());
    };
    let mut classes = per_file.clone();
    classes.sort();
    classes.dedup();
    if classes.len() > 256 {
        return (vec![0; files.len()], Vec::new());
    }
    let labels = per_file
        .iter()
        .map(|c| classes.binary_search(c).expect("listed") as u8)
        .collect();
    (labels, classes)
}

/// Converts a decoded image to `options.channels`, crops its centred square and resizes
/// it to `options.size` (Lanczos; untouched when already that size). Returns planar
/// `C x H x W` u8 pixels. An image smaller than `size` is [`Error::BadImage`].
pub fn preprocess(
    name: &str,
    image: &image::DynamicImage,
    options: &ImageOptions,
) -> Result<Vec<u8>> {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let side = width.min(height);
    if side < options.size {
        return Err(Error::BadImage {
            name: name.to_string(),
            message: format!(
                "{width}x{height} pixels is smaller than data.size = {}: lower data.size, \
                 remove the file, or pass --skip-bad-images",
                options.size
            ),
        });
    }
    let c = options.channels;
    let interleaved: Vec<u8> = if c == 1 {
        image.to_luma8().into_raw()
    } else {
        image.to_rgb8().into_raw()
    };
    let (left, top) = ((width - side) / 2, (height - side) / 2);
    let cropped: Vec<u8> = if side == width && side == height {
        interleaved
    } else {
        let mut out = Vec::with_capacity(side * side * c);
        for row in top..top + side {
            let start = (row * width + left) * c;
            out.extend_from_slice(&interleaved[start..start + side * c]);
        }
        out
    };
    let resized = if side == options.size {
        cropped
    } else {
        resize_lanczos(&cropped, side, side, c, options.size, options.size)?
    };
    Ok(to_planar(&resized, c))
}

/// Interleaved `H x W x C` to planar `C x H x W`.
fn to_planar(interleaved: &[u8], channels: usize) -> Vec<u8> {
    if channels == 1 {
        return interleaved.to_vec();
    }
    let plane = interleaved.len() / channels;
    let mut out = vec![0u8; interleaved.len()];
    for (p, pixel) in interleaved.chunks_exact(channels).enumerate() {
        for (k, &v) in pixel.iter().enumerate() {
            out[k * plane + p] = v;
        }
    }
    out
}

/// Decodes one encoded image (format from its bytes) and preprocesses it.
pub fn decode(name: &str, bytes: &[u8], options: &ImageOptions) -> Result<Vec<u8>> {
    let image = image::load_from_memory(bytes).map_err(|e| Error::BadImage {
        name: name.to_string(),
        message: format!(
            "cannot decode it ({e}): replace or remove the file, or pass --skip-bad-images \
             to leave such files out"
        ),
    })?;
    preprocess(name, &image, options)
}

/// Turns a per-image error into a skip when `skip_bad` is set.
fn skip_or_fail(
    result: Result<Vec<u8>>,
    label: u8,
    options: &ImageOptions,
    skipped: &mut Vec<SkippedImage>,
) -> Row {
    match result {
        Ok(pixels) => Ok(Some((pixels, label))),
        Err(Error::BadImage { name, message }) if options.skip_bad => {
            skipped.push(SkippedImage {
                name,
                reason: message,
            });
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The cache directory for image caches: `<cache>/images` (see
/// [`crate::default_cache_dir`]), or an error saying how to set one.
pub fn cache_root(explicit: Option<&Path>) -> Result<PathBuf> {
    let base = match explicit {
        Some(dir) => dir.to_path_buf(),
        None => crate::default_cache_dir().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "no cache directory for the decoded images: set {}",
                crate::CACHE_DIR_ENV
            ))
        })?,
    };
    Ok(base.join("images"))
}

/// Loads an image folder (train and, with a fraction, test), decoding it into the cache
/// on first use. `test_folder`, when given, is a second folder read the same way as the
/// test set (the first folder is then all training data).
pub fn load_folder(
    root: &Path,
    test_folder: Option<&Path>,
    split: &TestSplit,
    options: &ImageOptions,
    cache_dir: Option<&Path>,
    progress: Progress<'_>,
) -> Result<LoadedImages> {
    options.check()?;
    let split = if test_folder.is_some() {
        TestSplit::None
    } else {
        split.clone()
    };
    let listing = list_folder(root)?;
    let loaded = load_listing(&listing, &split, options, cache_dir, progress)?;
    let Some(test_root) = test_folder else {
        return Ok(loaded);
    };
    let test_listing = list_folder(test_root)?;
    let no_progress = &mut |_, _| {};
    let test = load_listing(
        &test_listing,
        &TestSplit::None,
        options,
        cache_dir,
        no_progress,
    )?;
    Ok(loaded.with_test_from(test))
}

fn load_listing(
    listing: &FolderListing,
    split: &TestSplit,
    options: &ImageOptions,
    cache_dir: Option<&Path>,
    progress: Progress<'_>,
) -> Result<LoadedImages> {
    // Identity: every file with its size and modification time, as one text (no
    // per-file allocations kept: a folder of 100,000 files costs a few MB here).
    let root_abs = listing
        .root
        .canonicalize()
        .unwrap_or_else(|_| listing.root.clone());
    let mut files_text = String::with_capacity(listing.files.len() * 48);
    for rel in &listing.files {
        let path = listing.root.join(rel);
        let meta = fs::metadata(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let mtime = mtime_nanos(&meta);
        use std::fmt::Write as _;
        let _ = writeln!(files_text, "{}\t{}\t{mtime}", rel.display(), meta.len());
    }
    let key = serde_json::json!({
        "kind": "folder", "root": root_abs, "files": wae_io::sha256_hex(files_text.as_bytes()),
        "options": [options.size, options.channels], "split": split,
    });
    drop(files_text);
    let source = format!("image folder {}", root_abs.display());
    let n = listing.files.len();
    let files = &listing.files;
    let labels = &listing.labels;
    let rows = (0..n).map(move |i| {
        let rel = &files[i];
        let path = listing.root.join(rel);
        let name = path.display().to_string();
        let label = labels[i];
        move |options: &ImageOptions, skipped: &mut Vec<SkippedImage>| -> Row {
            let bytes = fs::read(&path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            skip_or_fail(decode(&name, &bytes, options), label, options, skipped)
        }
    });
    load_cached(
        &key,
        source,
        listing.classes.clone(),
        n,
        rows,
        split,
        options,
        cache_dir,
        progress,
    )
}

/// Without the cargo feature `hub`: an error saying how to build with it.
#[cfg(not(feature = "hub"))]
#[allow(clippy::too_many_arguments)]
pub fn load_hub(
    repo: &str,
    _files: &[String],
    _test_files: &[String],
    _column: &str,
    _split: &TestSplit,
    _options: &ImageOptions,
    _cache_dir: Option<&Path>,
    _progress: Progress<'_>,
) -> Result<LoadedImages> {
    Err(Error::Hub {
        message: format!(
            "reading the Hub dataset {repo} needs the cargo feature `hub`: build with \
             `cargo build --release -p wae-cli --features wae-data/hub`"
        ),
    })
}
