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

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::celeba::resize_lanczos;
use crate::dataset::{Dataset, seeded_permutation};
use crate::error::{Error, Result};

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

/// Finds or builds the cache for a source of `n` examples given in order by `rows`.
#[allow(clippy::too_many_arguments)]
fn load_cached<F>(
    key: &serde_json::Value,
    source: String,
    classes: Vec<String>,
    n: usize,
    rows: impl Iterator<Item = F>,
    split: &TestSplit,
    options: &ImageOptions,
    cache_dir: Option<&Path>,
    progress: Progress<'_>,
) -> Result<LoadedImages>
where
    F: FnOnce(&ImageOptions, &mut Vec<SkippedImage>) -> Row,
{
    let dir = cache_root(cache_dir)?;
    let mut key_text = serde_json::to_vec(key).expect("a JSON value serialises");
    key_text.extend_from_slice(format!("v{CACHE_VERSION}").as_bytes());
    let digest = wae_io::sha256_hex(&key_text);
    let path = dir.join(format!("{}.bin", &digest[..24]));
    match open_cache(&path, options) {
        Ok(Some(loaded)) => return Ok(loaded),
        Ok(None) => {}
        Err(reason) => {
            tracing::warn!("{}: {reason}; rebuilding it", path.display());
            eprintln!(
                "warning: the image cache {} is damaged ({reason}); rebuilding it",
                path.display()
            );
        }
    }
    fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    let mask = split.test_mask(n)?;
    build_cache(&path, source, classes, n, rows, &mask, options, progress)?;
    match open_cache(&path, options) {
        Ok(Some(mut loaded)) => {
            loaded.built = true;
            Ok(loaded)
        }
        Ok(None) => Err(Error::InvalidArgument(format!(
            "{}: the image cache just written is missing",
            path.display()
        ))),
        Err(reason) => Err(Error::InvalidArgument(format!(
            "{}: the image cache just written does not read back: {reason}",
            path.display()
        ))),
    }
}

