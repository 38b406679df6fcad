//! CelebA: the cache file (round trip, every corruption the loader must catch) and, with
//! the cargo feature `celeba`, the preprocessing (crop box, Lanczos resize against PIL).

use std::path::Path;

use candle_core::Device;
use wae_data::celeba::{CELEBA_PIXELS, CacheWriter, CelebA};
use wae_data::{Error, seeded_permutation};

/// Source image `i`: value `p` is `(31 i + p) % 256`.
fn source_image(i: usize) -> Vec<u8> {
    (0..CELEBA_PIXELS)
        .map(|p| ((31 * i + p) % 256) as u8)
        .collect()
}

/// Writes a cache of `n` source images (written in reverse order), `test` of them test.
fn write_cache(path: &Path, n: usize, test: usize) {
    let mut writer = CacheWriter::create(path, n, test, 123, "test images").expect("create");
    for i in (0..n).rev() {
        writer.write(i, &source_image(i)).expect("write");
    }
    assert_eq!(writer.remaining(), 0);
    writer.finish().expect("finish");
}

fn leftover_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn cache_round_trip_keeps_images_and_the_seeded_split() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("celeba64.bin");
    write_cache(&path, 7, 3);
    assert_eq!(leftover_files(dir.path()), ["celeba64.bin"]);

    let celeba = CelebA::load(&path).expect("load");
    assert_eq!((celeba.train.len(), celeba.test.len()), (4, 3));
    assert_eq!(celeba.train.image_shape(), (3, 64, 64));
    let order = seeded_permutation(7, 123);
    let stored: Vec<usize> = celeba.source_indices.iter().map(|&s| s as usize).collect();
    assert_eq!(stored, order);
    for (k, &source) in order.iter().enumerate() {
        let image = if k < 4 {
            celeba.train.image(k)
        } else {
            celeba.test.image(k - 4)
        }
        .expect("image");
        assert_eq!(image, source_image(source).as_slice(), "slot {k}");
    }
    assert_eq!(celeba.header.count, 7);
    assert_eq!(celeba.header.test_count, 3);
    assert_eq!(celeba.header.split_seed, 123);
    assert_eq!(celeba.header.crop_box, [19, 39, 159, 179]);
    assert_eq!(CelebA::read_header(&path).expect("header"), celeba.header);

    // Batches are (N, 3, 64, 64) f32 = u8 / 255.
    let batch = celeba.test.batch(&[2], &Device::Cpu).expect("batch");
    assert_eq!(batch.dims(), &[1, 3, 64, 64]);
    let values = batch.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let expected = source_image(order[6]);
    for p in [0, 1, 4095, 4096, 12287] {
        assert_eq!(values[p], f32::from(expected[p]) / 255.0);
    }
}

#[test]
fn writer_rejects_bad_input_and_leaves_no_file_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.bin");
    assert!(
        CacheWriter::create(&path, 3, 3, 123, "x").is_err(),
        "no train"
    );
    assert!(CacheWriter::create(&path, 0, 0, 123, "x").is_err(), "empty");

    let mut writer = CacheWriter::create(&path, 3, 1, 123, "x").expect("create");
    assert!(writer.write(0, &[0u8; 10]).is_err(), "wrong length");
    assert!(writer.write(3, &source_image(3)).is_err(), "out of range");
    writer.write(1, &source_image(1)).expect("write");
    let again = writer.write(1, &source_image(1)).unwrap_err().to_string();
    assert!(again.contains("already written"), "{again}");
    let err = writer.finish().unwrap_err().to_string();
    assert!(err.contains("2 of 3 images were never written"), "{err}");
    assert!(
        leftover_files(dir.path()).is_empty(),
        "{:?}",
        leftover_files(dir.path())
    );

    // A writer dropped midway removes its temporary file too.
    let mut writer = CacheWriter::create(&path, 3, 1, 123, "x").expect("create");
    writer.write(0, &source_image(0)).expect("write");
    assert_eq!(leftover_files(dir.path()).len(), 1);
    drop(writer);
    assert!(leftover_files(dir.path()).is_empty());

    let long = "x".repeat(2000);
    let err = CacheWriter::create(&path, 3, 1, 123, &long).unwrap_err();
    assert!(err.to_string().contains("shorten"), "{err}");
}

