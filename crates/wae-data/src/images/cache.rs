//! The cache file: finding, building (atomically) and opening (CRC-checked, mapped).

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::dataset::Dataset;
use crate::error::{Error, Result};

/// Finds or builds the cache for a source of `n` examples given in order by `rows`.
#[allow(clippy::too_many_arguments)]
pub(super) fn load_cached<F>(
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
