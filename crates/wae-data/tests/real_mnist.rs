//! Tests on the real MNIST files, in the directory `wae_data::testing::mnist_dir` names
//! (`WAE_DATA_DIR`, else `WAE_TEST_MNIST_DIR` from `.cargo/config.toml`).
//!
//! They fail, saying how to set it, when the data cannot be found: CI has it.

use std::sync::OnceLock;

use candle_core::{DType, Device};
use wae_data::{
    Error, Mnist, MnistSource, PAPER_SPLIT_SEED, Split, Verify, epoch_permutation,
    seeded_permutation,
};

/// Known MNIST facts (LeCun et al.; e.g. torchvision's MNIST gives the same).
const TRAIN_FIRST_LABELS: [u8; 10] = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4];
const TEST_FIRST_LABELS: [u8; 10] = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9];
const TRAIN_CLASS_COUNTS: [usize; 10] =
    [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
const TEST_CLASS_COUNTS: [usize; 10] = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

/// A cache directory under the target dir, so checksums are computed once per checkout.
fn cache_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("wae-data-checksum-cache")
}

fn source() -> MnistSource {
    match MnistSource::locate(Some(wae_data::testing::mnist_dir())) {
        Ok(s) => s.with_cache_dir(cache_dir()),
        Err(e) => panic!("these tests need the real MNIST files:\n{e}"),
    }
}

fn mnist() -> &'static Mnist {
    static MNIST: OnceLock<Mnist> = OnceLock::new();
    MNIST.get_or_init(|| match Mnist::load(&source()) {
        Ok(m) => m,
        Err(e) => panic!("loading the real MNIST failed:\n{e}"),
    })
}

fn paper() -> &'static Mnist {
    static PAPER: OnceLock<Mnist> = OnceLock::new();
    PAPER.get_or_init(|| {
        mnist()
            .clone()
            .into_split(Split::Paper)
            .expect("paper split")
    })
}

#[test]
fn standard_split_counts_and_first_labels() {
    let m = mnist();
    assert_eq!(m.train.len(), 60_000);
    assert_eq!(m.test.len(), 10_000);
    assert_eq!(m.train.labels()[..10], TRAIN_FIRST_LABELS);
    assert_eq!(m.test.labels()[..10], TEST_FIRST_LABELS);
    assert_eq!(m.train.summary().class_counts, TRAIN_CLASS_COUNTS);
    assert_eq!(m.test.summary().class_counts, TEST_CLASS_COUNTS);
}

#[test]
fn pixel_range_and_mean() {
    let s = mnist().train.summary();
    assert_eq!((s.min_pixel, s.max_pixel), (0, 255));
    // The well-known MNIST train mean 0.1307 (33.318 / 255).
    assert!(
        (s.mean_pixel - 0.1307).abs() < 1e-4,
        "mean pixel {}",
        s.mean_pixel
    );
    let shown = mnist().to_string();
    assert!(shown.contains("60000 images of 1x28x28"), "{shown}");
    assert!(shown.contains("1:6742"), "{shown}");
}

#[test]
fn batch_shape_dtype_and_values() -> Result<(), Error> {
    let m = mnist();
    let indices: Vec<usize> = (0..64).map(|i| i * 937).collect();
    let batch = m.train.batch(&indices, &Device::Cpu)?;
    assert_eq!(batch.dims(), &[64, 1, 28, 28]);
    assert_eq!(batch.dtype(), DType::F32);
    let values = batch.flatten_all()?.to_vec1::<f32>()?;
    assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(values.contains(&1.0), "some pixel of 64 digits is 255");
    // Row 5 of the batch is image 5 * 937, pixel by pixel.
    let raw = m.train.image(5 * 937)?;
    for (v, &p) in values[5 * 784..6 * 784].iter().zip(raw) {
        assert_eq!(*v, f32::from(p) / 255.0);
    }
    let labels = m.train.batch_labels(&indices, &Device::Cpu)?;
    assert_eq!(labels.dims(), &[64]);
    assert_eq!(labels.dtype(), DType::U32);
    assert_eq!(
        labels.to_vec1::<u32>()?[1],
        u32::from(m.train.labels()[937])
    );
    Ok(())
}

