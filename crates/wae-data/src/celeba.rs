//! CelebA at 64x64: the paper's preprocessing and the compact cache file that holds it.
//!
//! **Preprocessing** (docs/PAPER.md, [`preprocess_rgb`]): each aligned 178x218 image is
//! cropped to the box [`CROP_BOX`] = (left 19, top 39, right 159, bottom 179), right and
//! bottom exclusive as in PIL's `Image.crop`, i.e. 140x140 pixels, then resized to 64x64
//! with Lanczos ([`resize_lanczos`]: PIL's `Image.LANCZOS`, which the paper's code used
//! as `ANTIALIAS`, reproduced bit for bit). Decoding JPEG/PNG files (`preprocess`,
//! `preprocess_encoded`) needs the cargo feature `celeba`.
//! Pixels stay u8 in the cache; [`Dataset::batch`] gives f32 in `[0, 1]` (a model with a
//! tanh output maps them to `[-1, 1]` itself).
//!
//! **Split**: the images in source order (the aligned file names sorted, `000001.jpg`
//! first) are permuted by [`seeded_permutation`]`(n, 123)`; the last
//! [`CELEBA_TEST_SIZE`] = 20,000 of that order are the test set, the rest train. This is
//! the paper's procedure (seed 123, last 20k test) with `rand`'s shuffle instead of
//! numpy's, so membership differs from the paper's code; the official
//! `list_eval_partition.txt` split is not used.
//!
//! **Cache file** ([`CACHE_FILE_NAME`]), written once by `cargo xtask download celeba`
//! through [`CacheWriter`] and read by [`CelebA::load`]; all integers little-endian:
//!
//! | offset | bytes | content |
//! | --- | --- | --- |
//! | 0 | 8 | magic `WAECELEB` |
//! | 8 | 8 | `h`, u64: length of the JSON header |
//! | 16 | `h` | [`CacheHeader`] as JSON, padded with spaces |
//! | 16 + h | 4 n | u32 source index of each stored image |
//! | 16 + h + 4 n | n x 3 x 64 x 64 | pixels, u8, image-major, each `(C, H, W)` row-major |
//!
//! Images are stored in split order (train first, then test), so loading needs no
//! shuffle and no second copy. The header holds a CRC-32 of the index table and the
//! pixels; loading checks it, the sizes and that the table is a permutation.
//!
//! ```
//! use wae_data::celeba::{CacheWriter, CelebA, CELEBA_PIXELS};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("celeba64.bin");
//! // 5 images (source order 0..5), the last 2 of the seeded order as test.
//! let mut writer = CacheWriter::create(&path, 5, 2, 123, "example")?;
//! for i in 0..5u8 {
//!     writer.write(usize::from(i), &vec![i * 50; CELEBA_PIXELS])?;
//! }
//! writer.finish()?;
//! let celeba = CelebA::load(&path)?;
//! assert_eq!((celeba.train.len(), celeba.test.len()), (3, 2));
//! let batch = celeba.test.batch(&[0, 1], &candle_core::Device::Cpu)?;
//! assert_eq!(batch.dims(), &[2, 3, 64, 64]); // f32 in [0, 1]
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::{Dataset, seeded_permutation};
use crate::error::{Error, Result};

