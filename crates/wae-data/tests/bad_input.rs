//! Every kind of bad input gives an error that names the file and the fix.

mod common;

use std::path::Path;

use common::{images, labels, valid_dir, write_file};
use wae_data::idx::{encode_images, encode_labels};
use wae_data::{Error, Mnist, MnistSource, Verify};

/// Loads `dir` without checksums (fixtures are not the canonical files).
fn load_unverified(dir: &Path) -> Result<Mnist, Error> {
    Mnist::load(&MnistSource::from_dir(dir).with_verify(Verify::Skip))
}

fn message(result: Result<Mnist, Error>) -> String {
    match result {
        Ok(m) => panic!(
            "expected an error, loaded {} + {} examples",
            m.train.len(),
            m.test.len()
        ),
        Err(e) => e.to_string(),
    }
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for part in parts {
        assert!(msg.contains(part), "error message lacks `{part}`:\n{msg}");
    }
}

#[test]
fn valid_fixture_loads_gzip_and_raw_alike() {
    for gz in [true, false] {
        let dir = valid_dir(gz);
        let mnist = load_unverified(dir.path()).expect("valid fixture");
        assert_eq!((mnist.train.len(), mnist.test.len()), (3, 2));
        assert_eq!(mnist.train.labels(), &[0, 1, 2]);
        assert_eq!(mnist.train.image_shape(), (1, 28, 28));
        // Pixel p of image i is (i * 7 + p) % 256.
        let second = mnist.train.image(1).expect("index 1");
        assert_eq!(&second[..3], &[7, 8, 9]);
    }
}

#[test]
fn loading_never_writes_into_the_data_directory() {
    let dir = valid_dir(true);
    let cache = tempfile::tempdir().expect("tempdir");
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    // Verification fails (fixtures are not MNIST) but must record its verdict in the cache dir only.
    let err = Mnist::load(&MnistSource::from_dir(dir.path()).with_cache_dir(cache.path()));
    assert!(matches!(err, Err(Error::ChecksumMismatch { .. })));
    let mut after: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    let mut before = before;
    before.sort();
    after.sort();
    assert_eq!(before, after);
    assert!(cache.path().join(wae_data::CACHE_FILE).is_file());
}

#[test]
fn missing_directory_lists_where_it_looked_and_how_to_download() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("no-such-dir");
    let err = MnistSource::resolve(Some(missing.clone())).expect_err("missing dir");
    assert!(matches!(err, Error::DataDirNotFound { .. }));
    let msg = err.to_string();
    assert_mentions(
        &msg,
        &[
            &missing.display().to_string(),
            "--data-dir",
            "cargo xtask download mnist",
            "WAE_DATA_DIR",
        ],
    );
}

#[test]
fn missing_file_names_the_file_and_the_directory() {
    let dir = valid_dir(true);
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).expect("rm");
    let msg = message(load_unverified(dir.path()));
    assert_mentions(
        &msg,
        &[
            "t10k-labels-idx1-ubyte",
            &dir.path().display().to_string(),
            "cargo xtask download mnist",
        ],
    );
}

#[test]
fn wrong_magic_names_the_file() {
    let dir = valid_dir(true);
    // A label file where the image file should be.
    write_file(dir.path(), "train-images-idx3-ubyte.gz", &labels(3));
    let msg = message(load_unverified(dir.path()));
    assert_mentions(
        &msg,
        &[
            "train-images-idx3-ubyte.gz",
            "wrong magic number 0x00000801",
            "expected 0x00000803",
            "download",
        ],
    );
}

#[test]
fn wrong_dimensions_are_reported() {
    let dir = valid_dir(false);
    write_file(
        dir.path(),
        "t10k-images-idx3-ubyte",
        &encode_images(2, 32, 32, &vec![0; 2 * 32 * 32]),
    );
    let err = load_unverified(dir.path()).expect_err("32x32 images");
    assert!(matches!(err, Error::BadDimensions { .. }), "{err:?}");
    assert_mentions(
        &err.to_string(),
        &["t10k-images-idx3-ubyte", "32x32", "expected 28x28"],
    );
}

