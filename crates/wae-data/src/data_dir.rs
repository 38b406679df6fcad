//! Where data sets live: the one data-directory policy of the workspace.
//!
//! - A data set's folder is `data/<name>` ([`default_dir`]): what `cargo xtask download`
//!   fills and where the loaders look first.
//! - A path a user gives may name the file itself or a folder holding it
//!   ([`file_or_folder`]): the CelebA cache and the dSprites npz.
//! - When nothing is given, a loader tries each of its relative places under the current
//!   directory, then under the workspace the crate was built in (`search_places`).
//!   MNIST first takes `--data-dir`, then [`DATA_DIR_ENV`], and also tries
//!   `../shared/data/mnist` ([`crate::MnistSource::resolve`]).
//!
//! Data directories are read-only to every crate: caches go elsewhere.
//!
//! ```
//! use std::path::Path;
//! assert_eq!(wae_data::data_dir::default_dir("mnist"), Path::new("data/mnist"));
//! ```

use std::path::{Path, PathBuf};

/// Environment variable naming the MNIST directory (used when no directory is given).
pub const DATA_DIR_ENV: &str = "WAE_DATA_DIR";

/// The folder every data set's default folder lies in, relative to where a command runs.
pub const DATA_ROOT: &str = "data";

/// The default folder of data set `name` (`mnist`, `celeba`, `dsprites`, `weights`):
/// `data/<name>`, relative to the current directory.
pub fn default_dir(name: &str) -> PathBuf {
    Path::new(DATA_ROOT).join(name)
}

/// `path` itself, or `path/<file_name>` when `path` is a directory: a data file may be
/// given directly or by its folder.
pub fn file_or_folder(path: &Path, file_name: &str) -> PathBuf {
    if path.is_dir() {
        path.join(file_name)
    } else {
        path.to_path_buf()
    }
}

/// Where a loader looks when nothing is given: each of `relative` under `cwd` (as it is
/// when `cwd` is `None`), then each under `workspace`.
pub(crate) fn search_places(
    relative: &[PathBuf],
    cwd: Option<&Path>,
    workspace: &Path,
) -> Vec<PathBuf> {
    let under_cwd = relative.iter().map(|rel| match cwd {
        Some(c) => c.join(rel),
        None => rel.clone(),
    });
    let under_workspace = relative.iter().map(|rel| workspace.join(rel));
    under_cwd.chain(under_workspace).collect()
}

/// The root of the workspace this crate was built in (the second place searched).
pub(crate) fn build_workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_cwd_first_then_workspace() {
        let rel = [default_dir("mnist"), PathBuf::from("x")];
        let places = search_places(&rel, Some(Path::new("/c")), Path::new("/w"));
        let expected: Vec<PathBuf> = ["/c/data/mnist", "/c/x", "/w/data/mnist", "/w/x"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(places, expected);
        assert_eq!(
            search_places(&rel[..1], None, Path::new("/w")),
            [PathBuf::from("data/mnist"), PathBuf::from("/w/data/mnist")]
        );
    }

    #[test]
    fn a_folder_stands_for_the_file_in_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            file_or_folder(tmp.path(), "f.bin"),
            tmp.path().join("f.bin")
        );
        let file = tmp.path().join("g.bin");
        assert_eq!(file_or_folder(&file, "f.bin"), file);
    }
}
