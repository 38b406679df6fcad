//! dSprites: the procedural renderer's factor semantics and the npz loader (on a tiny
//! npz written here, and on one written by numpy, see
//! xtask/reference/disentanglement_reference.py).

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;
use wae_data::dsprites::{DSPRITES_LEN, DSPRITES_SIDE, render_sprite, sample_factors_with_fixed};
use wae_data::{DSPRITES_FACTOR_SIZES, Dsprites, DspritesFactors};

fn factors(a: [usize; 5]) -> DspritesFactors {
    DspritesFactors::from_array(a).expect("factors")
}

fn lit(image: &[u8]) -> usize {
    image.iter().filter(|&&p| p > 0).count()
}

/// Mean (column, row) of the lit pixels' centres.
fn centroid(image: &[u8]) -> (f64, f64) {
    let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
    for (i, &p) in image.iter().enumerate() {
        if p > 0 {
            sx += (i % DSPRITES_SIDE) as f64 + 0.5;
            sy += (i / DSPRITES_SIDE) as f64 + 0.5;
            n += 1.0;
        }
    }
    (sx / n, sy / n)
}

#[test]
fn square_pixel_count_per_scale_is_checked_and_monotone() {
    let mut previous = 0;
    for (scale, want) in [100, 144, 196, 256, 324, 400].into_iter().enumerate() {
        for (x, y) in [(0, 0), (16, 16), (31, 5), (31, 31)] {
            let image = render_sprite(&factors([0, scale, 0, x, y])).expect("render");
            assert!(image.iter().all(|&p| p <= 1));
            assert_eq!(lit(&image), want, "scale {scale} at ({x}, {y})");
        }
        assert!(want > previous);
        previous = want;
    }
    // Ellipses and hearts grow with scale too, with about their analytic areas at scale 1:
    // ellipse pi / 8 of the square, heart 0.7057 of it.
    for shape in [1, 2] {
        let counts: Vec<usize> = (0..6)
            .map(|s| lit(&render_sprite(&factors([shape, s, 0, 16, 16])).expect("render")))
            .collect();
        assert!(
            counts.windows(2).all(|w| w[0] < w[1]),
            "shape {shape}: {counts:?}"
        );
        let expected = if shape == 1 {
            400.0 * std::f64::consts::PI / 8.0
        } else {
            400.0 * 0.7057
        };
        let rel = (counts[5] as f64 - expected).abs() / expected;
        assert!(rel < 0.08, "shape {shape}: {} vs {expected}", counts[5]);
    }
}

#[test]
fn rotation_changes_the_heart_and_two_pi_is_zero() {
    let upright = render_sprite(&factors([2, 5, 0, 16, 16])).expect("render");
    for orientation in [5, 10, 20, 30] {
        let turned = render_sprite(&factors([2, 5, orientation, 16, 16])).expect("render");
        let differ = upright.iter().zip(&turned).filter(|(a, b)| a != b).count();
        assert!(
            differ > 40,
            "orientation {orientation}: only {differ} pixels differ"
        );
        // Rotation keeps the area (up to aliasing).
        let rel = (lit(&turned) as f64 - lit(&upright) as f64).abs() / lit(&upright) as f64;
        assert!(rel < 0.06, "orientation {orientation}: {rel}");
    }
    // Index 39 is 2 pi: the same image as index 0, as in the official file.
    let full_turn = render_sprite(&factors([2, 5, 39, 16, 16])).expect("render");
    assert_eq!(full_turn, upright);
    // Half a turn (index 19.5 is not on the grid; compare 180 degrees via the flip of the
    // heart's point): the upright heart's point is at the bottom, so its centroid is
    // above the frame centre; near half a turn it moves below.
    let (_, cy_up) = centroid(&upright);
    let (_, cy_down) = centroid(&render_sprite(&factors([2, 5, 20, 16, 16])).expect("render"));
    assert!(cy_up < 32.0 && cy_down > 32.0, "{cy_up} {cy_down}");
    // The ellipse's long axis is horizontal at angle 0 and turns.
    let ellipse = render_sprite(&factors([1, 5, 0, 16, 16])).expect("render");
    let width = (0..64).filter(|&c| ellipse[32 * 64 + c] > 0).count();
    let height = (0..64).filter(|&r| ellipse[r * 64 + 32] > 0).count();
    assert_eq!((width, height), (20, 10));
    let quarter = render_sprite(&factors([1, 5, 10, 16, 16])).expect("render");
    let height = (0..64).filter(|&r| quarter[r * 64 + 32] > 0).count();
    assert!(
        height > 17,
        "after about 92 degrees the ellipse stands: height {height}"
    );
}

