//! Own data: image folders and arrays through the cache, and every bad input the
//! loader must explain (issue 18).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use wae_data::images::{self, ImageOptions, LoadedImages, TestSplit};

fn grey_png(path: &Path, side: u32, value: impl Fn(u32, u32) -> u8) {
    let img = image::GrayImage::from_fn(side, side, |x, y| image::Luma([value(x, y)]));
    img.save(path).expect("write png");
}

fn rgb_png(path: &Path, w: u32, h: u32, value: impl Fn(u32, u32) -> [u8; 3]) {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb(value(x, y)));
    img.save(path).expect("write png");
}

fn opts(size: usize, channels: usize) -> ImageOptions {
    ImageOptions {
        size,
        channels,
        skip_bad: false,
    }
}

fn load(
    dir: &Path,
    cache: &Path,
    o: &ImageOptions,
    split: &TestSplit,
) -> wae_data::Result<LoadedImages> {
    images::load_folder(dir, None, split, o, Some(cache), &mut |_, _| {})
}

/// A folder of `n` 8x8 grey images, image i filled with value i.
fn numbered_folder(root: &Path, n: u32) -> PathBuf {
    let dir = root.join("imgs");
    fs::create_dir_all(&dir).unwrap();
    for i in 0..n {
        grey_png(&dir.join(format!("{i:03}.png")), 8, |_, _| i as u8);
    }
    dir
}

#[test]
fn folder_loads_in_sorted_order_and_the_split_keeps_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = numbered_folder(tmp.path(), 8);
    let cache = tmp.path().join("cache");
    let all = load(&dir, &cache, &opts(8, 1), &TestSplit::None).unwrap();
    assert!(all.built && all.train.is_mapped());
    assert_eq!(all.train.len(), 8);
    assert!(all.test.is_empty());
    for i in 0..8 {
        assert!(all.train.image(i).unwrap().iter().all(|&p| p == i as u8));
    }
    let split = TestSplit::Fraction {
        fraction: 0.25,
        seed: 5,
    };
    let parts = load(&dir, &cache, &opts(8, 1), &split).unwrap();
    assert_eq!((parts.train.len(), parts.test.len()), (6, 2));
    let first = |d: &wae_data::Dataset| -> Vec<u8> {
        (0..d.len()).map(|i| d.image(i).unwrap()[0]).collect()
    };
    let (train, test) = (first(&parts.train), first(&parts.test));
    let mut expected_test: Vec<u8> = wae_data::seeded_permutation(8, 5)[..2]
        .iter()
        .map(|&i| i as u8)
        .collect();
    expected_test.sort();
    assert_eq!(test, expected_test);
    assert!(train.windows(2).all(|w| w[0] < w[1]), "{train:?}");
    assert_eq!(train.len() + test.len(), 8);
    // The second load of the same split reads the cache.
    let again = load(&dir, &cache, &opts(8, 1), &split).unwrap();
    assert!(!again.built);
    assert_eq!(again.train, parts.train);
}

#[test]
fn class_folders_become_labels_and_crop_resize_convert() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    for class in ["cat", "dog"] {
        fs::create_dir_all(dir.join(class)).unwrap();
    }
    // A wide colour image (cropped to its centre square) and a grey one (converted).
    rgb_png(&dir.join("dog/a.png"), 12, 8, |x, _| {
        if (2..10).contains(&x) {
            [200, 100, 50]
        } else {
            [0, 0, 0]
        }
    });
    grey_png(&dir.join("cat/b.png"), 16, |_, _| 77);
    let loaded = load(&dir, &tmp.path().join("c"), &opts(8, 3), &TestSplit::None).unwrap();
    assert_eq!(loaded.header.classes, vec!["cat", "dog"]);
    assert_eq!(loaded.train.labels(), &[0, 1]);
    // cat/b.png: grey 77 resized 16 -> 8 stays 77 in all three planes.
    assert!(loaded.train.image(0).unwrap().iter().all(|&p| p == 77));
    // dog/a.png: the centre 8x8 is all (200, 100, 50), planar.
    let dog = loaded.train.image(1).unwrap();
    assert!(dog[..64].iter().all(|&p| p == 200));
    assert!(dog[64..128].iter().all(|&p| p == 100));
    assert!(dog[128..].iter().all(|&p| p == 50));
}