/// Writes a valid cache, lets `damage` change its bytes, and returns the load error.
fn load_damaged(damage: impl FnOnce(&mut Vec<u8>)) -> Error {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("celeba64.bin");
    write_cache(&path, 5, 2);
    let mut bytes = std::fs::read(&path).expect("read");
    damage(&mut bytes);
    std::fs::write(&path, &bytes).expect("write");
    let err = CelebA::load(&path).expect_err("a damaged cache must not load");
    assert!(
        matches!(err, Error::CelebaCacheCorrupt { .. }),
        "unexpected error kind: {err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("celeba64.bin"), "{message}");
    assert!(message.contains("cargo xtask download celeba"), "{message}");
    err
}

const DATA: usize = 16 + 1024;

#[test]
fn a_flipped_pixel_fails_the_crc() {
    let err = load_damaged(|b| {
        let last = b.len() - 1;
        b[last] ^= 1;
    });
    assert!(err.to_string().contains("CRC-32 mismatch"), "{err}");
}

#[test]
fn a_truncated_or_extended_file_is_refused() {
    let err = load_damaged(|b| b.truncate(b.len() - 100));
    assert!(err.to_string().contains("the header promises"), "{err}");
    let err = load_damaged(|b| b.extend_from_slice(&[0; 3]));
    assert!(err.to_string().contains("the header promises"), "{err}");
    let err = load_damaged(|b| b.truncate(10));
    assert!(err.to_string().contains("ends inside"), "{err}");
}

#[test]
fn wrong_magic_header_or_index_table_is_refused() {
    let err = load_damaged(|b| b[0] = b'X');
    assert!(err.to_string().contains("wrong magic"), "{err}");
    let err = load_damaged(|b| b[16] = b'[');
    assert!(err.to_string().contains("unreadable JSON header"), "{err}");
    // Another layout version.
    let err = load_damaged(|b| {
        let text = String::from_utf8(b[16..DATA].to_vec()).unwrap();
        let text = text.replace("\"version\":1", "\"version\":9");
        b[16..DATA].copy_from_slice(text.as_bytes());
    });
    assert!(err.to_string().contains("layout version 9"), "{err}");
    // The index table names an image twice.
    let err = load_damaged(|b| {
        let first: [u8; 4] = b[DATA..DATA + 4].try_into().unwrap();
        b[DATA + 4..DATA + 8].copy_from_slice(&first);
    });
    assert!(err.to_string().contains("twice"), "{err}");
}

#[test]
fn a_missing_cache_says_how_to_build_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = CelebA::load(&dir.path().join("nope.bin")).unwrap_err();
    assert!(matches!(err, Error::CelebaCacheMissing { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("nope.bin"), "{message}");
    assert!(message.contains("cargo xtask download celeba"), "{message}");
    assert!(message.contains("--from img_align_celeba.zip"), "{message}");
    // `locate` accepts a directory holding the cache.
    assert!(CelebA::locate(Some(dir.path())).is_err());
    write_cache(&dir.path().join("celeba64.bin"), 3, 1);
    assert_eq!(
        CelebA::locate(Some(dir.path())).expect("found"),
        dir.path().join("celeba64.bin")
    );
}

/// Decoding needs the `celeba` feature; everything else here runs without it.
#[cfg(not(feature = "celeba"))]
#[test]
fn decoding_tests_need_the_celeba_feature() {
    eprintln!("celeba decoding tests: skipped, run `cargo test -p wae-data --features celeba`");
}

mod preprocessing {
    use image::{Rgb, RgbImage};
    use wae_data::Error;
    use wae_data::celeba::{preprocess_rgb, resize_lanczos};

    const PLANE: usize = 64 * 64;

    /// An aligned 178x218 image: pure red outside the crop box widened by `grow` pixels on
    /// every side, and inside four quadrants of colours without red.
    fn framed(grow: u32) -> RgbImage {
        RgbImage::from_fn(178, 218, |x, y| {
            let inside =
                (19 + grow..159 - grow).contains(&x) && (39 + grow..179 - grow).contains(&y);
            if !inside {
                return Rgb([255, 0, 0]);
            }
            match (x < 89, y < 109) {
                (true, true) => Rgb([0, 200, 0]),
                (false, true) => Rgb([0, 0, 200]),
                (true, false) => Rgb([0, 200, 200]),
                (false, false) => Rgb([0, 60, 120]),
            }
        })
    }

    fn run(name: &str, image: &RgbImage) -> wae_data::Result<Vec<u8>> {
        preprocess_rgb(name, image.as_raw(), 178, 218)
    }

    fn pixel(out: &[u8], row: usize, col: usize) -> [u8; 3] {
        let p = row * 64 + col;
        [out[p], out[PLANE + p], out[2 * PLANE + p]]
    }

    #[test]
    fn the_crop_box_keeps_exactly_the_140x140_inside() {
        let out = run("framed", &framed(0)).expect("ok");
        assert_eq!(out.len(), 3 * PLANE);
        // No red from the frame reaches any output pixel: the crop is exact.
        assert_eq!(out[..PLANE].iter().copied().max(), Some(0));
        // Quadrant centres keep their colours exactly (Lanczos of a constant region),
        // in the right places (rows are y, columns x; channel planes R, G, B).
        assert_eq!(pixel(&out, 16, 16), [0, 200, 0]);
        assert_eq!(pixel(&out, 16, 47), [0, 0, 200]);
        assert_eq!(pixel(&out, 47, 16), [0, 200, 200]);
        assert_eq!(pixel(&out, 47, 47), [0, 60, 120]);

        // The check is sharp: a frame one pixel wider leaks red into the edges.
        let leaky = run("leaky", &framed(1)).expect("ok");
        let edge_red = leaky[..64].iter().map(|&v| u32::from(v)).sum::<u32>();
        assert!(edge_red > 64 * 20, "top row red sum {edge_red}");
    }

    /// The image of `xtask/reference/celeba_preprocess_reference.py`.
    fn ramps() -> RgbImage {
        RgbImage::from_fn(178, 218, |x, y| {
            let b = if (x / 10 + y / 10) % 2 == 0 { 255 } else { 0 };
            Rgb([(x * 255 / 177) as u8, (y * 255 / 217) as u8, b])
        })
    }

    #[test]
    fn matches_pil_crop_and_lanczos_bit_for_bit() {
        let reference_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/celeba_pil_reference.png");
        let reference = image::open(&reference_path)
            .expect("reference png")
            .to_rgb8();
        assert_eq!(reference.dimensions(), (64, 64));
        let out = run("ramps", &ramps()).expect("ok");
        let mut max_diff = 0i32;
        let mut differing = 0usize;
        for (x, y, px) in reference.enumerate_pixels() {
            let ours = pixel(&out, y as usize, x as usize);
            for (&a, &b) in ours.iter().zip(&px.0) {
                let d = (i32::from(a) - i32::from(b)).abs();
                max_diff = max_diff.max(d);
                differing += usize::from(d > 0);
            }
        }
        assert_eq!(
            (differing, max_diff),
            (0, 0),
            "values differing from PIL, largest difference"
        );
        // PIL's channel sums, printed by the reference script.
        let sums: Vec<u64> = (0..3)
            .map(|c| {
                out[c * PLANE..(c + 1) * PLANE]
                    .iter()
                    .map(|&v| u64::from(v))
                    .sum()
            })
            .collect();
        assert_eq!(sums, [520256, 520192, 522245]);
    }

    #[test]
    fn resize_rejects_bad_shapes_and_keeps_constants() {
        assert!(resize_lanczos(&[0; 12], 2, 2, 3, 0, 1).is_err());
        assert!(resize_lanczos(&[0; 11], 2, 2, 3, 1, 1).is_err());
        // A constant image stays constant, also when enlarging.
        let flat = resize_lanczos(&[77; 5 * 7 * 2], 5, 7, 2, 11, 3).expect("ok");
        assert_eq!(flat, vec![77; 11 * 3 * 2]);
    }

    #[test]
    fn refuses_images_that_are_not_aligned_celeba() {
        let err = preprocess_rgb("small.jpg", &[0; 64 * 64 * 3], 64, 64).unwrap_err();
        assert!(matches!(err, Error::BadImage { .. }), "{err:?}");
        assert!(err.to_string().contains("small.jpg"), "{err}");
        assert!(err.to_string().contains("178x218"), "{err}");
        let err = preprocess_rgb("short.jpg", &[0; 10], 178, 218).unwrap_err();
        assert!(err.to_string().contains("short.jpg"), "{err}");
    }

    #[cfg(feature = "celeba")]
    #[test]
    fn decodes_png_and_jpeg() {
        use wae_data::celeba::{preprocess, preprocess_encoded};
        let source = ramps();
        let direct = run("ramps", &source).expect("ok");
        let dynamic = image::DynamicImage::ImageRgb8(source.clone());
        assert_eq!(preprocess("ramps", &dynamic).expect("ok"), direct);
        let encode = |format| {
            let mut bytes = std::io::Cursor::new(Vec::new());
            source.write_to(&mut bytes, format).expect("encode");
            bytes.into_inner()
        };
        let png = preprocess_encoded("a.png", &encode(image::ImageFormat::Png)).expect("png");
        assert_eq!(png, direct, "PNG is lossless");
        let jpeg = preprocess_encoded("a.jpg", &encode(image::ImageFormat::Jpeg)).expect("jpg");
        let mean = jpeg
            .iter()
            .zip(&direct)
            .map(|(&a, &b)| f64::from((i32::from(a) - i32::from(b)).abs()))
            .sum::<f64>()
            / jpeg.len() as f64;
        assert!(mean < 6.0, "JPEG round trip mean |diff| {mean}");
        let err = preprocess_encoded("junk.jpg", b"not an image").unwrap_err();
        assert!(err.to_string().contains("cannot decode"), "{err}");
        assert!(err.to_string().contains("junk.jpg"), "{err}");
    }
}