#[test]
fn truncated_data_is_reported() {
    let dir = valid_dir(true);
    let mut bytes = images(3);
    bytes.truncate(bytes.len() - 100);
    write_file(dir.path(), "train-images-idx3-ubyte.gz", &bytes);
    let err = load_unverified(dir.path()).expect_err("truncated");
    assert!(matches!(err, Error::Truncated { .. }), "{err:?}");
    assert_mentions(
        &err.to_string(),
        &[
            "train-images-idx3-ubyte.gz",
            "truncated",
            "2368 bytes",
            "2268",
            "download",
        ],
    );
}

#[test]
fn truncated_header_is_reported() {
    let dir = valid_dir(false);
    write_file(
        dir.path(),
        "train-labels-idx1-ubyte",
        &encode_labels(&[1, 2, 3])[..6],
    );
    let err = load_unverified(dir.path()).expect_err("truncated header");
    assert!(matches!(err, Error::Truncated { .. }), "{err:?}");
    assert_mentions(&err.to_string(), &["train-labels-idx1-ubyte", "truncated"]);
}

#[test]
fn trailing_bytes_are_reported() {
    let dir = valid_dir(false);
    let mut bytes = labels(3);
    bytes.extend_from_slice(&[0, 0]);
    write_file(dir.path(), "train-labels-idx1-ubyte", &bytes);
    let msg = message(load_unverified(dir.path()));
    assert_mentions(&msg, &["train-labels-idx1-ubyte", "2 unexpected bytes"]);
}

#[test]
fn corrupt_gzip_is_reported() {
    let dir = valid_dir(true);
    // Not gzip at all.
    std::fs::write(dir.path().join("train-labels-idx1-ubyte.gz"), labels(3)).expect("write");
    let msg = message(load_unverified(dir.path()));
    assert_mentions(&msg, &["train-labels-idx1-ubyte.gz", "corrupt gzip"]);

    // A gzip stream cut in half.
    let path = dir.path().join("train-images-idx3-ubyte.gz");
    let gz = std::fs::read(&path).expect("read");
    std::fs::write(&path, &gz[..gz.len() / 2]).expect("write");
    let err = load_unverified(dir.path()).expect_err("cut gzip");
    assert!(matches!(err, Error::Gzip { .. }), "{err:?}");
    assert_mentions(
        &err.to_string(),
        &["train-images-idx3-ubyte.gz", "corrupt gzip"],
    );
}

#[test]
fn count_mismatch_names_both_files() {
    let dir = valid_dir(true);
    write_file(dir.path(), "t10k-labels-idx1-ubyte.gz", &labels(5));
    let err = load_unverified(dir.path()).expect_err("2 images, 5 labels");
    assert!(
        matches!(
            err,
            Error::CountMismatch {
                images: 2,
                labels: 5,
                ..
            }
        ),
        "{err:?}"
    );
    assert_mentions(
        &err.to_string(),
        &[
            "t10k-images-idx3-ubyte.gz",
            "2 images",
            "t10k-labels-idx1-ubyte.gz",
            "5 labels",
        ],
    );
}

#[test]
fn label_out_of_range_is_reported() {
    let dir = valid_dir(true);
    write_file(
        dir.path(),
        "train-labels-idx1-ubyte.gz",
        &encode_labels(&[1, 10, 2]),
    );
    let msg = message(load_unverified(dir.path()));
    assert_mentions(
        &msg,
        &["train-labels-idx1-ubyte.gz", "label 10 of example 1"],
    );
}

#[test]
fn checksum_mismatch_names_the_file_and_both_hashes() {
    let dir = valid_dir(true);
    let err = Mnist::load(&MnistSource::from_dir(dir.path()).with_verify(Verify::Always))
        .expect_err("fixtures are not canonical MNIST");
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err:?}");
    let actual = wae_data::md5_hex(&images(3));
    assert_mentions(
        &err.to_string(),
        &[
            "train-images-idx3-ubyte.gz",
            "checksum mismatch",
            "6bbc9ace898e44ae57da46a324031adb",
            &actual,
            "download",
        ],
    );
}