/// Width and height of the aligned CelebA images (`img_align_celeba`).
pub const ALIGNED_SIZE: (u32, u32) = (178, 218);
/// The crop box `(left, top, right, bottom)`, right and bottom exclusive: 140x140.
pub const CROP_BOX: [u32; 4] = [19, 39, 159, 179];
/// Side of the preprocessed images.
pub const CELEBA_SIDE: usize = 64;
/// Colour channels (RGB).
pub const CELEBA_CHANNELS: usize = 3;
/// u8 values per preprocessed image: `3 * 64 * 64`.
pub const CELEBA_PIXELS: usize = CELEBA_CHANNELS * CELEBA_SIDE * CELEBA_SIDE;
/// Number of aligned images in CelebA.
pub const CELEBA_IMAGES: usize = 202_599;
/// Size of the test set.
pub const CELEBA_TEST_SIZE: usize = 20_000;
/// Seed of the split's shuffle.
pub const CELEBA_SPLIT_SEED: u64 = 123;
/// File name of the cache (inside the CelebA data directory, default `data/celeba`).
pub const CACHE_FILE_NAME: &str = "celeba64.bin";
/// First 8 bytes of a cache file.
pub const CACHE_MAGIC: [u8; 8] = *b"WAECELEB";
/// The `format` field of [`CacheHeader`].
pub const CACHE_FORMAT: &str = "wae-celeba-cache";
/// The cache layout version this crate writes and reads.
pub const CACHE_VERSION: u32 = 1;
/// The `resize` field of [`CacheHeader`]: the filter used.
pub const RESIZE_FILTER: &str = "lanczos3-pil";
/// Bytes reserved for the JSON header (padded with spaces).
const HEADER_JSON_LEN: usize = 1024;
/// Largest JSON header a reader accepts.
const MAX_HEADER_JSON_LEN: u64 = 1 << 20;

/// The self-description at the start of a cache file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheHeader {
    /// Always [`CACHE_FORMAT`].
    pub format: String,
    /// Layout version ([`CACHE_VERSION`]).
    pub version: u32,
    /// Number of images `n`.
    pub count: usize,
    /// Channels per image (3).
    pub channels: usize,
    /// Image height (64).
    pub height: usize,
    /// Image width (64).
    pub width: usize,
    /// Number of test images, stored last.
    pub test_count: usize,
    /// Seed of the split's [`seeded_permutation`].
    pub split_seed: u64,
    /// The crop box `(left, top, right, bottom)` applied to the aligned images.
    pub crop_box: [u32; 4],
    /// The resize filter ([`RESIZE_FILTER`]).
    pub resize: String,
    /// Where the images came from (free text, e.g. the archive path or hub repository)
    /// and how the source order was defined.
    pub source: String,
    /// CRC-32 (IEEE) of the index table followed by the pixels.
    pub crc32: u32,
}

/// CelebA in memory: a train and a test [`Dataset`] of `(3, 64, 64)` u8 images
/// (labels all 0: the cache keeps no attributes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CelebA {
    /// Training images (`count - test_count`; 182,599 for the full set).
    pub train: Dataset,
    /// Test images (`test_count`; 20,000 for the full set).
    pub test: Dataset,
    /// Source index (position in the sorted source) of every image, train then test.
    pub source_indices: Vec<u32>,
    /// The cache's header.
    pub header: CacheHeader,
}

