//! Files written whole and file digests: the one place the wae crates do either.
//!
//! - [`write_atomic`] / [`write_atomic_with`]: a file is written to a temporary name in
//!   its own directory, synced and renamed over the destination, so a crash never leaves
//!   half a file; the temporary file is removed when anything fails. [`temp_path`] names
//!   that temporary file for writers that must manage it themselves.
//! - [`hash_file`], [`sha256_file`], [`md5_file`] (streamed) and [`sha256_hex`],
//!   [`md5_hex`] (in memory): lowercase hex digests.
//!
//! - [`heavy_tests`]: the one reading of the `WAE_HEAVY_TESTS=1` switch that turns on the
//!   opt-in heavy tests of every crate (a dev-dependency where only tests use it).
//!
//! It depends on no other wae crate, so every crate, down to `wae-data`,
//! `wae-download` and (for its tests) `wae-divergence`, can use it.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("hello.txt");
//! wae_io::write_atomic(&path, b"hello")?;
//! assert_eq!(std::fs::read(&path)?, b"hello");
//! assert_eq!(
//!     wae_io::sha256_file(&path)?,
//!     "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use md5::Md5;
use sha2::{Digest, Sha256};

/// What went wrong writing or reading a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Writing `path` failed; `at` is the file the failing operation touched (the
    /// temporary file, or `path` itself for the final rename).
    #[error("cannot write {}: {source}", at.display())]
    Write {
        /// The destination.
        path: PathBuf,
        /// The temporary file or the destination, whichever the failing step touched.
        at: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Opening or reading `path` failed.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl Error {
    /// The file the failing operation touched (for a write: the temporary file, or the
    /// destination for the rename).
    pub fn path(&self) -> &Path {
        match self {
            Self::Write { at, .. } => at,
            Self::Read { path, .. } => path,
        }
    }

    /// The file the caller named (for a write: the destination).
    pub fn destination(&self) -> &Path {
        match self {
            Self::Write { path, .. } | Self::Read { path, .. } => path,
        }
    }

    /// Splits into [`Error::path`] and the underlying I/O error.
    pub fn into_parts(self) -> (PathBuf, io::Error) {
        match self {
            Self::Write { at, source, .. } => (at, source),
            Self::Read { path, source } => (path, source),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// The temporary file `dest` is written to before it is renamed: a hidden name in the
/// same directory (so the rename is atomic), `.NAME.tmp-PID-N`, unique per process and
/// call so that concurrent writers of one file never share it.
pub fn temp_path(dest: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = format!(".{name}.tmp-{}-{n}", std::process::id());
    match dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir.join(tmp),
        None => PathBuf::from(tmp),
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory (see
/// [`temp_path`]), fsync, rename over `path`, then a best-effort fsync of the directory.
/// The directory must exist; on failure the temporary file is removed and `path` is
/// left as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |out| out.write_all(bytes))
}

/// Writes `path` atomically through `fill`, which gets a buffered writer on the
/// temporary file; the file is flushed, synced and renamed only if `fill` succeeds.
/// Otherwise as [`write_atomic`].
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<()> {
    let tmp = temp_path(path);
    let at = |file: &Path| {
        let (path, at) = (path.to_path_buf(), file.to_path_buf());
        move |source| Error::Write { path, at, source }
    };
    let result = (|| {
        let file = File::create(&tmp).map_err(at(&tmp))?;
        let mut writer = BufWriter::new(file);
        fill(&mut writer).map_err(at(&tmp))?;
        writer.flush().map_err(at(&tmp))?;
        let file = writer.into_inner().map_err(|e| at(&tmp)(e.into_error()))?;
        file.sync_all().map_err(at(&tmp))?;
        drop(file);
        fs::rename(&tmp, path).map_err(at(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    sync_dir(dir.unwrap_or_else(|| Path::new(".")));
    Ok(())
}

/// Syncs directory `dir` (after a rename in it), best effort: directories cannot be
/// opened for syncing on every platform, and a failure is ignored.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The environment variable that turns on the heavy (slow or data-hungry) tests.
pub const HEAVY_TESTS_ENV: &str = "WAE_HEAVY_TESTS";

/// Whether the heavy tests are asked for: `WAE_HEAVY_TESTS=1` exactly. When not, says
/// so on stderr (`skipped: WHAT (set WAE_HEAVY_TESTS=1 to run it)`), so a skipped test
/// is never silent. A test starts with `if !wae_io::heavy_tests("...") { return; }`.
pub fn heavy_tests(what: &str) -> bool {
    let on = std::env::var(HEAVY_TESTS_ENV).is_ok_and(|v| v == "1");
    if !on {
        eprintln!("skipped: {what} (set {HEAVY_TESTS_ENV}=1 to run it)");
    }
    on
}

/// A digest algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// SHA-256.
    Sha256,
    /// MD5 (for data sets whose publishers only list MD5s).
    Md5,
}

impl Algorithm {
    /// The lowercase name: `sha256` or `md5`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Md5 => "md5",
        }
    }
}

/// The digest of the file at `path` in `algorithm`, lowercase hex, read in 1 MiB blocks.
pub fn hash_file(algorithm: Algorithm, path: &Path) -> Result<String> {
    match algorithm {
        Algorithm::Sha256 => stream::<Sha256>(path),
        Algorithm::Md5 => stream::<Md5>(path),
    }
}

/// SHA-256 of the file at `path`, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    hash_file(Algorithm::Sha256, path)
}

/// MD5 of the file at `path`, lowercase hex.
pub fn md5_file(path: &Path) -> Result<String> {
    hash_file(Algorithm::Md5, path)
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// MD5 of `bytes`, lowercase hex.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

fn stream<D: Digest>(path: &Path) -> Result<String> {
    let read_err = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let mut hasher = D::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory and the path `f.bin` in it.
    fn scratch() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.bin");
        (dir, file)
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp_files() {
        let (dir, p) = scratch();
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failing_fill_keeps_the_old_file_and_removes_the_temporary() {
        let (dir, p) = scratch();
        write_atomic(&p, b"old").unwrap();
        let err = write_atomic_with(&p, |out| {
            out.write_all(b"half")?;
            Err(io::Error::other("disk on fire"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk on fire"), "{err}");
        assert_eq!(err.destination(), p);
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/f.bin");
        let err = write_atomic(&p, b"x").unwrap_err();
        assert!(err.path().starts_with(dir.path().join("no/such")), "{err}");
    }

    #[test]
    fn temporary_names_are_unique_and_beside_the_destination() {
        let a = temp_path(Path::new("d/f.json"));
        let b = temp_path(Path::new("d/f.json"));
        assert_ne!(a, b);
        assert_eq!(a.parent(), Some(Path::new("d")));
        assert!(temp_path(Path::new("f")).parent() == Some(Path::new("")));
    }

    #[test]
    fn digests_match_known_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hello");
        fs::write(&p, b"hello").unwrap();
        assert_eq!(md5_file(&p).unwrap(), "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(md5_hex(b"hello"), "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(
            sha256_file(&p).unwrap(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(sha256_hex(b"hello"), sha256_file(&p).unwrap());
        let err = sha256_file(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