#[test]
fn position_moves_the_centroid_one_pixel_per_step() {
    for step in 0..32 {
        let image = render_sprite(&factors([0, 3, 0, step, 7])).expect("render");
        let (cx, cy) = centroid(&image);
        assert!(
            (cx - (16.0 + step as f64)).abs() < 1e-9,
            "x step {step}: {cx}"
        );
        assert!((cy - 23.0).abs() < 1e-9);
        let image = render_sprite(&factors([0, 3, 0, 7, step])).expect("render");
        let (cx, cy) = centroid(&image);
        assert!(
            (cy - (16.0 + step as f64)).abs() < 1e-9,
            "y step {step}: {cy}"
        );
        assert!((cx - 23.0).abs() < 1e-9);
    }
    // Any shape: moving right moves the centroid right, moving down moves it down.
    let mut rng = StdRng::seed_from_u64(5);
    for _ in 0..50 {
        let f = DspritesFactors::random(&mut rng);
        let (x0, y0) = centroid(&render_sprite(&f.with_factor(3, 2).expect("x")).expect("r"));
        let (x1, y1) = centroid(&render_sprite(&f.with_factor(3, 29).expect("x")).expect("r"));
        assert!(
            (x1 - x0 - 27.0).abs() < 0.6 && (y1 - y0).abs() < 0.6,
            "{f:?}"
        );
        let (x2, y2) = centroid(&render_sprite(&f.with_factor(4, 29).expect("y")).expect("r"));
        let (x3, y3) = centroid(&render_sprite(&f.with_factor(4, 2).expect("y")).expect("r"));
        assert!(
            (y2 - y3 - 27.0).abs() < 0.6 && (x2 - x3).abs() < 0.6,
            "{f:?}"
        );
    }
}

#[test]
fn every_sprite_stays_inside_the_image() {
    // Largest scale at the extreme positions and all orientations: nothing on the border.
    for shape in 0..3 {
        for orientation in 0..40 {
            for (x, y) in [(0, 0), (31, 31), (0, 31), (31, 0)] {
                let image = render_sprite(&factors([shape, 5, orientation, x, y])).expect("r");
                let border = (0..64).any(|i| {
                    image[i] > 0
                        || image[63 * 64 + i] > 0
                        || image[i * 64] > 0
                        || image[i * 64 + 63] > 0
                });
                assert!(
                    !border,
                    "shape {shape} orientation {orientation} at ({x}, {y})"
                );
                assert!(lit(&image) > 50);
            }
        }
    }
}

#[test]
fn factor_indexing_matches_the_official_layout() {
    assert_eq!(
        DSPRITES_LEN,
        DSPRITES_FACTOR_SIZES.iter().product::<usize>()
    );
    assert_eq!(
        DspritesFactors::from_index(0).expect("0").to_array(),
        [0; 5]
    );
    assert_eq!(
        DspritesFactors::from_index(1).expect("1").to_array(),
        [0, 0, 0, 0, 1]
    );
    assert_eq!(
        DspritesFactors::from_index(32).expect("32").to_array(),
        [0, 0, 0, 1, 0]
    );
    let last = DspritesFactors::from_index(DSPRITES_LEN - 1).expect("last");
    assert_eq!(last.to_array(), [2, 5, 39, 31, 31]);
    assert_eq!(last.latents_classes(), [0, 2, 5, 39, 31, 31]);
    let v = last.latents_values();
    assert_eq!(v[..3], [1.0, 3.0, 1.0]);
    assert!((v[3] - 2.0 * std::f64::consts::PI).abs() < 1e-15);
    assert_eq!(v[4..], [1.0, 1.0]);
    let v = factors([1, 1, 1, 1, 1]).latents_values();
    assert!((v[2] - 0.6).abs() < 1e-15 && (v[3] - 2.0 * std::f64::consts::PI / 39.0).abs() < 1e-15);
    assert!((v[4] - 1.0 / 31.0).abs() < 1e-15);
    for index in [0, 1, 777, 123_456, DSPRITES_LEN - 1] {
        assert_eq!(
            DspritesFactors::from_index(index).expect("i").index(),
            index
        );
    }
    assert!(DspritesFactors::from_index(DSPRITES_LEN).is_err());
    let err = DspritesFactors::from_array([0, 6, 0, 0, 0]).expect_err("scale 6");
    assert!(
        err.to_string().contains("scale = 6 is out of range 0..6"),
        "{err}"
    );
    assert!(factors([0; 5]).with_factor(5, 0).is_err());
}

