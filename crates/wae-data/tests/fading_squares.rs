//! Fading squares: shapes, the grey level as the only factor, seeding, bad input.

use candle_core::Device;
use wae_data::{FadingSquares, FadingSquaresConfig};

#[test]
fn images_hold_one_centred_square_at_the_factor_grey_level() {
    let config = FadingSquaresConfig::default();
    let data = FadingSquares::generate(500, 3, &config).expect("generate");
    assert_eq!(data.len(), 500);
    assert_eq!(data.images.image_shape(), (1, 32, 32));
    assert_eq!(config.square_side, 16);
    assert_eq!(config.square_start(), 8);
    let quantised = data.quantised_grey_levels();
    for (i, (&g, &q)) in data.grey_levels.iter().zip(&quantised).enumerate() {
        assert!((0.0..1.0).contains(&g), "{g}");
        let level = (g * 255.0).round() as u8;
        assert!((q - g).abs() <= 0.5 / 255.0 + 1e-12);
        assert_eq!(data.images.labels()[i], level);
        let image = data.images.image(i).expect("image");
        for row in 0..32 {
            for col in 0..32 {
                let inside = (8..24).contains(&row) && (8..24).contains(&col);
                assert_eq!(config.in_square(row, col), inside);
                let want = if inside { level } else { 0 };
                assert_eq!(
                    image[row * 32 + col],
                    want,
                    "image {i} pixel ({row}, {col})"
                );
            }
        }
    }
    // A batch shows the quantised level as f32 in [0, 1].
    let batch = data.images.batch(&[0, 1], &Device::Cpu).expect("batch");
    let pixels = batch
        .flatten_all()
        .expect("flat")
        .to_vec1::<f32>()
        .expect("vec");
    let centre = 16 * 32 + 16;
    assert!((f64::from(pixels[centre]) - quantised[0]).abs() < 1e-6);
    assert!((f64::from(pixels[1024 + centre]) - quantised[1]).abs() < 1e-6);
    assert_eq!(pixels[0], 0.0);
}

#[test]
fn grey_levels_are_uniform_and_seeded() {
    let config = FadingSquaresConfig::default();
    let a = FadingSquares::generate(4000, 11, &config).expect("a");
    let b = FadingSquares::generate(4000, 11, &config).expect("b");
    let c = FadingSquares::generate(4000, 12, &config).expect("c");
    assert_eq!(a.grey_levels, b.grey_levels);
    assert_eq!(a.images, b.images);
    assert_ne!(a.grey_levels, c.grey_levels);
    // Uniform on [0, 1): each quarter holds about a quarter (sd of a share: 0.007).
    for q in 0..4 {
        let lo = q as f64 / 4.0;
        let share = a
            .grey_levels
            .iter()
            .filter(|&&g| g >= lo && g < lo + 0.25)
            .count() as f64
            / 4000.0;
        assert!((share - 0.25).abs() < 0.03, "quarter {q}: {share}");
    }
}

#[test]
fn given_levels_and_other_geometries() {
    let config = FadingSquaresConfig {
        image_side: 32,
        square_side: 5,
    };
    let data = FadingSquares::from_grey_levels(&[0.0, 0.5, 1.0], &config).expect("levels");
    assert_eq!(config.square_start(), 13);
    assert_eq!(data.images.labels(), &[0, 128, 255]);
    let lit = |i: usize| {
        data.images
            .image(i)
            .expect("image")
            .iter()
            .filter(|&&p| p > 0)
            .count()
    };
    assert_eq!((lit(0), lit(1), lit(2)), (0, 25, 25));
    assert_eq!(data.images.image(2).expect("image")[13 * 32 + 13], 255);
    assert_eq!(data.images.image(2).expect("image")[12 * 32 + 13], 0);
    let whole = FadingSquaresConfig {
        image_side: 8,
        square_side: 8,
    };
    let full = FadingSquares::from_grey_levels(&[1.0], &whole).expect("full");
    assert!(
        full.images
            .image(0)
            .expect("image")
            .iter()
            .all(|&p| p == 255)
    );
}

#[test]
fn bad_input_is_an_error() {
    let too_big = FadingSquaresConfig {
        image_side: 32,
        square_side: 33,
    };
    let err = FadingSquares::generate(3, 0, &too_big).expect_err("too big");
    assert!(err.to_string().contains("square_side (33)"), "{err}");
    let empty = FadingSquaresConfig {
        image_side: 32,
        square_side: 0,
    };
    assert!(FadingSquares::generate(3, 0, &empty).is_err());
    let err = FadingSquares::from_grey_levels(&[0.2, 1.5], &FadingSquaresConfig::default())
        .expect_err("out of range");
    assert!(
        err.to_string().contains("grey level 1.5 of image 1"),
        "{err}"
    );
    assert!(FadingSquares::from_grey_levels(&[f64::NAN], &FadingSquaresConfig::default()).is_err());
    let none = FadingSquares::generate(0, 0, &FadingSquaresConfig::default()).expect("empty");
    assert!(none.is_empty());
}