impl CelebA {
    /// Reads a cache file written by [`CacheWriter`] (see the module docs for the layout)
    /// and checks it: magic, header, `3x64x64` images, exact file size, the index table
    /// being a permutation, and the CRC-32. A missing file is
    /// [`Error::CelebaCacheMissing`] (saying how to build it); anything else wrong is
    /// [`Error::CelebaCacheCorrupt`].
    pub fn load(path: &Path) -> Result<Self> {
        let corrupt = |reason: String| Error::CelebaCacheCorrupt {
            path: path.to_path_buf(),
            reason,
        };
        let io_err = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::CelebaCacheMissing {
                    path: path.to_path_buf(),
                }
            } else {
                io_err(e)
            }
        })?;
        let file_len = file.metadata().map_err(io_err)?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let truncated = |what: &str| corrupt(format!("the file ends inside the {what}"));

        let mut prefix = [0u8; 16];
        reader
            .read_exact(&mut prefix)
            .map_err(|_| truncated("file header"))?;
        if prefix[..8] != CACHE_MAGIC {
            return Err(corrupt(format!(
                "wrong magic {:?}, expected {:?}",
                String::from_utf8_lossy(&prefix[..8]),
                String::from_utf8_lossy(&CACHE_MAGIC)
            )));
        }
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&prefix[8..]);
        let json_len = u64::from_le_bytes(len_bytes);
        if json_len > MAX_HEADER_JSON_LEN {
            return Err(corrupt(format!("header length {json_len} is implausible")));
        }
        let mut json = vec![0u8; json_len as usize];
        reader
            .read_exact(&mut json)
            .map_err(|_| truncated("JSON header"))?;
        let header: CacheHeader = serde_json::from_slice(json.trim_ascii_end())
            .map_err(|e| corrupt(format!("unreadable JSON header: {e}")))?;
        check_header(&header).map_err(corrupt)?;

        let n = header.count;
        let expected = 16 + json_len + 4 * n as u64 + (n * CELEBA_PIXELS) as u64;
        if file_len != expected {
            return Err(corrupt(format!(
                "{file_len} bytes, but the header promises {expected} ({n} images)"
            )));
        }
        let mut crc = crc32fast::Hasher::new();
        let mut table = vec![0u8; 4 * n];
        reader
            .read_exact(&mut table)
            .map_err(|_| truncated("index table"))?;
        crc.update(&table);
        let source_indices: Vec<u32> = table
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        drop(table);
        check_permutation(&source_indices).map_err(corrupt)?;

        let n_test = header.test_count;
        let n_train = n - n_test;
        let mut read_images = |count: usize, what: &str| -> Result<Vec<u8>> {
            let mut pixels = vec![0u8; count * CELEBA_PIXELS];
            reader
                .read_exact(&mut pixels)
                .map_err(|_| truncated(what))?;
            crc.update(&pixels);
            Ok(pixels)
        };
        let train_pixels = read_images(n_train, "training images")?;
        let test_pixels = read_images(n_test, "test images")?;
        let actual = crc.finalize();
        if actual != header.crc32 {
            return Err(corrupt(format!(
                "CRC-32 mismatch: the content has {actual:08x}, the header says {:08x}",
                header.crc32
            )));
        }
        let dataset = |pixels: Vec<u8>, count: usize| {
            Dataset::new(
                pixels,
                vec![0; count],
                CELEBA_CHANNELS,
                CELEBA_SIDE,
                CELEBA_SIDE,
            )
        };
        Ok(CelebA {
            train: dataset(train_pixels, n_train)?,
            test: dataset(test_pixels, n_test)?,
            source_indices,
            header,
        })
    }

    /// Finds the cache: `explicit` (a cache file, or a directory holding
    /// [`CACHE_FILE_NAME`]) if given; else `data/celeba/celeba64.bin` under the current
    /// directory. The error names the place tried and how to build the cache.
    pub fn locate(explicit: Option<&Path>) -> Result<PathBuf> {
        if let Some(p) = explicit {
            let path = crate::data_dir::file_or_folder(p, CACHE_FILE_NAME);
            return if path.is_file() {
                Ok(path)
            } else {
                Err(Error::CelebaCacheMissing { path })
            };
        }
        let path = crate::data_dir::default_dir("celeba").join(CACHE_FILE_NAME);
        if path.is_file() {
            Ok(path)
        } else {
            // Named in full, so the message says which current directory was meant.
            let path = std::env::current_dir().map_or(path.clone(), |cwd| cwd.join(&path));
            Err(Error::CelebaCacheMissing { path })
        }
    }

    /// Reads only the header of a cache file (cheap; no pixel is read or checked).
    pub fn read_header(path: &Path) -> Result<CacheHeader> {
        let corrupt = |reason: String| Error::CelebaCacheCorrupt {
            path: path.to_path_buf(),
            reason,
        };
        let mut file = File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::CelebaCacheMissing {
                    path: path.to_path_buf(),
                }
            } else {
                Error::Io {
                    path: path.to_path_buf(),
                    source: e,
                }
            }
        })?;
        let mut prefix = [0u8; 16];
        file.read_exact(&mut prefix)
            .map_err(|_| corrupt("the file ends inside the file header".into()))?;
        if prefix[..8] != CACHE_MAGIC {
            return Err(corrupt("wrong magic".into()));
        }
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&prefix[8..]);
        let json_len = u64::from_le_bytes(len_bytes);
        if json_len > MAX_HEADER_JSON_LEN {
            return Err(corrupt(format!("header length {json_len} is implausible")));
        }
        let mut json = vec![0u8; json_len as usize];
        file.read_exact(&mut json)
            .map_err(|_| corrupt("the file ends inside the JSON header".into()))?;
        let header: CacheHeader = serde_json::from_slice(json.trim_ascii_end())
            .map_err(|e| corrupt(format!("unreadable JSON header: {e}")))?;
        check_header(&header).map_err(corrupt)?;
        Ok(header)
    }
}