#[test]
fn sampling_is_seeded_and_fixing_a_factor_fixes_it() {
    let a = Dsprites::sample(40, 9).expect("a");
    let b = Dsprites::sample(40, 9).expect("b");
    let c = Dsprites::sample(40, 10).expect("c");
    assert_eq!(a.factors, b.factors);
    assert_eq!(a.images, b.images);
    assert_ne!(a.factors, c.factors);
    assert_eq!(a.images.image_shape(), (1, 64, 64));
    assert!(a.images.images().iter().all(|&p| p == 0 || p == 255));
    let labels: Vec<u8> = a.factors.iter().map(|f| f.shape as u8).collect();
    assert_eq!(a.images.labels(), &labels[..]);
    assert_eq!(a.factor_classes().len(), 40 * 5);
    assert_eq!(a.factor_classes()[5..10], a.factors[1].to_array());

    let mut rng = StdRng::seed_from_u64(1);
    let fixed = sample_factors_with_fixed(2, 17, 200, &mut rng).expect("fixed");
    assert!(fixed.iter().all(|f| f.orientation == 17));
    let shapes: std::collections::HashSet<usize> = fixed.iter().map(|f| f.shape).collect();
    assert_eq!(shapes.len(), 3, "the other factors still vary");
    assert!(sample_factors_with_fixed(0, 3, 1, &mut rng).is_err());

    let by_index = Dsprites::generate_indices(&[0, 737_279]).expect("indices");
    assert_eq!(by_index.factors[1].to_array(), [2, 5, 39, 31, 31]);
}

// ---- npz loader ----

/// A `.npy` file (format 1.0, header padded to 64 bytes as numpy does).
fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

struct Arrays {
    imgs: (String, Vec<usize>, Vec<u8>),
    classes: (String, Vec<usize>, Vec<u8>),
    values: (String, Vec<usize>, Vec<u8>),
}

/// Arrays for the official rows `indices`, images from our renderer (0/1).
fn arrays(indices: &[usize]) -> Arrays {
    let n = indices.len();
    let mut imgs = Vec::new();
    let mut classes = Vec::new();
    let mut values = Vec::new();
    for &i in indices {
        let f = DspritesFactors::from_index(i).expect("index");
        imgs.extend(render_sprite(&f).expect("render"));
        classes.extend(f.latents_classes().iter().flat_map(|c| c.to_le_bytes()));
        values.extend(f.latents_values().iter().flat_map(|v| v.to_le_bytes()));
    }
    Arrays {
        imgs: ("|u1".into(), vec![n, 64, 64], imgs),
        classes: ("<i8".into(), vec![n, 6], classes),
        values: ("<f8".into(), vec![n, 6], values),
    }
}

fn write_npz(path: &Path, arrays: &Arrays, deflate: bool, skip: Option<&str>) {
    let file = std::fs::File::create(path).expect("create");
    let mut zip = zip::ZipWriter::new(file);
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, (descr, shape, data)) in [
        ("imgs", &arrays.imgs),
        ("latents_values", &arrays.values),
        ("latents_classes", &arrays.classes),
    ] {
        if skip == Some(name) {
            continue;
        }
        zip.start_file(format!("{name}.npy"), options)
            .expect("start");
        zip.write_all(&npy(descr, shape, data)).expect("write");
    }
    zip.finish().expect("finish");
}

const ROWS: [usize; 6] = [0, 1, 5000, 300_000, 600_001, 737_279];

fn check_loaded(data: &Dsprites, rows: &[usize]) {
    assert_eq!(data.len(), rows.len());
    for (k, &row) in rows.iter().enumerate() {
        let f = DspritesFactors::from_index(row).expect("index");
        assert_eq!(data.factors[k], f);
        assert_eq!(data.latents_values[k], f.latents_values());
        let want: Vec<u8> = render_sprite(&f)
            .expect("r")
            .iter()
            .map(|&p| p * 255)
            .collect();
        assert_eq!(data.images.image(k).expect("image"), &want[..]);
        assert_eq!(data.images.labels()[k] as usize, f.shape);
    }
}

