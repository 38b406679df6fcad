//! MD5 verification of the uncompressed MNIST files, with a verdict cache.
//!
//! The cache is a JSON file `checksums.json` in the cache directory (see
//! [`default_cache_dir`]); it is never written into the data directory. An entry is keyed
//! by the file's absolute path and remembers its size and modification time; when either
//! changes, the MD5 is computed again. A cache that cannot be read or written only costs
//! time: it is logged and ignored.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use wae_io::md5_hex;

use crate::error::{Error, Result};

/// Environment variable naming the cache directory (overrides the user's cache dir).
pub const CACHE_DIR_ENV: &str = "WAE_CACHE_DIR";

/// Name of the cache file inside the cache directory.
pub const CACHE_FILE: &str = "checksums.json";

/// Whether and how loading checks the files against the canonical MD5s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verify {
    /// Check every file, remembering verdicts in the cache so that an unchanged file
    /// (same absolute path, size and modification time) is hashed only once.
    #[default]
    Cached,
    /// Check every file on every load; touch no cache.
    Always,
    /// Do not check (for files that are not the canonical MNIST, e.g. test fixtures).
    Skip,
}

/// The cache directory: `WAE_CACHE_DIR` if set, else `<user cache dir>/wae`
/// (e.g. `~/.cache/wae` on Linux); `None` when neither exists.
pub fn default_cache_dir() -> Option<PathBuf> {
    match std::env::var_os(CACHE_DIR_ENV) {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => dirs::cache_dir().map(|d| d.join("wae")),
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    size: u64,
    mtime_secs: u64,
    mtime_nanos: u32,
    md5: String,
}

/// File identity used as the cache key: absolute path, size, modification time.
fn identity(path: &Path) -> Option<(String, u64, u64, u32)> {
    let abs = fs::canonicalize(path).ok()?;
    let meta = fs::metadata(&abs).ok()?;
    let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some((
        abs.to_string_lossy().into_owned(),
        meta.len(),
        mtime.as_secs(),
        mtime.subsec_nanos(),
    ))
}

/// The verdict cache: a map from absolute path to (size, mtime, MD5 of the content).
#[derive(Debug)]
pub(crate) struct ChecksumCache {
    file: Option<PathBuf>,
    entries: BTreeMap<String, Entry>,
    dirty: bool,
    /// Number of MD5s computed (not taken from the cache) by this instance.
    pub computed: usize,
}

impl ChecksumCache {
    /// Opens the cache in `dir` (no file when `dir` is `None`).
    pub fn open(dir: Option<&Path>) -> Self {
        let file = dir.map(|d| d.join(CACHE_FILE));
        let entries = file
            .as_deref()
            .and_then(|f| fs::read(f).ok())
            .and_then(|bytes| match serde_json::from_slice(&bytes) {
                Ok(map) => Some(map),
                Err(e) => {
                    tracing::warn!("ignoring unreadable checksum cache: {e}");
                    None
                }
            })
            .unwrap_or_default();
        Self {
            file,
            entries,
            dirty: false,
            computed: 0,
        }
    }

    /// Checks that the uncompressed `content` of `path` has MD5 `expected`, using the
    /// cached MD5 when `path`'s identity is unchanged.
    pub fn verify(&mut self, path: &Path, content: &[u8], expected: &str) -> Result<()> {
        let id = identity(path);
        let cached = id.as_ref().and_then(|(key, size, secs, nanos)| {
            self.entries
                .get(key)
                .filter(|e| e.size == *size && e.mtime_secs == *secs && e.mtime_nanos == *nanos)
                .map(|e| e.md5.clone())
        });
        let actual = match cached {
            Some(md5) => md5,
            None => {
                let md5 = md5_hex(content);
                self.computed += 1;
                if let Some((key, size, mtime_secs, mtime_nanos)) = id {
                    self.entries.insert(
                        key,
                        Entry {
                            size,
                            mtime_secs,
                            mtime_nanos,
                            md5: md5.clone(),
                        },
                    );
                    self.dirty = true;
                }
                md5
            }
        };
        if actual != expected {
            return Err(Error::ChecksumMismatch {
                path: path.to_path_buf(),
                expected: expected.to_string(),
                actual,
            });
        }
        Ok(())
    }

    /// Writes the cache if it changed (temporary file, then rename). Failures are logged.
    pub fn save(&mut self) {
        let Some(file) = self.file.as_deref() else {
            return;
        };
        if !self.dirty {
            return;
        }
        // Merge with what another process may have written meanwhile.
        if let Some(on_disk) = fs::read(file)
            .ok()
            .and_then(|b| serde_json::from_slice::<BTreeMap<String, Entry>>(&b).ok())
        {
            for (k, v) in on_disk {
                self.entries.entry(k).or_insert(v);
            }
        }
        match write_atomically(file, &self.entries) {
            Ok(()) => self.dirty = false,
            Err(e) => tracing::warn!("cannot write checksum cache {}: {e}", file.display()),
        }
    }
}

fn write_atomically(file: &Path, entries: &BTreeMap<String, Entry>) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_vec_pretty(entries).map_err(std::io::Error::other)?;
    wae_io::write_atomic(file, &json).map_err(|e| e.into_parts().1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_cached_by_path_size_and_mtime() {
        let data = tempfile::tempdir().expect("tempdir");
        let cache_dir = tempfile::tempdir().expect("tempdir");
        let file = data.path().join("f.bin");
        std::fs::write(&file, b"hello").expect("write");
        let md5 = md5_hex(b"hello");
        assert_eq!(md5, "5d41402abc4b2a76b9719d911017c592");

        let mut cache = ChecksumCache::open(Some(cache_dir.path()));
        cache.verify(&file, b"hello", &md5).expect("matches");
        assert_eq!(cache.computed, 1);
        cache.verify(&file, b"hello", &md5).expect("matches");
        assert_eq!(cache.computed, 1, "second check comes from memory");
        cache.save();
        assert!(cache_dir.path().join(CACHE_FILE).is_file());
        assert_eq!(std::fs::read_dir(data.path()).expect("ls").count(), 1);

        let mut reopened = ChecksumCache::open(Some(cache_dir.path()));
        reopened.verify(&file, b"hello", &md5).expect("matches");
        assert_eq!(reopened.computed, 0, "verdict read from the cache file");

        // A changed size invalidates the entry, and the mismatch is reported.
        std::fs::write(&file, b"hello, world").expect("write");
        let err = reopened
            .verify(&file, b"hello, world", &md5)
            .expect_err("changed");
        assert_eq!(reopened.computed, 1);
        assert!(err.to_string().contains("f.bin"), "{err}");
    }

    #[test]
    fn no_cache_dir_means_always_hash() {
        let data = tempfile::tempdir().expect("tempdir");
        let file = data.path().join("f.bin");
        std::fs::write(&file, b"abc").expect("write");
        let mut cache = ChecksumCache::open(None);
        for _ in 0..2 {
            cache
                .verify(&file, b"abc", &md5_hex(b"abc"))
                .expect("matches");
        }
        cache.save();
        assert_eq!(
            cache.computed, 1,
            "in-memory entries still avoid re-hashing"
        );
        assert_eq!(std::fs::read_dir(data.path()).expect("ls").count(), 1);
    }
}