fn check_header(h: &CacheHeader) -> std::result::Result<(), String> {
    if h.format != CACHE_FORMAT {
        return Err(format!("format `{}`, expected `{CACHE_FORMAT}`", h.format));
    }
    if h.version != CACHE_VERSION {
        return Err(format!(
            "layout version {}, this build reads version {CACHE_VERSION}",
            h.version
        ));
    }
    if (h.channels, h.height, h.width) != (CELEBA_CHANNELS, CELEBA_SIDE, CELEBA_SIDE) {
        return Err(format!(
            "images of {}x{}x{}, expected {CELEBA_CHANNELS}x{CELEBA_SIDE}x{CELEBA_SIDE}",
            h.channels, h.height, h.width
        ));
    }
    if h.count == 0 || h.count > u32::MAX as usize {
        return Err(format!("implausible image count {}", h.count));
    }
    if h.test_count > h.count {
        return Err(format!(
            "test count {} exceeds the image count {}",
            h.test_count, h.count
        ));
    }
    Ok(())
}

fn check_permutation(order: &[u32]) -> std::result::Result<(), String> {
    let mut seen = vec![false; order.len()];
    for (slot, &source) in order.iter().enumerate() {
        match seen.get_mut(source as usize) {
            Some(s) if !*s => *s = true,
            Some(_) => {
                return Err(format!(
                    "the index table names source image {source} twice (slot {slot})"
                ));
            }
            None => {
                return Err(format!(
                    "the index table names source image {source} of {} (slot {slot})",
                    order.len()
                ));
            }
        }
    }
    Ok(())
}

/// Writes a cache file image by image, in any order, then seals it.
///
/// The images are identified by their position in the source order (`0..count`); each
/// goes to its slot of the split order ([`seeded_permutation`]`(count, split_seed)`, the
/// last `test_count` positions being the test set). Everything goes to a temporary file
/// beside `dest` (the final size is reserved up front); [`CacheWriter::finish`] checks
/// that every image was written, computes the CRC, writes the header and renames the
/// file into place. A writer dropped before `finish` removes its temporary file.
#[derive(Debug)]
pub struct CacheWriter {
    dest: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    header: CacheHeader,
    slot_of_source: Vec<u32>,
    written: Vec<bool>,
    remaining: usize,
    data_offset: u64,
}

