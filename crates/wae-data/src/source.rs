//! Where the MNIST files are: directory lookup and loading options.

use std::path::{Path, PathBuf};

use crate::checksum::{Verify, default_cache_dir};
pub use crate::data_dir::DATA_DIR_ENV;
use crate::data_dir::{build_workspace, default_dir, search_places};
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
    /// Order:
    /// 1. `explicit` (what `--data-dir` passes): used if it is a directory, an error if not;
    /// 2. the environment variable `WAE_DATA_DIR`, if set: same rule;
    /// 3. `data/mnist`, then `../shared/data/mnist`, relative to the current directory;
    /// 4. the same two relative to this workspace's root (where the crate was built from),
    ///    so that tests find the data whatever directory they run in.
    ///
    /// In steps 3 and 4 a directory qualifies when it holds at least one of the four
    /// MNIST files (gzip or raw). The error lists every place tried and how to get the data.
    pub fn resolve(explicit: Option<PathBuf>) -> Result<PathBuf> {
        let env = std::env::var_os(DATA_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let cwd = std::env::current_dir().ok();
        resolve_in(explicit, env, cwd.as_deref(), &build_workspace())
    }
}

/// [`MnistSource::resolve`] with its inputs made explicit (for tests).
pub(crate) fn resolve_in(
    explicit: Option<PathBuf>,
    env: Option<PathBuf>,
    cwd: Option<&Path>,
    workspace: &Path,
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
    let mnist = default_dir("mnist");
    let shared = Path::new("..").join("shared").join(&mnist);
    let candidates = search_places(&[mnist, shared], cwd, workspace);
    let mut searched = Vec::new();
    let mut seen = Vec::new();
    for dir in candidates {
        let canonical = dir.canonicalize().ok();
        if let Some(c) = &canonical {
            if seen.contains(c) {
                continue;
            }
            seen.push(c.clone());
        }
        if !dir.is_dir() {
            searched.push(format!("{} (does not exist)", shown(&dir)));
        } else if !holds_mnist(&dir) {
            searched.push(format!("{} (exists but holds no MNIST file)", shown(&dir)));
        } else {
            return Ok(canonical.unwrap_or(dir));
        }
    }
    searched.push(format!(
        "(the environment variable {} is not set)",
        crate::source::DATA_DIR_ENV
    ));
    Err(Error::DataDirNotFound { searched })
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
            resolve_in(Some(root.to_path_buf()), None, Some(root), root).expect("explicit"),
            root
        );
        let err = resolve_in(None, Some(root.join("nope")), Some(root), root).expect_err("env");
        let msg = err.to_string();
        assert!(
            msg.contains("WAE_DATA_DIR") && msg.contains("nope"),
            "{msg}"
        );
    }

    #[test]
    fn defaults_are_tried_in_order_and_all_listed_on_failure() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cwd = tmp.path().join("project");
        let workspace = tmp.path().join("ws/main");
        std::fs::create_dir_all(cwd.join("data/mnist")).expect("mkdir"); // empty: skipped
        std::fs::create_dir_all(&workspace).expect("mkdir");
        let err = resolve_in(None, None, Some(&cwd), &workspace).expect_err("nothing there");
        let msg = err.to_string();
        let places = [
            cwd.join("data/mnist"),
            cwd.join("../shared/data/mnist"),
            workspace.join("data/mnist"),
            workspace.join("../shared/data/mnist"),
        ];
        let mut last = 0;
        for place in &places {
            let at = msg
                .find(&place.display().to_string())
                .unwrap_or_else(|| panic!("{} not listed:\n{msg}", place.display()));
            assert!(at >= last, "places out of order:\n{msg}");
            last = at;
        }
        assert!(msg.contains("holds no MNIST file"), "{msg}");
        assert!(msg.contains("cargo xtask download mnist"), "{msg}");

        // A shared directory beside the workspace is found once it holds a file.
        let shared = workspace.join("../shared/data/mnist");
        std::fs::create_dir_all(&shared).expect("mkdir");
        std::fs::write(shared.join("t10k-labels-idx1-ubyte.gz"), b"x").expect("write");
        let found = resolve_in(None, None, Some(&cwd), &workspace).expect("found");
        assert_eq!(found, shared.canonicalize().expect("canonical"));

        // ... but `data/mnist` under the current directory comes first.
        std::fs::write(cwd.join("data/mnist/train-images-idx3-ubyte"), b"x").expect("write");
        let found = resolve_in(None, None, Some(&cwd), &workspace).expect("found");
        assert_eq!(
            found,
            cwd.join("data/mnist").canonicalize().expect("canonical")
        );
    }
}
