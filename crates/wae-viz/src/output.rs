//! Writing pictures and other result files: their directory is created, then the file is
//! written with `wae_io::write_atomic` (a temporary name, then a rename), so a crash never
//! leaves half a file.

use std::fs;
use std::path::{Path, PathBuf};

use image::{ImageFormat, RgbImage};

use crate::{Error, Result};

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Checks, before any work is done, that `path` can be written: creates its
/// directory if needed, refuses an existing directory, and creates and removes
/// the temporary file the final write will use.
pub fn ensure_writable(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(Error::Write {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "it is a directory; give a file name",
            ),
        });
    }
    let dir = parent_of(path);
    fs::create_dir_all(&dir).map_err(write_err(&dir))?;
    let tmp = wae_io::temp_path(path);
    fs::File::create(&tmp).map_err(write_err(path))?;
    fs::remove_file(&tmp).map_err(write_err(&tmp))?;
    Ok(())
}

/// Writes `bytes` to `path`, creating its directory if needed, with
/// [`wae_io::write_atomic`] (a temporary file in the same directory, then a rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_of(path);
    fs::create_dir_all(&dir).map_err(write_err(&dir))?;
    wae_io::write_atomic(path, bytes).map_err(|e| {
        let path = e.destination().to_path_buf();
        let (_, source) = e.into_parts();
        Error::Write { path, source }
    })
}

/// The PNG encoding of `image`.
pub fn png_bytes(image: &RgbImage) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Png)?;
    Ok(out.into_inner())
}

/// Saves `image` as a PNG at `path`, atomically.
pub fn save_png(image: &RgbImage, path: &Path) -> Result<()> {
    write_atomic(path, &png_bytes(image)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_a_decodable_png_and_leaves_no_temp_file() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(write_err(Path::new("tmp")))?;
        let path = tmp.path().join("sub/dir/picture.png");
        let mut img = RgbImage::new(3, 2);
        img.put_pixel(2, 1, image::Rgb([1, 2, 3]));
        ensure_writable(&path)?;
        save_png(&img, &path)?;
        let back = image::open(&path)?.to_rgb8();
        assert_eq!(back, img);
        let names: Vec<_> = fs::read_dir(path.parent().unwrap_or(tmp.path()))
            .map_err(write_err(&path))?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        Ok(())
    }

    #[test]
    fn unwritable_paths_are_reported_with_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        // A directory is not a file name.
        let err = ensure_writable(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        // A path below a regular file cannot be created.
        let file = tmp.path().join("plain");
        fs::write(&file, b"x").unwrap();
        let below = file.join("out.png");
        let err = ensure_writable(&below).unwrap_err().to_string();
        assert!(err.contains("plain"), "{err}");
        let err = save_png(&RgbImage::new(1, 1), &below)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot write"), "{err}");
    }
}