impl CacheWriter {
    /// Starts a cache for `count` images, the last `test_count` of the seeded order as
    /// test; `source` describes where the images come from (stored in the header).
    pub fn create(
        dest: &Path,
        count: usize,
        test_count: usize,
        split_seed: u64,
        source: &str,
    ) -> Result<Self> {
        if count == 0 || count > u32::MAX as usize {
            return Err(Error::InvalidArgument(format!(
                "a CelebA cache needs between 1 and {} images, got {count}",
                u32::MAX
            )));
        }
        if test_count >= count {
            return Err(Error::InvalidArgument(format!(
                "test size {test_count} leaves no training image out of {count}"
            )));
        }
        let header = CacheHeader {
            format: CACHE_FORMAT.into(),
            version: CACHE_VERSION,
            count,
            channels: CELEBA_CHANNELS,
            height: CELEBA_SIDE,
            width: CELEBA_SIDE,
            test_count,
            split_seed,
            crop_box: CROP_BOX,
            resize: RESIZE_FILTER.into(),
            source: source.into(),
            crc32: 0,
        };
        // Fail early if the description does not fit the reserved header.
        header_bytes(&header)?;
        let order = seeded_permutation(count, split_seed);
        let mut slot_of_source = vec![0u32; count];
        for (slot, &source_index) in order.iter().enumerate() {
            slot_of_source[source_index] = slot as u32;
        }
        let tmp = wae_io::temp_path(dest);
        let io_err = |source| Error::Io {
            path: tmp.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err)?;
        let data_offset = (16 + HEADER_JSON_LEN) as u64;
        let table: Vec<u8> = order
            .iter()
            .flat_map(|&s| (s as u32).to_le_bytes())
            .collect();
        let total = data_offset + table.len() as u64 + (count * CELEBA_PIXELS) as u64;
        let mut writer = Self {
            dest: dest.to_path_buf(),
            tmp: tmp.clone(),
            // Held by the writer from here on, so an error below removes the file.
            file: Some(file),
            header,
            slot_of_source,
            written: vec![false; count],
            remaining: count,
            data_offset,
        };
        if let Some(file) = writer.file.as_mut() {
            file.set_len(total).map_err(io_err)?;
            file.seek(SeekFrom::Start(data_offset)).map_err(io_err)?;
            file.write_all(&table).map_err(io_err)?;
        }
        Ok(writer)
    }

    /// The number of images not written yet.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Stores the preprocessed image at `source_index` (its position in the source
    /// order): [`CELEBA_PIXELS`] u8 values, `(3, 64, 64)` row-major.
    pub fn write(&mut self, source_index: usize, pixels: &[u8]) -> Result<()> {
        if pixels.len() != CELEBA_PIXELS {
            return Err(Error::InvalidArgument(format!(
                "a CelebA image has {CELEBA_PIXELS} values (3x64x64), got {}",
                pixels.len()
            )));
        }
        let count = self.header.count;
        let done = self.written.get_mut(source_index).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "source index {source_index} is out of range for {count} images"
            ))
        })?;
        if *done {
            return Err(Error::InvalidArgument(format!(
                "source image {source_index} was already written"
            )));
        }
        let slot = self.slot_of_source[source_index] as u64;
        let offset = self.data_offset + 4 * count as u64 + slot * CELEBA_PIXELS as u64;
        let tmp = &self.tmp;
        let io_err = |source| Error::Io {
            path: tmp.clone(),
            source,
        };
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| Error::InvalidArgument("the cache writer is closed".into()))?;
        file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        file.write_all(pixels).map_err(io_err)?;
        *done = true;
        self.remaining -= 1;
        Ok(())
    }

    /// Checks that every image was written, computes the CRC-32, writes the header,
    /// syncs and renames the file to its destination. Returns the header.
    pub fn finish(mut self) -> Result<CacheHeader> {
        if self.remaining > 0 {
            let first = self.written.iter().position(|w| !w).unwrap_or(0);
            return Err(Error::InvalidArgument(format!(
                "{} of {} images were never written (the first is source image {first}); \
                 the cache was not created",
                self.remaining, self.header.count
            )));
        }
        let tmp = self.tmp.clone();
        let io_err = |source| Error::Io {
            path: tmp.clone(),
            source,
        };
        let mut file = self
            .file
            .take()
            .ok_or_else(|| Error::InvalidArgument("the cache writer is closed".into()))?;
        let result = (|| {
            file.flush().map_err(io_err)?;
            file.seek(SeekFrom::Start(self.data_offset))
                .map_err(io_err)?;
            let mut crc = crc32fast::Hasher::new();
            let mut reader = BufReader::with_capacity(1 << 20, &mut file);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = reader.read(&mut buf).map_err(io_err)?;
                if n == 0 {
                    break;
                }
                crc.update(&buf[..n]);
            }
            drop(reader);
            self.header.crc32 = crc.finalize();
            let bytes = header_bytes(&self.header)?;
            file.seek(SeekFrom::Start(0)).map_err(io_err)?;
            file.write_all(&bytes).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
            drop(file);
            std::fs::rename(&self.tmp, &self.dest).map_err(|source| Error::Io {
                path: self.dest.clone(),
                source,
            })
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        result.map(|()| self.header.clone())
    }
}