/// Decodes every row and writes the cache atomically (train rows streamed to the file,
/// test rows held until the end so they follow).
#[allow(clippy::too_many_arguments)]
fn build_cache<F>(
    path: &Path,
    source: String,
    classes: Vec<String>,
    n: usize,
    rows: impl Iterator<Item = F>,
    test_mask: &[bool],
    options: &ImageOptions,
    progress: Progress<'_>,
) -> Result<()>
where
    F: FnOnce(&ImageOptions, &mut Vec<SkippedImage>) -> Row,
{
    let mut failure: Option<Error> = None;
    let mut header = ImageCacheHeader {
        format: "wae-image-cache".into(),
        version: CACHE_VERSION,
        source,
        size: options.size,
        channels: options.channels,
        train_count: 0,
        test_count: 0,
        classes,
        skipped: Vec::new(),
        crc32: 0,
    };
    // Test rows wait in a side file (not in memory) until the training rows are written.
    let side_path = wae_io::temp_path(&path.with_extension("test-rows"));
    let mut side = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&side_path)
        .map_err(|source| Error::Io {
            path: side_path.clone(),
            source,
        })?;
    let result = wae_io::write_atomic_with(path, |out| {
        out.write_all(&[0u8; HEADER_BYTES])?;
        let mut crc = crc32fast::Hasher::new();
        let mut test_crc = crc32fast::Hasher::new();
        let (mut train_labels, mut test_labels) = (Vec::new(), Vec::new());
        {
            let mut side = io::BufWriter::new(&mut side);
            for (i, row) in rows.enumerate() {
                match row(options, &mut header.skipped) {
                    Ok(Some((pixels, label))) => {
                        if pixels.len() != options.pixels() {
                            failure = Some(Error::InvalidArgument(format!(
                                "example {i} has {} values, expected {}",
                                pixels.len(),
                                options.pixels()
                            )));
                            return Err(io::Error::other("bad row"));
                        }
                        if test_mask[i] {
                            test_crc.update(&pixels);
                            side.write_all(&pixels)?;
                            test_labels.push(label);
                        } else {
                            crc.update(&pixels);
                            out.write_all(&pixels)?;
                            train_labels.push(label);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        failure = Some(e);
                        return Err(io::Error::other("bad row"));
                    }
                }
                if i % 64 == 63 || i + 1 == n {
                    progress(i + 1, n);
                }
            }
            side.flush()?;
        }
        // Append the test rows, checking them as they are copied.
        side.seek(SeekFrom::Start(0))?;
        let mut copied = crc32fast::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut reader = BufReader::new(&mut side);
        loop {
            let got = reader.read(&mut buf)?;
            if got == 0 {
                break;
            }
            copied.update(&buf[..got]);
            crc.update(&buf[..got]);
            out.write_all(&buf[..got])?;
        }
        if copied.finalize() != test_crc.finalize() {
            return Err(io::Error::other(
                "the test rows changed on disk while being copied",
            ));
        }
        crc.update(&train_labels);
        crc.update(&test_labels);
        out.write_all(&train_labels)?;
        out.write_all(&test_labels)?;
        header.train_count = train_labels.len();
        header.test_count = test_labels.len();
        header.crc32 = crc.finalize();
        if header.train_count == 0 {
            failure = Some(Error::InvalidArgument(format!(
                "{}: no readable image is left for training ({} skipped)",
                header.source,
                header.skipped.len()
            )));
            return Err(io::Error::other("empty"));
        }
        let mut json = serde_json::to_vec(&header).map_err(io::Error::other)?;
        if json.len() > HEADER_BYTES - 16 {
            // Keep the header bounded: the list of skipped images is cut (the count stays).
            let total = header.skipped.len();
            header.skipped.truncate(20);
            header.skipped.push(SkippedImage {
                name: format!("... {} more", total - 20),
                reason: String::new(),
            });
            json = serde_json::to_vec(&header).map_err(io::Error::other)?;
        }
        if json.len() > HEADER_BYTES - 16 {
            return Err(io::Error::other("cache header too long"));
        }
        out.seek(SeekFrom::Start(0))?;
        out.write_all(&CACHE_MAGIC)?;
        out.write_all(&(json.len() as u64).to_le_bytes())?;
        out.write_all(&json)?;
        Ok(())
    });
    drop(side);
    let _ = fs::remove_file(&side_path);
    if let Some(e) = failure {
        return Err(e);
    }
    result.map_err(|e| Error::InvalidArgument(format!("writing the image cache: {e}")))
}

