//! Where data sets live: the one data-directory policy of the workspace.
//!
//! - A data set's folder is `data/<name>` ([`default_dir`]), relative to the current
//!   directory: what `cargo xtask download` fills and the only place a loader looks when
//!   it is given nothing. No loader searches beside the checkout or in the folder the
//!   crate was built in: a command finds the same data wherever the binary came from.
//! - A path a user gives may name the file itself or a folder holding it
//!   ([`file_or_folder`]): the CelebA cache and the dSprites npz.
//! - MNIST also takes `--data-dir`, then [`DATA_DIR_ENV`], before `data/mnist`
//!   ([`crate::MnistSource::resolve`]).
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

#[cfg(test)]
mod tests {
    use super::*;

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
