//! `.npy` / `.npz` image arrays.

use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::cache::load_cached;
use super::*;
use crate::error::{Error, Result};

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