/// Reads and checks a cache; `Ok(None)` when there is none, `Err(reason)` when it is
/// damaged or from another version (the caller rebuilds it).
fn open_cache(
    path: &Path,
    options: &ImageOptions,
) -> std::result::Result<Option<LoadedImages>, String> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let file_len = file.metadata().map_err(|e| e.to_string())?.len() as usize;
    let mut reader = BufReader::with_capacity(1 << 20, &file);
    let mut prefix = [0u8; 16];
    reader
        .read_exact(&mut prefix)
        .map_err(|_| "shorter than its header".to_string())?;
    if prefix[..8] != CACHE_MAGIC {
        return Err("wrong magic bytes".into());
    }
    let json_len = u64::from_le_bytes(prefix[8..].try_into().expect("8 bytes")) as usize;
    if json_len > HEADER_BYTES - 16 {
        return Err(format!("header length {json_len} is implausible"));
    }
    let mut json = vec![0u8; json_len];
    reader
        .read_exact(&mut json)
        .map_err(|_| "shorter than its header".to_string())?;
    let header: ImageCacheHeader =
        serde_json::from_slice(&json).map_err(|e| format!("unreadable header: {e}"))?;
    if header.format != "wae-image-cache" || header.version != CACHE_VERSION {
        return Err(format!(
            "format {} version {}, expected wae-image-cache version {CACHE_VERSION}",
            header.format, header.version
        ));
    }
    if (header.size, header.channels) != (options.size, options.channels) {
        return Err("made for other image sizes".into());
    }
    let per_image = options.pixels();
    let n = header.train_count + header.test_count;
    let expected = HEADER_BYTES + n * per_image + n;
    if file_len != expected {
        return Err(format!(
            "{file_len} bytes, but its header promises {expected} ({n} images)"
        ));
    }
    // CRC over the pixels then the labels, read (not mapped) in 1 MiB pieces.
    reader
        .seek(SeekFrom::Start(HEADER_BYTES as u64))
        .map_err(|e| e.to_string())?;
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = n * per_image;
    while left > 0 {
        let take = left.min(buf.len());
        reader
            .read_exact(&mut buf[..take])
            .map_err(|e| e.to_string())?;
        crc.update(&buf[..take]);
        left -= take;
    }
    let mut labels = vec![0u8; n];
    reader.read_exact(&mut labels).map_err(|e| e.to_string())?;
    crc.update(&labels);
    let actual = crc.finalize();
    if actual != header.crc32 {
        return Err(format!(
            "CRC-32 mismatch: content {actual:08x}, header {:08x}",
            header.crc32
        ));
    }
    // SAFETY: the cache is ours, written once by rename and never modified in place.
    let map = Arc::new(unsafe { memmap2::Mmap::map(&file) }.map_err(|e| e.to_string())?);
    let side = options.size;
    let c = options.channels;
    let test_labels = labels.split_off(header.train_count);
    let train = Dataset::from_mapped(map.clone(), HEADER_BYTES, labels, c, side, side)
        .map_err(|e| e.to_string())?;
    let test = Dataset::from_mapped(
        map,
        HEADER_BYTES + header.train_count * per_image,
        test_labels,
        c,
        side,
        side,
    )
    .map_err(|e| e.to_string())?;
    Ok(Some(LoadedImages {
        train,
        test,
        cache: path.to_path_buf(),
        built: false,
        header,
    }))
}