impl Drop for CacheWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Magic, length and the JSON header padded to [`HEADER_JSON_LEN`] bytes.
fn header_bytes(header: &CacheHeader) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(header)
        .map_err(|e| Error::InvalidArgument(format!("cannot encode the cache header: {e}")))?;
    if json.len() > HEADER_JSON_LEN {
        return Err(Error::InvalidArgument(format!(
            "the cache header takes {} bytes, more than the {HEADER_JSON_LEN} reserved \
             (shorten the source description)",
            json.len()
        )));
    }
    let mut out = Vec::with_capacity(16 + HEADER_JSON_LEN);
    out.extend_from_slice(&CACHE_MAGIC);
    out.extend_from_slice(&(HEADER_JSON_LEN as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.resize(16 + HEADER_JSON_LEN, b' ');
    Ok(out)
}

/// Crops an aligned 178x218 RGB image to [`CROP_BOX`] and resizes it to 64x64 with
/// [`resize_lanczos`]; returns [`CELEBA_PIXELS`] u8 values, `(3, 64, 64)` row-major
/// (RGB planes).
///
/// `rgb` holds `height` rows of `width` interleaved RGB pixels (`HWC`, as decoders give
/// them). Another size than 178x218 is [`Error::BadImage`] (`name` goes in the message).
pub fn preprocess_rgb(name: &str, rgb: &[u8], width: usize, height: usize) -> Result<Vec<u8>> {
    let (aligned_w, aligned_h) = (ALIGNED_SIZE.0 as usize, ALIGNED_SIZE.1 as usize);
    if (width, height) != (aligned_w, aligned_h) {
        return Err(Error::BadImage {
            name: name.to_string(),
            message: format!(
                "{width}x{height} pixels, expected the aligned {aligned_w}x{aligned_h} \
                 (img_align_celeba)"
            ),
        });
    }
    if rgb.len() != width * height * 3 {
        return Err(Error::BadImage {
            name: name.to_string(),
            message: format!(
                "{} bytes do not make a {width}x{height} RGB image",
                rgb.len()
            ),
        });
    }
    let [left, top, right, bottom] = CROP_BOX.map(|v| v as usize);
    let (crop_w, crop_h) = (right - left, bottom - top);
    let mut cropped = Vec::with_capacity(crop_w * crop_h * 3);
    for row in top..bottom {
        let start = (row * width + left) * 3;
        cropped.extend_from_slice(&rgb[start..start + crop_w * 3]);
    }
    let resized = resize_lanczos(&cropped, crop_w, crop_h, 3, CELEBA_SIDE, CELEBA_SIDE)?;
    let plane = CELEBA_SIDE * CELEBA_SIDE;
    let mut out = vec![0u8; CELEBA_PIXELS];
    for (p, pixel) in resized.chunks_exact(3).enumerate() {
        for (c, &v) in pixel.iter().enumerate() {
            out[c * plane + p] = v;
        }
    }
    Ok(out)
}

/// Fixed-point precision of [`resize_lanczos`]'s weights (PIL's `PRECISION_BITS`).
const PRECISION_BITS: u32 = 22;

/// PIL's Lanczos kernel: `sinc(x) sinc(x / 3)` on `[-3, 3)`.
fn lanczos3(x: f64) -> f64 {
    fn sinc(x: f64) -> f64 {
        if x == 0.0 {
            1.0
        } else {
            let x = x * std::f64::consts::PI;
            x.sin() / x
        }
    }
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// For each output position along one axis: the first input index and the fixed-point
/// weights of the inputs from there on (PIL's `precompute_coeffs` and
/// `normalize_coeffs_8bpc`).
fn lanczos_weights(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = 3.0 * filter_scale;
    let one = f64::from(1u32 << PRECISION_BITS);
    (0..out_size)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            // `as` truncates toward zero, like C's (int) cast.
            let first = ((center - support + 0.5) as i64).max(0) as usize;
            let end = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let weights: Vec<f64> = (first..end)
                .map(|i| lanczos3((i as f64 - center + 0.5) / filter_scale))
                .collect();
            let total: f64 = weights.iter().sum();
            let fixed = weights
                .iter()
                .map(|&w| {
                    let w = if total != 0.0 { w / total } else { w };
                    let rounded = if w < 0.0 {
                        -0.5 + w * one
                    } else {
                        0.5 + w * one
                    };
                    rounded as i32
                })
                .collect();
            (first, fixed)
        })
        .collect()
}

