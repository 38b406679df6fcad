//! Test support: the real MNIST directory the workspace's tests read.
//!
//! The product finds MNIST only where it is told or in `data/mnist` under the current
//! directory ([`MnistSource::resolve`](crate::MnistSource::resolve)); tests run in their
//! crate's folder, so they pass the directory explicitly, taken from here:
//! `WAE_DATA_DIR` if set, else [`TEST_MNIST_DIR_ENV`]. The workspace's
//! `.cargo/config.toml` sets the latter for every cargo command to CI's layout (a data
//! folder beside the checkout); nothing but tests reads it.
//!
//! ```no_run
//! use wae_data::{Mnist, MnistSource};
//! let mnist = Mnist::load(&MnistSource::locate(Some(wae_data::testing::mnist_dir()))?)?;
//! # Ok::<(), wae_data::Error>(())
//! ```

use std::ffi::OsString;
use std::path::PathBuf;

use crate::data_dir::DATA_DIR_ENV;
use crate::source::holds_mnist;

/// Environment variable naming the MNIST directory of the tests (read by tests only).
pub const TEST_MNIST_DIR_ENV: &str = "WAE_TEST_MNIST_DIR";

/// The MNIST directory for tests: `WAE_DATA_DIR` if set, else `WAE_TEST_MNIST_DIR`.
///
/// # Panics
///
/// When neither is set, or the one chosen holds no MNIST file; the message says how to
/// set them. Tests that need real MNIST fail rather than skip: CI has the data.
pub fn mnist_dir() -> PathBuf {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    choose(var(DATA_DIR_ENV), var(TEST_MNIST_DIR_ENV)).unwrap_or_else(|msg| panic!("{msg}"))
}

/// [`mnist_dir`] with the two variables' values passed in.
fn choose(data_dir: Option<OsString>, test_dir: Option<OsString>) -> Result<PathBuf, String> {
    let how = format!(
        "Tests that need the real MNIST read the directory from {DATA_DIR_ENV}, else from \
         {TEST_MNIST_DIR_ENV} (set by the workspace's .cargo/config.toml to CI's \
         layout, a folder beside the checkout). Run `cargo xtask download mnist` and \
         set {DATA_DIR_ENV}=$PWD/data/mnist, or point either variable at a directory \
         holding the four MNIST files (see data/README.md)."
    );
    let (name, dir) = match (data_dir, test_dir) {
        (Some(d), _) => (DATA_DIR_ENV, PathBuf::from(d)),
        (None, Some(d)) => (TEST_MNIST_DIR_ENV, PathBuf::from(d)),
        (None, None) => {
            return Err(format!(
                "this test needs the real MNIST, and neither {DATA_DIR_ENV} nor \
                 {TEST_MNIST_DIR_ENV} is set. {how}"
            ));
        }
    };
    if holds_mnist(&dir) {
        Ok(dir)
    } else {
        Err(format!(
            "this test needs the real MNIST, and {name} = {} holds no MNIST file. {how}",
            dir.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wae_data_dir_comes_first_and_a_dir_without_mnist_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mnist = tmp.path().join("mnist");
        std::fs::create_dir_all(&mnist).expect("mkdir");
        std::fs::write(mnist.join("train-labels-idx1-ubyte.gz"), b"x").expect("write");
        let empty = tmp.path().to_path_buf();

        assert_eq!(choose(None, Some(mnist.clone().into())), Ok(mnist.clone()));
        assert_eq!(
            choose(Some(mnist.clone().into()), Some(empty.clone().into())),
            Ok(mnist.clone())
        );
        let msg = choose(Some(empty.clone().into()), Some(mnist.into())).unwrap_err();
        assert!(
            msg.contains("WAE_DATA_DIR =") && msg.contains(&empty.display().to_string()),
            "{msg}"
        );
        let msg = choose(None, None).unwrap_err();
        assert!(
            msg.contains("neither WAE_DATA_DIR nor WAE_TEST_MNIST_DIR")
                && msg.contains("cargo xtask download mnist"),
            "{msg}"
        );
    }
}
