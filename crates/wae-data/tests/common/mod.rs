//! Helpers shared by the integration tests: writing small IDX fixtures.
#![allow(dead_code)]

#[cfg(feature = "hub")]
pub mod parquet;

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use wae_data::idx::{encode_images, encode_labels};

/// Writes `bytes` to `dir/name`, gzip-compressed when `name` ends in `.gz`.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    if name.ends_with(".gz") {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(bytes).expect("gzip in memory");
        std::fs::write(&path, enc.finish().expect("gzip finish")).expect("write fixture");
    } else {
        std::fs::write(&path, bytes).expect("write fixture");
    }
    path
}

/// `n` 28x28 images whose pixel `p` of image `i` is `(i * 7 + p) % 256`.
pub fn images(n: u32) -> Vec<u8> {
    let pixels: Vec<u8> = (0..n as usize * 784)
        .map(|k| ((k / 784) * 7 + k % 784) as u8)
        .collect();
    encode_images(n, 28, 28, &pixels)
}

/// Labels `0, 1, ..., n-1` modulo 10.
pub fn labels(n: usize) -> Vec<u8> {
    encode_labels(&(0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>())
}

/// A directory with all four files valid (train: 3 examples, test: 2), gzip or raw.
pub fn valid_dir(gz: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let ext = if gz { ".gz" } else { "" };
    write_file(
        dir.path(),
        &format!("train-images-idx3-ubyte{ext}"),
        &images(3),
    );
    write_file(
        dir.path(),
        &format!("train-labels-idx1-ubyte{ext}"),
        &labels(3),
    );
    write_file(
        dir.path(),
        &format!("t10k-images-idx3-ubyte{ext}"),
        &images(2),
    );
    write_file(
        dir.path(),
        &format!("t10k-labels-idx1-ubyte{ext}"),
        &labels(2),
    );
    dir
}
