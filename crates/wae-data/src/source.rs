//! Where the MNIST files are: directory lookup and loading options.

use std::path::{Path, PathBuf};

use crate::checksum::{Verify, default_cache_dir};
pub use crate::data_dir::DATA_DIR_ENV;
use crate::data_dir::default_dir;
use crate::error::{Error, Result};
use crate::mnist::FILES;

/// Where to read MNIST from, and how to check it.
///
/// Build one with [`MnistSource::locate`] (the standard lookup) or
/// [`MnistSource::from_dir`] (a known directory), then pass it to
/// [`Mnist::load`](crate::Mnist::load).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MnistSource {
    /// Directory holding the four IDX files (`*.gz` or uncompressed).
    pub dir: PathBuf,
    /// Whether to check the canonical MD5s (default: yes, with a verdict cache).
    pub verify: Verify,
    /// Directory of the checksum verdict cache; `None` means the default
    /// ([`default_cache_dir`]: `WAE_CACHE_DIR`, else the user's cache dir + `/wae`).
    /// Never the data directory.
    pub cache_dir: Option<PathBuf>,
}

impl MnistSource {
    /// A source reading `dir`, verifying checksums with the default cache.
    pub fn from_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            verify: Verify::default(),
            cache_dir: None,
        }
    }

    /// Finds the directory with [`MnistSource::resolve`] and makes a source of it.
    pub fn locate(explicit: Option<PathBuf>) -> Result<Self> {
        Ok(Self::from_dir(Self::resolve(explicit)?))
    }

    /// Sets how checksums are verified.
    pub fn with_verify(mut self, verify: Verify) -> Self {
        self.verify = verify;
        self
    }

    /// Sets the directory of the checksum verdict cache.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// The cache directory this source will use (`None`: no cache available).
    pub fn effective_cache_dir(&self) -> Option<PathBuf> {
        self.cache_dir.clone().or_else(default_cache_dir)
    }

    /// Finds the MNIST directory.
    ///
    /// Order, and nothing else:
    /// 1. `explicit` (what `--data-dir` passes): used if it is a directory, an error if not;
    /// 2. the environment variable `WAE_DATA_DIR`, if set: same rule;
    /// 3. `data/mnist` under the current directory (what `cargo xtask download mnist`
    ///    fills), if it holds at least one of the four MNIST files (gzip or raw).
    ///
    /// Nothing depends on where the binary was built or what lies beside the checkout.
    /// The error lists the three places in order and how to get the data.
    pub fn resolve(explicit: Option<PathBuf>) -> Result<PathBuf> {
        let env = std::env::var_os(DATA_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let cwd = std::env::current_dir().ok();
        resolve_in(explicit, env, cwd.as_deref())
    }
}

/// [`MnistSource::resolve`] with its inputs made explicit (for tests).
pub(crate) fn resolve_in(
    explicit: Option<PathBuf>,
    env: Option<PathBuf>,
    cwd: Option<&Path>,
) -> Result<PathBuf> {
    let shown = |p: &Path| match cwd {
        Some(c) if p.is_relative() => c.join(p).display().to_string(),
        _ => p.display().to_string(),
    };
    if let Some(dir) = explicit {
        return strict(dir, "given explicitly (--data-dir)", &shown);
    }
    if let Some(dir) = env {
        return strict(dir, "from the environment variable WAE_DATA_DIR", &shown);
    }
    let dir = match cwd {
        Some(c) => c.join(default_dir("mnist")),
        None => default_dir("mnist"),
    };
    let default = if !dir.is_dir() {
        format!("{} (the default; does not exist)", shown(&dir))
    } else if !holds_mnist(&dir) {
        format!(
            "{} (the default; exists but holds no MNIST file)",
            shown(&dir)
        )
    } else {
        return Ok(dir);
    };
    Err(Error::DataDirNotFound {
        searched: vec![
            "--data-dir (not given)".into(),
            format!("the environment variable {DATA_DIR_ENV} (not set)"),
            default,
        ],
    })
}

fn strict(dir: PathBuf, origin: &str, shown: &dyn Fn(&Path) -> String) -> Result<PathBuf> {
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(Error::DataDirNotFound {
            searched: vec![format!("{} ({origin}; not a directory)", shown(&dir))],
        })
    }
}

/// Whether `dir` holds at least one of the four MNIST files (gzip or raw).
pub(crate) fn holds_mnist(dir: &Path) -> bool {
    FILES
        .iter()
        .any(|(name, _)| dir.join(name).is_file() || dir.join(format!("{name}.gz")).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_and_env_dirs_are_strict() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        // An existing explicit directory wins even without files (missing files are
        // reported by the loader, naming them).
        assert_eq!(
            resolve_in(Some(root.to_path_buf()), None, Some(root)).expect("explicit"),
            root
        );
        let err = resolve_in(None, Some(root.join("nope")), Some(root)).expect_err("env");
        let msg = err.to_string();
        assert!(
            msg.contains("WAE_DATA_DIR") && msg.contains("nope"),
            "{msg}"
        );
    }

    #[test]
    fn the_default_is_data_mnist_under_the_current_directory_only() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cwd = tmp.path().join("project");
        std::fs::create_dir_all(&cwd).expect("mkdir");
        // MNIST beside the checkout, where CI keeps it, is not looked at.
        let beside = tmp.path().join("shared/data/mnist");
        std::fs::create_dir_all(&beside).expect("mkdir");
        std::fs::write(beside.join("t10k-labels-idx1-ubyte.gz"), b"x").expect("write");
        let err = resolve_in(None, None, Some(&cwd)).expect_err("nothing there");
        let msg = err.to_string();
        let places = [
            "--data-dir (not given)".to_string(),
            "WAE_DATA_DIR (not set)".to_string(),
            format!(
                "{} (the default; does not exist)",
                cwd.join("data/mnist").display()
            ),
        ];
        let mut last = 0;
        for place in &places {
            let at = msg
                .find(place.as_str())
                .unwrap_or_else(|| panic!("{place} not listed:\n{msg}"));
            assert!(at >= last, "places out of order:\n{msg}");
            last = at;
        }
        assert!(!msg.contains("shared"), "{msg}");
        assert!(msg.contains("cargo xtask download mnist"), "{msg}");

        // An empty `data/mnist` does not qualify ...
        std::fs::create_dir_all(cwd.join("data/mnist")).expect("mkdir");
        let msg = resolve_in(None, None, Some(&cwd))
            .expect_err("empty")
            .to_string();
        assert!(msg.contains("holds no MNIST file"), "{msg}");
        // ... one file is enough (the loader names the missing ones).
        std::fs::write(cwd.join("data/mnist/train-images-idx3-ubyte"), b"x").expect("write");
        let found = resolve_in(None, None, Some(&cwd)).expect("found");
        assert_eq!(found, cwd.join("data/mnist"));

        // The explicit directory and the environment variable come first.
        assert_eq!(
            resolve_in(None, Some(beside.clone()), Some(&cwd)).expect("env"),
            beside
        );
        assert_eq!(
            resolve_in(Some(tmp.path().to_path_buf()), Some(beside), Some(&cwd)).expect("explicit"),
            tmp.path()
        );
    }
}