/// Loads a `.npy` (shape `(N, H, W)` or `(N, H, W, C)`, `u8` or floats in `[0, 1]`, C
/// order) or a `.npz` holding one (named `array`, else the first of `images`, `imgs`,
/// `x`, `arr_0`; labels from an integer `labels` or `y` array beside it). Images must be
/// square; `options.size` must be their side and `options.channels` their channels
/// (1 for `(N, H, W)`). Goes through the same cache as folders.
pub fn load_array(
    path: &Path,
    array: Option<&str>,
    split: &TestSplit,
    options: &ImageOptions,
    cache_dir: Option<&Path>,
    progress: Progress<'_>,
) -> Result<LoadedImages> {
    options.check()?;
    let meta = fs::metadata(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mtime = mtime_nanos(&meta);
    let abs = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let key = serde_json::json!({
        "kind": "array", "path": abs, "len": meta.len(), "mtime": mtime, "array": array,
        "options": [options.size, options.channels], "split": split,
    });
    let bad = |message: String| Error::BadArray {
        path: path.to_path_buf(),
        message,
    };
    let is_npz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"));
    // Labels first (a second pass over the archive), then the images streamed.
    let mut archive;
    let (labels, mut reader): (Option<Vec<u8>>, Box<dyn Read + '_>) = if is_npz {
        let labels = npz_labels(path).map_err(bad)?;
        let name = npz_image_entry(path, array).map_err(bad)?;
        archive = open_zip(path).map_err(bad)?;
        let entry = archive.by_name(&name).map_err(|e| bad(e.to_string()))?;
        (labels, Box::new(BufReader::with_capacity(1 << 20, entry)))
    } else {
        if array.is_some() {
            return Err(bad(
                "data.array names an array inside a .npz; this is a .npy".into(),
            ));
        }
        let file = File::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        (None, Box::new(BufReader::with_capacity(1 << 20, file)))
    };
    let header = crate::npy::read_header_message(&mut reader).map_err(bad)?;
    let layout = ArrayLayout::new(&header, options).map_err(bad)?;
    if let Some(l) = &labels
        && l.len() != layout.n
    {
        return Err(bad(format!("{} labels for {} images", l.len(), layout.n)));
    }
    let labels = labels.unwrap_or_else(|| vec![0; layout.n]);
    let shown = path.display().to_string();
    let reader = std::cell::RefCell::new(reader);
    let rows = (0..layout.n).map(|i| {
        let (layout, reader, shown, label) = (&layout, &reader, &shown, labels[i]);
        move |_: &ImageOptions, _: &mut Vec<SkippedImage>| -> Row {
            let pixels = layout
                .read_row(&mut *reader.borrow_mut(), i)
                .map_err(|message| Error::BadArray {
                    path: PathBuf::from(shown),
                    message,
                })?;
            Ok(Some((pixels, label)))
        }
    });
    load_cached(
        &key,
        format!("array {}", abs.display()),
        Vec::new(),
        layout.n,
        rows,
        split,
        options,
        cache_dir,
        progress,
    )
}

/// How the rows of an image array are stored.
struct ArrayLayout {
    n: usize,
    side: usize,
    channels: usize,
    /// Bytes per value: 1 (u8), 4 (f32), 8 (f64).
    width: usize,
}

impl ArrayLayout {
    fn new(
        header: &crate::npy::NpyHeader,
        options: &ImageOptions,
    ) -> std::result::Result<Self, String> {
        let width = match header.descr.as_str() {
            "|u1" | "<u1" => 1,
            "<f4" => 4,
            "<f8" => 8,
            other => {
                return Err(format!(
                    "dtype {other} is not supported: store the images as uint8 (0..255) or \
                     float32 / float64 in [0, 1]"
                ));
            }
        };
        if header.fortran_order {
            return Err("the array is in Fortran order: save it with np.ascontiguousarray".into());
        }
        let (n, h, w, c) = match header.shape.as_slice() {
            &[n, h, w] => (n, h, w, 1),
            &[n, h, w, c] => (n, h, w, c),
            other => {
                return Err(format!(
                    "shape {other:?} has rank {}, expected (N, H, W) or (N, H, W, C)",
                    other.len()
                ));
            }
        };
        if h != w {
            return Err(format!("images of {h}x{w} are not square"));
        }
        if h != options.size {
            return Err(format!(
                "images of {h}x{w}, but data.size = {}: set data.size = {h}",
                options.size
            ));
        }
        if c != options.channels {
            return Err(format!(
                "{c} channel(s) per image, but data.channels = {}: set data.channels = {c}",
                options.channels
            ));
        }
        if n == 0 {
            return Err("the array holds no images".into());
        }
        Ok(Self {
            n,
            side: h,
            channels: c,
            width,
        })
    }

    /// Reads the next row (`H x W x C` values) and returns it planar as u8.
    fn read_row(
        &self,
        reader: &mut dyn Read,
        index: usize,
    ) -> std::result::Result<Vec<u8>, String> {
        let values = self.side * self.side * self.channels;
        let mut raw = vec![0u8; values * self.width];
        reader
            .read_exact(&mut raw)
            .map_err(|_| format!("the file ends inside image {index} (truncated?)"))?;
        let interleaved: Vec<u8> = match self.width {
            1 => raw,
            _ => {
                let mut out = Vec::with_capacity(values);
                for (k, bytes) in raw.chunks_exact(self.width).enumerate() {
                    let v = if self.width == 4 {
                        f64::from(f32::from_le_bytes(bytes.try_into().expect("4 bytes")))
                    } else {
                        f64::from_le_bytes(bytes.try_into().expect("8 bytes"))
                    };
                    if !(0.0..=1.0).contains(&v) {
                        return Err(format!(
                            "image {index}, value {k} is {v}: float images must lie in [0, 1]"
                        ));
                    }
                    out.push((v * 255.0).round() as u8);
                }
                out
            }
        };
        Ok(to_planar(&interleaved, self.channels))
    }
}

fn open_zip(path: &Path) -> std::result::Result<zip::ZipArchive<File>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    zip::ZipArchive::new(file).map_err(|e| format!("not a readable .npz (zip): {e}"))
}

