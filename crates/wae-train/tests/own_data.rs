//! Training on your own data (issue 18): the MNIST test set written as 10,000 PNG files
//! and as a `.npy` array gives the same pixels in the same order as the IDX files, and
//! training from the folder and from the array gives the same losses, step for step.
//!
//! One test in this binary: it sets `WAE_CACHE_DIR` for the trainer's image cache.

use std::fs;
use std::path::Path;

use candle_core::Device;
use wae_train::{DatasetKind, TrainOptions, load_user_data, preset};

fn npy_u8(path: &Path, shape: [usize; 3], data: &[u8]) {
    let mut dict = format!(
        "{{'descr': '|u1', 'fortran_order': False, 'shape': ({}, {}, {}), }}",
        shape[0], shape[1], shape[2]
    );
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(data);
    fs::write(path, out).unwrap();
}

#[test]
fn mnist_as_png_files_trains_bit_identically_to_the_idx_pixels() {
    let tmp = tempfile::tempdir().unwrap();
    // SAFETY: the only test of this binary; no other thread reads the environment.
    unsafe { std::env::set_var("WAE_CACHE_DIR", tmp.path().join("cache")) };
    let source = wae_data::MnistSource::locate(Some(wae_data::testing::mnist_dir()))
        .expect("MNIST (see data/README.md)");
    let idx = wae_data::Mnist::load_split(&source, wae_data::Split::Standard)
        .unwrap()
        .test;
    assert_eq!(idx.len(), 10_000);

    // 10,000 PNG files, named so that sorting keeps the IDX order.
    let folder = tmp.path().join("mnist-png");
    fs::create_dir_all(&folder).unwrap();
    for i in 0..idx.len() {
        let pixels = idx.image(i).unwrap().to_vec();
        image::GrayImage::from_raw(28, 28, pixels)
            .unwrap()
            .save(folder.join(format!("{i:05}.png")))
            .unwrap();
    }
    let array = tmp.path().join("mnist.npy");
    npy_u8(&array, [10_000, 28, 28], idx.images());

    let mut cfg = preset("mnist-wae-mmd-smoke").unwrap();
    cfg.data.dataset = DatasetKind::Images;
    cfg.data.path = Some(folder.clone());
    cfg.data.size = Some(28);
    cfg.data.channels = Some(1);
    cfg.data.test_fraction = Some(0.0);
    cfg.data.train_examples = None;
    cfg.validate().unwrap();

    // Same pixels, same order, and the same shuffled batches.
    let loaded = load_user_data(&cfg, None).unwrap();
    assert!(loaded.built && loaded.train.is_mapped());
    assert_eq!(loaded.train.len(), 10_000);
    assert!(
        loaded.train.images() == idx.images(),
        "PNG pixels differ from IDX"
    );
    let batches = |d: &wae_data::Dataset| -> Vec<Vec<f32>> {
        d.epoch(100, 3, 1, &Device::Cpu)
            .unwrap()
            .take(5)
            .map(|b| b.unwrap().images.flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    };
    assert_eq!(batches(&loaded.train), batches(&idx));

    // Training from the folder and from the array: identical losses at every step.
    cfg.data.test_fraction = Some(0.1);
    cfg.training.max_steps = Some(6);
    cfg.training.log_every_steps = 1;
    let mut from_array = cfg.clone();
    from_array.data.dataset = DatasetKind::Arrays;
    from_array.data.path = Some(array);
    let run = |c: &wae_train::TrainConfig, name: &str| {
        let mut opts = TrainOptions::new(tmp.path().join(name));
        opts.progress = false;
        let summary = wae_train::train(c, &opts).unwrap();
        let metrics = fs::read_to_string(tmp.path().join(name).join("metrics.jsonl")).unwrap();
        let losses: Vec<String> = metrics
            .lines()
            .filter(|l| l.contains("\"step\""))
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                format!(
                    "{} {} {} {}",
                    v["step"], v["total"], v["reconstruction"], v["penalty"]
                )
            })
            .collect();
        (summary.last_losses, losses)
    };
    let (folder_last, folder_steps) = run(&cfg, "folder");
    let (array_last, array_steps) = run(&from_array, "array");
    assert_eq!(folder_steps.len(), 6, "{folder_steps:?}");
    assert_eq!(folder_steps, array_steps);
    assert_eq!(folder_last, array_last);
}
