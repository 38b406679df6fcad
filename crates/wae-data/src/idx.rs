//! Reading IDX files (gzip-compressed or raw) and checking their headers.
//!
//! IDX layout: big-endian; a magic number `0x0000_08DD` where `08` means u8 data and
//! `DD` the number of dimensions; then one u32 per dimension; then the data, row-major.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Magic number of an IDX file of u8 with 3 dimensions (MNIST images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 with 1 dimension (MNIST labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Finds `name.gz` or `name` (in that order) in `dir`.
pub(crate) fn find_file(dir: &Path, name: &str) -> Result<PathBuf> {
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    let raw = dir.join(name);
    if raw.is_file() {
        return Ok(raw);
    }
    Err(Error::MissingFile {
        dir: dir.to_path_buf(),
        name: name.to_string(),
    })
}

/// Reads a file whole, decompressing it when its name ends in `.gz`.
pub(crate) fn read_uncompressed(path: &Path) -> Result<Vec<u8>> {
    let io_err = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let is_gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let mut bytes = Vec::new();
    if is_gz {
        flate2::read::MultiGzDecoder::new(BufReader::new(file))
            .read_to_end(&mut bytes)
            .map_err(|source| Error::Gzip {
                path: path.to_path_buf(),
                source,
            })?;
    } else {
        BufReader::new(file)
            .read_to_end(&mut bytes)
            .map_err(io_err)?;
    }
    Ok(bytes)
}

fn be_u32(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_be_bytes(word)
}

/// Checks the header of IDX bytes and returns the dimensions and the data slice.
fn parse<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: u32,
    kind: &'static str,
) -> Result<(Vec<usize>, &'a [u8])> {
    let ndims = (magic & 0xff) as usize;
    let header_len = 4 + 4 * ndims;
    let truncated = |expected: u64| Error::Truncated {
        path: path.to_path_buf(),
        expected,
        actual: bytes.len() as u64,
    };
    if bytes.len() < 4 {
        return Err(truncated(header_len as u64));
    }
    let found = be_u32(bytes, 0);
    if found != magic {
        return Err(Error::BadMagic {
            path: path.to_path_buf(),
            found,
            expected: magic,
            kind,
        });
    }
    if bytes.len() < header_len {
        return Err(truncated(header_len as u64));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|i| be_u32(bytes, 4 + 4 * i) as usize)
        .collect();
    // u32 dimensions multiplied in u128 cannot overflow for up to 3 dimensions.
    let data_len: u128 = dims.iter().map(|&d| d as u128).product();
    let expected = header_len as u128 + data_len;
    let actual = bytes.len() as u128;
    if actual < expected {
        return Err(truncated(u64::try_from(expected).unwrap_or(u64::MAX)));
    }
    if actual > expected {
        return Err(Error::TrailingBytes {
            path: path.to_path_buf(),
            expected: expected as u64,
            extra: (actual - expected) as u64,
        });
    }
    Ok((dims, &bytes[header_len..]))
}

/// Checks an IDX image file's bytes (header, size, `rows x cols` images) and returns
/// the number of images and the header length.
pub(crate) fn check_images(
    path: &Path,
    bytes: &[u8],
    rows: usize,
    cols: usize,
) -> Result<(usize, usize)> {
    let (dims, data) = parse(path, bytes, IMAGES_MAGIC, "u8 images, 3 dims")?;
    if dims[1] != rows || dims[2] != cols {
        return Err(Error::BadDimensions {
            path: path.to_path_buf(),
            found: format!("{}x{}", dims[1], dims[2]),
            expected: format!("{rows}x{cols}"),
        });
    }
    Ok((dims[0], bytes.len() - data.len()))
}

/// Checks an IDX label file's bytes (header, size, every label at most `max_label`)
/// and returns the number of labels and the header length.
pub(crate) fn check_labels(path: &Path, bytes: &[u8], max_label: u8) -> Result<(usize, usize)> {
    let (_dims, data) = parse(path, bytes, LABELS_MAGIC, "u8 labels, 1 dim")?;
    if let Some((index, &label)) = data.iter().enumerate().find(|(_, l)| **l > max_label) {
        return Err(Error::BadLabel {
            path: path.to_path_buf(),
            index,
            label: i64::from(label),
            max: max_label,
        });
    }
    Ok((data.len(), bytes.len() - data.len()))
}

/// Encodes u8 images as IDX bytes (used by tests and tools that write fixtures).
pub fn encode_images(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + pixels.len());
    for word in [IMAGES_MAGIC, count, rows, cols] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

/// Encodes u8 labels as IDX bytes (used by tests and tools that write fixtures).
pub fn encode_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

/// Writes `bytes` (a whole IDX file, see [`encode_images`] / [`encode_labels`]) to `path`,
/// gzip-compressed when the name ends in `.gz`, raw otherwise. The file is written to a
/// temporary name in the same directory and renamed, so a crash never leaves half a file.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let is_gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    wae_io::write_atomic_with(path, |out| {
        if is_gz {
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            std::io::Write::write_all(&mut enc, bytes)?;
            enc.finish()?;
            Ok(())
        } else {
            std::io::Write::write_all(out, bytes)
        }
    })
    .map_err(Error::from)
}

/// Writes the images of `data` (one channel, `rows x cols`) as an IDX image file at
/// `path` (gzip when the name ends in `.gz`; atomic, see [`write_file`]).
pub fn write_images(path: &Path, data: &crate::Dataset) -> Result<()> {
    let (channels, rows, cols) = data.image_shape();
    if channels != 1 {
        return Err(Error::InvalidArgument(format!(
            "IDX image files hold one channel; this dataset has {channels}"
        )));
    }
    let dim = |v: usize, what: &str| {
        u32::try_from(v).map_err(|_| {
            Error::InvalidArgument(format!("{what} {v} does not fit an IDX u32 dimension"))
        })
    };
    let bytes = encode_images(
        dim(data.len(), "image count")?,
        dim(rows, "height")?,
        dim(cols, "width")?,
        data.images(),
    );
    write_file(path, &bytes)
}

/// Writes the labels of `data` as an IDX label file at `path` (gzip when the name ends
/// in `.gz`; atomic, see [`write_file`]).
pub fn write_labels(path: &Path, data: &crate::Dataset) -> Result<()> {
    if u32::try_from(data.len()).is_err() {
        return Err(Error::InvalidArgument(format!(
            "{} labels do not fit an IDX u32 dimension",
            data.len()
        )));
    }
    write_file(path, &encode_labels(data.labels()))
}