#[test]
fn an_empty_or_missing_folder_says_what_was_looked_for() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("notes.txt"), "no images").unwrap();
    let err = load(
        tmp.path(),
        &tmp.path().join("c"),
        &opts(8, 1),
        &TestSplit::None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("no images found") && err.contains("png"),
        "{err}"
    );
    let err = load(
        &tmp.path().join("nope"),
        &tmp.path().join("c"),
        &opts(8, 1),
        &TestSplit::None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("nope") && err.contains("not a folder"),
        "{err}"
    );
}

#[test]
fn corrupt_and_truncated_images_are_named_or_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = numbered_folder(tmp.path(), 4);
    fs::write(dir.join("001.png"), b"this is not a png").unwrap();
    let good = fs::read(dir.join("002.png")).unwrap();
    fs::write(dir.join("002.png"), &good[..good.len() / 2]).unwrap();
    let cache = tmp.path().join("c");
    let err = load(&dir, &cache, &opts(8, 1), &TestSplit::None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("001.png") && err.contains("--skip-bad-images"),
        "{err}"
    );
    // Nothing half-written: no cache file, no temporary left.
    let leftovers: Vec<_> = fs::read_dir(cache.join("images"))
        .map(|d| d.count())
        .into_iter()
        .collect();
    assert!(leftovers.iter().all(|&n| n == 0), "{leftovers:?}");
    let o = ImageOptions {
        skip_bad: true,
        ..opts(8, 1)
    };
    let loaded = load(&dir, &cache, &o, &TestSplit::None).unwrap();
    assert_eq!(loaded.train.len(), 2);
    let names: Vec<&str> = loaded
        .header
        .skipped
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names[0].ends_with("001.png") && names[1].ends_with("002.png"),
        "{names:?}"
    );
}

#[test]
fn an_image_smaller_than_size_is_named_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = numbered_folder(tmp.path(), 2);
    grey_png(&dir.join("small.png"), 4, |_, _| 1);
    let err = load(&dir, &tmp.path().join("c"), &opts(8, 1), &TestSplit::None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("small.png") && err.contains("smaller than data.size = 8"),
        "{err}"
    );
}

#[test]
fn a_changed_folder_is_read_again_and_a_damaged_cache_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = numbered_folder(tmp.path(), 3);
    let cache = tmp.path().join("c");
    let first = load(&dir, &cache, &opts(8, 1), &TestSplit::None).unwrap();
    grey_png(&dir.join("100.png"), 8, |_, _| 9);
    let second = load(&dir, &cache, &opts(8, 1), &TestSplit::None).unwrap();
    assert!(second.built);
    assert_eq!(second.train.len(), 4);
    assert_ne!(first.cache, second.cache);
    // Flip one pixel byte in the cache: the CRC fails and the cache is rebuilt.
    let path = second.cache.clone();
    drop(second);
    let mut bytes = fs::read(&path).unwrap();
    bytes[4096 + 10] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let third = load(&dir, &cache, &opts(8, 1), &TestSplit::None).unwrap();
    assert!(third.built, "a damaged cache must be rebuilt");
    assert!(third.train.image(0).unwrap().iter().all(|&p| p == 0));
    // A truncated cache too.
    drop(third);
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(5000).unwrap();
    let fourth = load(&dir, &cache, &opts(8, 1), &TestSplit::None).unwrap();
    assert!(fourth.built);
    assert_eq!(fourth.train.len(), 4);
}

/// A `.npy` file of `shape` with dtype `descr` and raw little-endian `data`.
fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(data);
    out
}

fn load_array(path: &Path, cache: &Path, o: &ImageOptions) -> wae_data::Result<LoadedImages> {
    images::load_array(path, None, &TestSplit::None, o, Some(cache), &mut |_, _| {})
}