#[test]
fn npz_loads_whole_and_in_part_stored_or_deflated() {
    let dir = tempfile::tempdir().expect("tempdir");
    for deflate in [true, false] {
        let path = dir.path().join(format!("d{deflate}.npz"));
        write_npz(&path, &arrays(&ROWS), deflate, None);
        let all = Dsprites::load_npz(&path).expect("load");
        check_loaded(&all, &ROWS);
        // A subset in any order, with repeats.
        let subset = Dsprites::load_npz_subset(&path, &[4, 1, 4, 0]).expect("subset");
        check_loaded(&subset, &[ROWS[4], ROWS[1], ROWS[4], ROWS[0]]);
        let none = Dsprites::load_npz_subset(&path, &[]).expect("empty");
        assert!(none.is_empty());
        let err = Dsprites::load_npz_subset(&path, &[6]).expect_err("out of range");
        assert!(err.to_string().contains("index 6 out of range"), "{err}");
    }
}

#[test]
fn npz_written_by_numpy_loads() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/dsprites_numpy_tiny.npz");
    let data = Dsprites::load_npz(&path).expect("load numpy fixture");
    assert_eq!(data.len(), 3);
    assert_eq!(data.factors[0].to_array(), [0; 5]);
    assert_eq!(data.factors[1].to_array(), [0, 0, 0, 0, 1]);
    assert_eq!(data.factors[2].to_array(), [2, 5, 39, 31, 31]);
    assert_eq!(data.latents_values[2], data.factors[2].latents_values());
    assert_eq!(data.latents_values[1][5], 1.0 / 31.0);
    let count = |k: usize| lit(data.images.image(k).expect("image"));
    assert_eq!((count(0), count(1), count(2)), (100, 64, 1));
    assert_eq!(data.images.image(0).expect("0")[10 * 64 + 30], 255);
    assert_eq!(data.images.image(2).expect("2")[63 * 64 + 63], 255);
}

fn load_err(arrays: &Arrays, skip: Option<&str>) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.npz");
    write_npz(&path, arrays, true, skip);
    let err = Dsprites::load_npz(&path).expect_err("must fail");
    err.to_string()
}

#[test]
fn npz_with_wrong_contents_is_a_clear_error() {
    let err = load_err(&arrays(&ROWS), Some("imgs"));
    assert!(err.contains("no array `imgs`"), "{err}");
    assert!(
        err.contains("dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"),
        "{err}"
    );

    let mut a = arrays(&ROWS);
    a.imgs.1 = vec![6, 32, 128];
    let err = load_err(&a, None);
    assert!(
        err.contains("imgs has shape [6, 32, 128], expected (N, 64, 64)"),
        "{err}"
    );

    let mut a = arrays(&ROWS);
    a.values.1 = vec![12, 3];
    let err = load_err(&a, None);
    assert!(
        err.contains("latents_values has shape [12, 3], expected (N, 6)"),
        "{err}"
    );

    let mut a = arrays(&ROWS);
    a.imgs.0 = "<f4".into();
    let err = load_err(&a, None);
    assert!(
        err.contains("imgs has dtype '<f4', expected '|u1'"),
        "{err}"
    );

    let mut a = arrays(&ROWS);
    a.imgs.1 = vec![5, 64, 64];
    a.imgs.2.truncate(5 * 4096);
    let err = load_err(&a, None);
    assert!(
        err.contains("imgs has 5 images but latents_classes has 6 rows"),
        "{err}"
    );

    let mut a = arrays(&ROWS);
    a.imgs.2[4096 * 2 + 100] = 7;
    let err = load_err(&a, None);
    assert!(
        err.contains("imgs[2] has pixel value 7 at (1, 36)"),
        "{err}"
    );

    let mut a = arrays(&ROWS);
    a.classes.2[(6 + 3) * 8..(6 + 3) * 8 + 8].copy_from_slice(&40i64.to_le_bytes());
    let err = load_err(&a, None);
    assert!(
        err.contains("latents_classes[1, 3] (orientation) = 40 is outside 0..40"),
        "{err}"
    );

    let mut a = arrays(&ROWS);
    a.imgs.2.truncate(4096 * 3 + 10);
    let err = load_err(&a, None);
    assert!(err.contains("imgs.npy is truncated at image 3"), "{err}");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("not_a_zip.npz");
    std::fs::write(&path, b"hello").expect("write");
    let err = Dsprites::load_npz(&path)
        .expect_err("not a zip")
        .to_string();
    assert!(err.contains("not a readable npz (zip) archive"), "{err}");
    let err = Dsprites::load_npz(&dir.path().join("missing.npz")).expect_err("missing");
    assert!(err.to_string().contains("missing.npz"), "{err}");
}
