//! `HF_HUB_OFFLINE=1`: the MNIST parquet files come only from hf-hub's cache under
//! `HF_HOME`. (Its own test binary: it sets environment variables.)
#![cfg(feature = "hub")]

mod common;

use std::fs;

use wae_data::hub::{HUB_TEST_FILE, HUB_TRAIN_FILE, download_parquet};

#[test]
fn offline_reads_the_cache_under_hf_home_and_says_what_is_missing() {
    let home = tempfile::tempdir().unwrap();
    // SAFETY: this test binary has this one test, so no other thread reads the environment.
    unsafe {
        std::env::set_var("HF_HOME", home.path());
        std::env::remove_var("HF_HUB_CACHE");
        std::env::set_var("HF_HUB_OFFLINE", "1");
    }
    let err = download_parquet().unwrap_err().to_string();
    assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
    assert!(err.contains(&home.path().display().to_string()), "{err}");

    // hf-hub's cache layout: refs/main names the snapshot that holds the files.
    let repo = home.path().join("hub").join("datasets--ylecun--mnist");
    let rev = "0123456789abcdef0123456789abcdef01234567";
    fs::create_dir_all(repo.join("refs")).unwrap();
    fs::write(repo.join("refs").join("main"), rev).unwrap();
    for file in [HUB_TRAIN_FILE, HUB_TEST_FILE] {
        let path = repo.join("snapshots").join(rev).join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"cached").unwrap();
    }
    let (train, test) = download_parquet().unwrap();
    assert!(train.ends_with(HUB_TRAIN_FILE), "{}", train.display());
    assert_eq!(fs::read(&test).unwrap(), b"cached");

    // An own Hub image dataset from the same cache, through the image cache.
    let repo = home.path().join("hub").join("datasets--user--faces");
    fs::create_dir_all(repo.join("refs")).unwrap();
    fs::write(repo.join("refs").join("main"), rev).unwrap();
    let file = "data/train-00000-of-00001.parquet";
    let path = repo.join("snapshots").join(rev).join(file);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    common::parquet::write_parquet(
        &path,
        &[
            (common::parquet::png(8, 0), 1),
            (common::parquet::png(8, 9), 2),
        ],
    );
    let options = wae_data::images::ImageOptions {
        size: 8,
        channels: 1,
        skip_bad: false,
    };
    let loaded = wae_data::images::load_hub(
        "user/faces",
        &[file.to_string()],
        &[],
        "image",
        &wae_data::images::TestSplit::None,
        &options,
        Some(&home.path().join("wae-cache")),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(loaded.train.labels(), &[1, 2]);
    assert_eq!(loaded.train.image(1).unwrap()[0], 9);
    let err = wae_data::images::load_hub(
        "user/faces",
        &["data/missing.parquet".to_string()],
        &[],
        "image",
        &wae_data::images::TestSplit::None,
        &options,
        Some(&home.path().join("wae-cache")),
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("data/missing.parquet") && err.contains("HF_HUB_OFFLINE"),
        "{err}"
    );
}
