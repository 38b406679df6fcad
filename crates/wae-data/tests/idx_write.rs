//! Writing MNIST back as IDX files (what `cargo xtask download mnist` does with the hub's
//! parquet copy) and reading it with the normal loader.

use wae_data::{Dataset, Mnist, MnistSource, Verify};

/// A small MNIST-shaped set: image `i` has pixel `p` = `(i * 13 + p) % 256`, label `i % 10`.
fn toy(n: usize) -> Dataset {
    let images = (0..n * 784)
        .map(|k| ((k / 784) * 13 + k % 784) as u8)
        .collect();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    Dataset::new(images, labels, 1, 28, 28).expect("toy dataset")
}

#[test]
fn written_idx_files_read_back_equal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnist = Mnist {
        train: toy(7),
        test: toy(3),
    };
    let written = mnist.write_idx(dir.path()).expect("write");
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz"
        ]
    );
    // Only the four files: no temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
    let source = MnistSource::from_dir(dir.path()).with_verify(Verify::Skip);
    let back = Mnist::load(&source).expect("load");
    assert_eq!(back, mnist);
    // Not the canonical files, so the checksum check refuses them.
    let checked = MnistSource::from_dir(dir.path()).with_verify(Verify::Always);
    let err = Mnist::load(&checked).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
}

#[test]
fn refuses_images_that_are_not_one_channel_28x28() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rgb = Dataset::new(vec![0; 2 * 3 * 28 * 28], vec![0, 1], 3, 28, 28).unwrap();
    let mnist = Mnist {
        train: rgb,
        test: toy(1),
    };
    let err = mnist.write_idx(dir.path()).unwrap_err().to_string();
    assert!(err.contains("1x28x28"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// The real MNIST written back is byte for byte the canonical files: the loader's MD5
/// check (against the published checksums, no cache) passes.
#[test]
fn real_mnist_written_back_has_the_canonical_md5s() {
    let source = match MnistSource::locate(Some(wae_data::testing::mnist_dir())) {
        Ok(s) => s.with_verify(Verify::Skip),
        Err(e) => panic!("this test needs the real MNIST files:\n{e}"),
    };
    let mnist = Mnist::load(&source).expect("load real MNIST");
    let dir = tempfile::tempdir().expect("tempdir");
    mnist.write_idx(dir.path()).expect("write");
    let checked = MnistSource::from_dir(dir.path()).with_verify(Verify::Always);
    let back = Mnist::load(&checked).expect("canonical MD5s");
    assert_eq!(back, mnist);
}
