//! Hugging Face Hub access served from a cache directory the test builds, offline.

use std::fs;

#[test]
fn offline_listing_and_files_come_from_the_cached_snapshot() {
    let home = tempfile::tempdir().unwrap();
    // SAFETY of env mutation: this is the only test in this binary.
    unsafe {
        std::env::set_var("HF_HOME", home.path());
        std::env::set_var("HF_HUB_OFFLINE", "1");
    }
    // hf-hub's layout: hub/datasets--owner--name/{refs/main, snapshots/<commit>/...}.
    let repo_dir = home.path().join("hub").join("datasets--someone--faces");
    fs::create_dir_all(repo_dir.join("refs")).unwrap();
    fs::write(repo_dir.join("refs").join("main"), "c0ffee\n").unwrap();
    let snapshot = repo_dir.join("snapshots").join("c0ffee");
    let files = [
        "README.md",
        "img_align+identity+attr/test-00000-of-00001.parquet",
        "img_align+identity+attr/train-00000-of-00002.parquet",
        "img_align+identity+attr/train-00001-of-00002.parquet",
    ];
    for f in files {
        let path = snapshot.join(f);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, f.as_bytes()).unwrap();
    }

    let listed = wae_download::hub_dataset_files("someone/faces").unwrap();
    assert_eq!(listed, files);
    let path = wae_download::hub_file("someone/faces", files[2], false).unwrap();
    assert_eq!(fs::read_to_string(path).unwrap(), files[2]);

    let err = wae_download::hub_dataset_files("someone/else").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("someone/else"), "{msg}");
    assert!(msg.contains("HF_HUB_OFFLINE"), "{msg}");
    assert!(
        msg.contains("huggingface-cli download --repo-type dataset someone/else`"),
        "{msg}"
    );
}