fn npz_image_entry(path: &Path, wanted: Option<&str>) -> std::result::Result<String, String> {
    let archive = open_zip(path)?;
    let names: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    let candidates: Vec<&str> = match wanted {
        Some(w) => vec![w],
        None => vec!["images", "imgs", "x", "arr_0"],
    };
    for c in &candidates {
        let entry = format!("{c}.npy");
        if names.contains(&entry) {
            return Ok(entry);
        }
    }
    Err(format!(
        "no image array {} in it; it holds {} (set data.array to the right one)",
        candidates.join(" / "),
        names.join(", ")
    ))
}

fn npz_labels(path: &Path) -> std::result::Result<Option<Vec<u8>>, String> {
    let mut archive = open_zip(path)?;
    let names: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .collect();
    let Some(name) = ["labels.npy", "y.npy"]
        .into_iter()
        .find(|n| names.iter().any(|m| m == n))
    else {
        return Ok(None);
    };
    let mut entry = archive.by_name(name).map_err(|e| e.to_string())?;
    let header = crate::npy::read_header_message(&mut entry)?;
    let n: usize = header.shape.iter().product();
    if header.shape.len() != 1 {
        return Err(format!(
            "{name} has shape {:?}; labels must be one integer per image",
            header.shape
        ));
    }
    let width = match header.descr.as_str() {
        "|u1" | "<u1" | "|i1" | "<i1" => 1,
        "<i2" | "<u2" => 2,
        "<i4" | "<u4" => 4,
        "<i8" | "<u8" => 8,
        other => return Err(format!("{name} has dtype {other}; labels must be integers")),
    };
    let signed = header.descr.contains('i');
    let mut raw = vec![0u8; n * width];
    entry
        .read_exact(&mut raw)
        .map_err(|_| format!("{name} ends early (truncated?)"))?;
    raw.chunks_exact(width)
        .enumerate()
        .map(|(i, b)| {
            let mut bytes = [0u8; 8];
            bytes[..width].copy_from_slice(b);
            if signed && b[width - 1] & 0x80 != 0 {
                bytes[width..].fill(0xff);
            }
            let v = i64::from_le_bytes(bytes);
            u8::try_from(v).map_err(|_| {
                format!(
                    "{name}[{i}] = {v}: labels must be in 0..=255 (they colour the latent plots)"
                )
            })
        })
        .collect::<std::result::Result<Vec<u8>, String>>()
        .map(Some)
}

