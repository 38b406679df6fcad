//! The generated data sets of the latent-space experiments (fading squares, dSprites)
//! as the trainer loads them: sizes, shapes, labels, fixed data seeds, disjoint splits,
//! and test factors that match the test images.

use candle_core::Device;
use wae_train::trainer::{dsprites_rows, dsprites_test_factors, load_data};
use wae_train::{DatasetKind, preset};

#[test]
fn fading_squares_load_with_decile_labels_and_fixed_seeds() {
    let mut cfg = preset("fading-squares-wae-mmd-det").unwrap();
    cfg.data.train_examples = Some(300);
    cfg.data.test_examples = Some(50);
    let (train, test) = load_data(&cfg, None).unwrap();
    assert_eq!((train.len(), test.len()), (300, 50));
    assert_eq!(train.image_shape(), (1, 32, 32));
    // The label is the decile of the grey level, which the centre pixel holds.
    for i in 0..train.len() {
        let centre = train.image(i).unwrap()[16 * 32 + 16];
        let label = train.labels()[i];
        assert!(label <= 9);
        let grey = f64::from(centre) / 255.0;
        assert!(
            (grey * 10.0 - f64::from(label)).abs() <= 1.01,
            "image {i}: grey {grey} label {label}"
        );
        // Outside the 16-pixel square: black.
        assert_eq!(train.image(i).unwrap()[0], 0);
    }
    // The data do not depend on the model's seed.
    cfg.seed = 99;
    let (train2, _) = load_data(&cfg, None).unwrap();
    assert_eq!(train.images(), train2.images());
    // Train and test are different draws.
    assert_ne!(&train.images()[..50 * 1024], test.images());
    let levels: std::collections::BTreeSet<u8> = train.labels().iter().copied().collect();
    assert_eq!(
        levels.len(),
        10,
        "300 uniform grey levels cover every decile"
    );
}

#[test]
fn dsprites_splits_are_disjoint_and_test_factors_match_the_images() {
    let mut cfg = preset("dsprites-wae-mmd-det").unwrap();
    assert_eq!(cfg.data.dataset, DatasetKind::Dsprites);
    cfg.data.train_examples = Some(200);
    cfg.data.test_examples = Some(40);
    let (train_rows, test_rows) = dsprites_rows(&cfg);
    assert_eq!((train_rows.len(), test_rows.len()), (200, 40));
    let all: std::collections::BTreeSet<usize> =
        train_rows.iter().chain(&test_rows).copied().collect();
    assert_eq!(all.len(), 240, "rows are drawn without replacement");
    let (train, test) = load_data(&cfg, None).unwrap();
    assert_eq!((train.len(), test.len()), (200, 40));
    assert_eq!(test.image_shape(), (1, 64, 64));
    let factors = dsprites_test_factors(&cfg).unwrap().unwrap();
    assert_eq!(factors.len(), 40);
    for (i, f) in factors.iter().enumerate() {
        // render_sprite draws 0/1 pixels; the data set stores 0/255.
        let rendered: Vec<u8> = wae_data::dsprites::render_sprite(f)
            .unwrap()
            .iter()
            .map(|&p| p * 255)
            .collect();
        assert!(rendered == test.image(i).unwrap(), "test image {i}");
        assert_eq!(
            usize::from(test.labels()[i]),
            f.shape,
            "label = shape class"
        );
    }
    // Batches reach the model in [0, 1].
    let x = test.batch(&[0, 1], &Device::Cpu).unwrap();
    let max = x.max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!((max - 1.0).abs() < 1e-6);
    // No test factors for other data sets.
    assert!(
        dsprites_test_factors(&preset("mnist-wae-mmd").unwrap())
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_missing_dsprites_file_is_a_clear_error() {
    let mut cfg = preset("dsprites-wae-mmd-det").unwrap();
    cfg.data.train_examples = Some(10);
    cfg.data.test_examples = Some(10);
    let dir = tempfile::tempdir().unwrap();
    let err = load_data(&cfg, Some(dir.path())).unwrap_err().to_string();
    assert!(err.contains("dsprites_ndarray"), "{err}");
    assert!(err.contains("cargo xtask download dsprites"), "{err}");
}