#[test]
fn npy_u8_and_npz_floats_with_labels_load_planar() {
    let tmp = tempfile::tempdir().unwrap();
    // (2, 2, 2, 3) u8, interleaved RGB: pixel p of image i = (10i + p, 100 + p, 200 + i).
    let mut data = Vec::new();
    for i in 0..2u8 {
        for p in 0..4u8 {
            data.extend_from_slice(&[10 * i + p, 100 + p, 200 + i]);
        }
    }
    let path = tmp.path().join("a.npy");
    fs::write(&path, npy("|u1", &[2, 2, 2, 3], &data)).unwrap();
    let loaded = load_array(&path, &tmp.path().join("c"), &opts(2, 3)).unwrap();
    assert_eq!(
        loaded.train.image(1).unwrap(),
        &[10, 11, 12, 13, 100, 101, 102, 103, 201, 201, 201, 201]
    );

    // An npz with float images in [0, 1] and int64 labels.
    let floats: Vec<u8> = [0.0f32, 0.5, 1.0, 0.25, 1.0, 1.0, 0.0, 0.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let labels: Vec<u8> = [3i64, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
    let npz = tmp.path().join("b.npz");
    let mut zip = zip::ZipWriter::new(fs::File::create(&npz).unwrap());
    let o = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("x.npy", o).unwrap();
    zip.write_all(&npy("<f4", &[2, 2, 2], &floats)).unwrap();
    zip.start_file("labels.npy", o).unwrap();
    zip.write_all(&npy("<i8", &[2], &labels)).unwrap();
    zip.finish().unwrap();
    let loaded = load_array(&npz, &tmp.path().join("c"), &opts(2, 1)).unwrap();
    assert_eq!(loaded.train.labels(), &[3, 7]);
    assert_eq!(loaded.train.image(0).unwrap(), &[0, 128, 255, 64]);
}

#[test]
fn arrays_of_the_wrong_dtype_rank_range_or_length_say_how_to_fix_them() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("c");
    let cases: [(&str, Vec<u8>, ImageOptions, &str); 5] = [
        (
            "i32.npy",
            npy("<i4", &[1, 2, 2], &[0; 16]),
            opts(2, 1),
            "dtype <i4 is not supported",
        ),
        (
            "rank2.npy",
            npy("|u1", &[4, 4], &[0; 16]),
            opts(4, 1),
            "rank 2",
        ),
        (
            "range.npy",
            npy("<f8", &[1, 1, 1], &2.0f64.to_le_bytes()),
            opts(1, 1),
            "must lie in [0, 1]",
        ),
        (
            "short.npy",
            npy("|u1", &[3, 2, 2], &[0; 5]),
            opts(2, 1),
            "truncated",
        ),
        (
            "size.npy",
            npy("|u1", &[1, 2, 2], &[0; 4]),
            opts(4, 1),
            "set data.size = 2",
        ),
    ];
    for (name, bytes, o, expected) in cases {
        let path = tmp.path().join(name);
        fs::write(&path, bytes).unwrap();
        let err = load_array(&path, &cache, &o).unwrap_err().to_string();
        assert!(
            err.contains(name) && err.contains(expected),
            "{name}: {err}"
        );
    }
}

#[test]
fn a_mapped_dataset_batches_like_an_owned_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = numbered_folder(tmp.path(), 10);
    let mapped = load(&dir, &tmp.path().join("c"), &opts(8, 1), &TestSplit::None)
        .unwrap()
        .train;
    let owned = wae_data::Dataset::new(mapped.images().to_vec(), mapped.labels().to_vec(), 1, 8, 8)
        .unwrap();
    let device = candle_core::Device::Cpu;
    let a: Vec<Vec<f32>> = mapped
        .epoch(3, 7, 2, &device)
        .unwrap()
        .map(|b| b.unwrap().images.flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    let b: Vec<Vec<f32>> = owned
        .epoch(3, 7, 2, &device)
        .unwrap()
        .map(|b| b.unwrap().images.flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    assert_eq!(a, b);
    assert_eq!(mapped.summary(), owned.summary());
}

#[test]
fn a_separate_test_folder_is_the_test_set() {
    let tmp = tempfile::tempdir().unwrap();
    let train = numbered_folder(&tmp.path().join("train"), 5);
    let test = numbered_folder(&tmp.path().join("test"), 2);
    let split = TestSplit::Fraction {
        fraction: 0.5,
        seed: 1,
    };
    let loaded = images::load_folder(
        &train,
        Some(&test),
        &split,
        &opts(8, 1),
        Some(&tmp.path().join("c")),
        &mut |_, _| {},
    )
    .unwrap();
    // The fraction is ignored: all five train, the other folder's two test.
    assert_eq!((loaded.train.len(), loaded.test.len()), (5, 2));
    assert_eq!(loaded.header.test_count, 2);
    assert!(loaded.test.image(1).unwrap().iter().all(|&p| p == 1));
}