/// Loads the images in column `column` (a struct `{bytes, path}` as Hugging Face
/// `datasets` writes, or plain binary) of local parquet files, in file then row order,
/// with labels from an integer `label` column when every row has one in 0..=255.
/// Goes through the same cache as folders.
#[cfg(feature = "hub")]
pub fn load_parquet(
    files: &[PathBuf],
    column: &str,
    split: &TestSplit,
    options: &ImageOptions,
    cache_dir: Option<&Path>,
    progress: Progress<'_>,
) -> Result<LoadedImages> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    options.check()?;
    if files.is_empty() {
        return Err(Error::InvalidArgument(
            "no parquet files to read (data.files is empty)".into(),
        ));
    }
    let mut identity = Vec::new();
    let mut readers = Vec::new();
    let mut n = 0usize;
    for path in files {
        let perr = |message: String| Error::Parquet {
            path: path.clone(),
            message,
        };
        let file = File::open(path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let meta = file.metadata().map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let mtime = mtime_nanos(&meta);
        let abs = path.canonicalize().unwrap_or_else(|_| path.clone());
        identity.push((abs.display().to_string(), meta.len(), mtime));
        let reader = SerializedFileReader::new(file).map_err(|e| perr(e.to_string()))?;
        let rows = usize::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0);
        n += rows;
        readers.push((path.clone(), reader));
    }
    // Labels need every row first: one pass over the label column alone is as costly as
    // reading the rows, so labels are taken per row and the rare file without them
    // gets 0 everywhere (decided from its first row).
    let key = serde_json::json!({
        "kind": "parquet", "files": identity, "column": column,
        "options": [options.size, options.channels], "split": split,
    });
    let mut iters = Vec::new();
    for (path, reader) in &readers {
        let iter = reader.get_row_iter(None).map_err(|e| Error::Parquet {
            path: path.clone(),
            message: e.to_string(),
        })?;
        iters.push((path.clone(), iter));
    }
    let state = std::cell::RefCell::new((iters.into_iter(), None, 0usize));
    let rows = (0..n).map(|_| {
        let state = &state;
        move |options: &ImageOptions, skipped: &mut Vec<SkippedImage>| -> Row {
            let mut guard = state.borrow_mut();
            let (files, current, index) = &mut *guard;
            loop {
                if current.is_none() {
                    *current = files.next();
                    *index = 0;
                }
                let Some((path, iter)) = current else {
                    return Err(Error::InvalidArgument(
                        "the parquet files hold fewer rows than their metadata says".into(),
                    ));
                };
                let Some(row) = iter.next() else {
                    *current = None;
                    continue;
                };
                let at = *index;
                *index += 1;
                let perr = |message: String| Error::Parquet {
                    path: path.clone(),
                    message: format!("row {at}: {message}"),
                };
                let row = row.map_err(|e| perr(e.to_string()))?;
                let cell = crate::hub::image_cell_in(&row, column).map_err(perr)?;
                let label = crate::hub::label(&row)
                    .ok()
                    .and_then(|l| u8::try_from(l).ok())
                    .unwrap_or(0);
                let name = format!("{}#row{at}", path.display());
                return skip_or_fail(decode(&name, cell.bytes, options), label, options, skipped);
            }
        }
    });
    let source = format!("parquet {}", files[0].display());
    load_cached(
        &key,
        source,
        Vec::new(),
        n,
        rows,
        split,
        options,
        cache_dir,
        progress,
    )
}

/// Downloads (or finds in the hf-hub cache, `HF_HOME`) `files` of the Hub dataset
/// `repo` and loads them with [`load_parquet`]. `test_files`, when not empty, are read
/// the same way as the test set.
#[cfg(feature = "hub")]
#[allow(clippy::too_many_arguments)]
pub fn load_hub(
    repo: &str,
    files: &[String],
    test_files: &[String],
    column: &str,
    split: &TestSplit,
    options: &ImageOptions,
    cache_dir: Option<&Path>,
    progress: Progress<'_>,
) -> Result<LoadedImages> {
    let get = |file: &String| {
        wae_download::hub_file(repo, file, false).map_err(|e| Error::Hub {
            message: format!("{repo}/{file}: {e}"),
        })
    };
    let train: Vec<PathBuf> = files.iter().map(get).collect::<Result<_>>()?;
    if test_files.is_empty() {
        return load_parquet(&train, column, split, options, cache_dir, progress);
    }
    let test: Vec<PathBuf> = test_files.iter().map(get).collect::<Result<_>>()?;
    let loaded = load_parquet(
        &train,
        column,
        &TestSplit::None,
        options,
        cache_dir,
        progress,
    )?;
    let no_progress = &mut |_, _| {};
    let t = load_parquet(
        &test,
        column,
        &TestSplit::None,
        options,
        cache_dir,
        no_progress,
    )?;
    Ok(loaded.with_test_from(t))
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