#[test]
fn paper_split_counts_and_membership() {
    let (m, p) = (mnist(), paper());
    assert_eq!((p.train.len(), p.test.len()), (60_000, 10_000));
    // Same 70k examples: per-class counts of train + test match the standard split's.
    let merged: Vec<usize> = (0..10)
        .map(|k| p.train.summary().class_counts[k] + p.test.summary().class_counts[k])
        .collect();
    let standard: Vec<usize> = (0..10)
        .map(|k| TRAIN_CLASS_COUNTS[k] + TEST_CLASS_COUNTS[k])
        .collect();
    assert_eq!(merged, standard);
    // The paper test set is the last 10k of the seed-123 permutation of train ++ test.
    let order = seeded_permutation(70_000, PAPER_SPLIT_SEED);
    for (row, &source) in order[60_000..].iter().enumerate().step_by(997) {
        let expected = if source < 60_000 {
            m.train.image(source)
        } else {
            m.test.image(source - 60_000)
        };
        assert_eq!(p.test.image(row).expect("row"), expected.expect("source"));
    }
    // About 1/7 of the paper test set comes from the standard test set.
    let from_test = order[60_000..].iter().filter(|&&i| i >= 60_000).count();
    assert!((1200..1700).contains(&from_test), "{from_test}");
}

#[test]
fn paper_split_is_deterministic_and_seed_dependent() {
    let again = mnist()
        .clone()
        .into_split(Split::Paper)
        .expect("paper split");
    assert_eq!(again.test.labels(), paper().test.labels());
    assert_eq!(again.test.images(), paper().test.images());
    assert_ne!(
        seeded_permutation(70_000, 123),
        seeded_permutation(70_000, 124)
    );
    assert_ne!(
        epoch_permutation(60_000, 1, 0),
        epoch_permutation(60_000, 1, 1)
    );
}

#[test]
fn epoch_over_the_real_train_set() -> Result<(), Error> {
    let m = mnist();
    let mut epoch = m.train.epoch(100, 7, 2, &Device::Cpu)?;
    assert_eq!(epoch.num_batches(), 600);
    let first = epoch.next().expect("a batch")?;
    assert_eq!(first.images.dims(), &[100, 1, 28, 28]);
    assert_eq!(first.labels.dims(), &[100]);
    // Resuming at batch 599 gives the same last batch as iterating there.
    let last = epoch.nth(598).expect("batch 599")?;
    let resumed = wae_data::EpochIter::new_at(&m.train, 100, 7, 2, 599, &Device::Cpu)?
        .next()
        .expect("batch 599")?;
    assert_eq!(last.batch_index, 599);
    assert_eq!(last.indices, resumed.indices);
    Ok(())
}

#[test]
fn checksums_pass_and_the_verdict_is_cached() {
    // A full verification without cache passes on the canonical files.
    let dir = source().dir;
    Mnist::load(&MnistSource::from_dir(&dir).with_verify(Verify::Always)).expect("canonical MD5s");

    // With a fresh cache dir the four MD5s are recorded there, keyed by absolute path.
    let cache = tempfile::tempdir().expect("tempdir");
    Mnist::load(&MnistSource::from_dir(&dir).with_cache_dir(cache.path())).expect("load");
    let file = cache.path().join(wae_data::CACHE_FILE);
    let json = std::fs::read_to_string(&file).expect("cache written");
    for (_, md5) in wae_data::MNIST_FILES {
        assert!(json.contains(md5), "{md5} missing from {json}");
    }

    // The next load trusts the cache: a poisoned entry for an unchanged file is used
    // as is (no re-hash), which shows up as a mismatch.
    std::fs::write(
        &file,
        json.replace(
            wae_data::MNIST_FILES[3].1,
            "00000000000000000000000000000000",
        ),
    )
    .expect("poison cache");
    let err = Mnist::load(&MnistSource::from_dir(&dir).with_cache_dir(cache.path()))
        .expect_err("poisoned cache verdict");
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("t10k-labels-idx1-ubyte"), "{err}");
}