/// Rounds a fixed-point sum to u8 with clipping (PIL's `clip8`).
fn clip8(sum: i32) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes an interleaved u8 image (`height` rows of `width` pixels of `channels`
/// values) to `out_width x out_height` with Lanczos (a = 3), reproducing PIL's
/// `Image.resize(.., Image.LANCZOS)` (= `ANTIALIAS`, what the paper's code used) bit for
/// bit: the kernel is widened by the shrink factor, weights are normalised and rounded to
/// 22-bit fixed point, the horizontal pass runs first and its result is rounded and
/// clipped to u8 before the vertical pass.
pub fn resize_lanczos(
    src: &[u8],
    width: usize,
    height: usize,
    channels: usize,
    out_width: usize,
    out_height: usize,
) -> Result<Vec<u8>> {
    if width == 0 || height == 0 || channels == 0 || out_width == 0 || out_height == 0 {
        return Err(Error::InvalidArgument(format!(
            "cannot resize {width}x{height}x{channels} to {out_width}x{out_height}"
        )));
    }
    if src.len() != width * height * channels {
        return Err(Error::InvalidArgument(format!(
            "{} values do not make a {width}x{height}x{channels} image",
            src.len()
        )));
    }
    let half = 1i32 << (PRECISION_BITS - 1);
    // Horizontal pass: (height, out_width, channels).
    let mut horizontal = vec![0u8; height * out_width * channels];
    let weights_x = lanczos_weights(width, out_width);
    for row in 0..height {
        let src_row = &src[row * width * channels..(row + 1) * width * channels];
        for (o, (first, weights)) in weights_x.iter().enumerate() {
            for c in 0..channels {
                let mut sum = half;
                for (k, &w) in weights.iter().enumerate() {
                    sum += i32::from(src_row[(first + k) * channels + c]) * w;
                }
                horizontal[(row * out_width + o) * channels + c] = clip8(sum);
            }
        }
    }
    // Vertical pass: (out_height, out_width, channels).
    let mut out = vec![0u8; out_height * out_width * channels];
    let row_len = out_width * channels;
    for (o, (first, weights)) in lanczos_weights(height, out_height).iter().enumerate() {
        for i in 0..row_len {
            let mut sum = half;
            for (k, &w) in weights.iter().enumerate() {
                sum += i32::from(horizontal[(first + k) * row_len + i]) * w;
            }
            out[o * row_len + i] = clip8(sum);
        }
    }
    Ok(out)
}

/// Converts a decoded image to 8-bit RGB and preprocesses it with [`preprocess_rgb`].
#[cfg(feature = "celeba")]
pub fn preprocess(name: &str, image: &image::DynamicImage) -> Result<Vec<u8>> {
    let rgb = image.to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    preprocess_rgb(name, rgb.as_raw(), w, h)
}

/// Decodes an encoded image (JPEG or PNG, recognised from its bytes) and preprocesses
/// it with [`preprocess_rgb`]. JPEG decoding (zune-jpeg) may differ from libjpeg's by a
/// level on some pixels.
#[cfg(feature = "celeba")]
pub fn preprocess_encoded(name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    let image = image::load_from_memory(bytes).map_err(|e| Error::BadImage {
        name: name.to_string(),
        message: format!("cannot decode: {e}"),
    })?;
    preprocess(name, &image)
}
