//! The hub's parquet layout, read offline from small files written here.
//!
//! Needs the cargo feature `hub` (`cargo test -p wae-data --features hub`).

#[cfg(not(feature = "hub"))]
#[test]
fn parquet_tests_need_the_hub_feature() {
    eprintln!("hub_parquet: skipped, run `cargo test -p wae-data --features hub` to run them");
}

mod common;

#[cfg(feature = "hub")]
mod with_hub {

    use crate::common::parquet::{png, write_parquet};
    use wae_data::Error;
    use wae_data::hub::read_parquet;

    #[test]
    fn reads_images_and_labels_in_row_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("train-00000-of-00001.parquet");
        write_parquet(
            &path,
            &[(png(28, 0), 5), (png(28, 100), 0), (png(28, 200), 9)],
        );
        let data = read_parquet(&path).expect("read");
        assert_eq!(data.len(), 3);
        assert_eq!(data.image_shape(), (1, 28, 28));
        assert_eq!(data.labels(), &[5, 0, 9]);
        let second = data.image(1).expect("row 1");
        assert_eq!(second[0], 100);
        assert_eq!(second[28], 128); // row 1, column 0
        assert_eq!(second[783], ((100 + 783) % 256) as u8);

        let train = dir.path().join("train.parquet");
        let test = dir.path().join("test.parquet");
        std::fs::copy(&path, &train).expect("copy");
        write_parquet(&test, &[(png(28, 7), 3)]);
        let mnist = wae_data::Mnist::from_parquet(&train, &test).expect("both");
        assert_eq!((mnist.train.len(), mnist.test.len()), (3, 1));
    }

    #[test]
    fn own_hub_images_load_through_the_image_cache_with_labels() {
        use wae_data::images::{ImageOptions, TestSplit, load_parquet};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("faces.parquet");
        // 20x20 grey PNGs, resized to 10x10 RGB (grey replicated to three planes).
        write_parquet(
            &path,
            &[(png(20, 0), 4), (png(20, 50), 7), (png(20, 90), 300)],
        );
        let options = ImageOptions {
            size: 10,
            channels: 3,
            skip_bad: false,
        };
        let cache = dir.path().join("cache");
        let loaded = load_parquet(
            std::slice::from_ref(&path),
            "image",
            &TestSplit::None,
            &options,
            Some(&cache),
            &mut |_, _| {},
        )
        .expect("load");
        assert_eq!(loaded.train.len(), 3);
        assert_eq!(loaded.train.image_shape(), (3, 10, 10));
        // Label 300 does not fit a u8 class: 0.
        assert_eq!(loaded.train.labels(), &[4, 7, 0]);
        let image = loaded.train.image(1).expect("row 1");
        assert_eq!(image[..100], image[100..200]);
        let err = load_parquet(
            &[path],
            "picture",
            &TestSplit::None,
            &options,
            Some(&cache),
            &mut |_, _| {},
        )
        .expect_err("no such column")
        .to_string();
        assert!(
            err.contains("no `picture` column") && err.contains("data.column"),
            "{err}"
        );
    }

    #[test]
    fn wrong_image_size_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.parquet");
        write_parquet(&path, &[(png(28, 0), 1), (png(32, 0), 2)]);
        let err = read_parquet(&path).expect_err("32x32");
        assert!(matches!(err, Error::BadDimensions { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("bad.parquet") && msg.contains("32x32 (row 1)"),
            "{msg}"
        );
    }

    #[test]
    fn bad_label_and_bad_png_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("labels.parquet");
        write_parquet(&path, &[(png(28, 0), 12)]);
        let msg = read_parquet(&path).expect_err("label 12").to_string();
        assert!(
            msg.contains("labels.parquet") && msg.contains("label 12 of example 0"),
            "{msg}"
        );

        write_parquet(&path, &[(b"not a png".to_vec(), 1)]);
        let msg = read_parquet(&path).expect_err("not png").to_string();
        assert!(msg.contains("row 0") && msg.contains("PNG"), "{msg}");
    }

    #[test]
    fn not_a_parquet_file_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("junk.parquet");
        std::fs::write(&path, b"this is not parquet").expect("write");
        let err = read_parquet(&path).expect_err("junk");
        assert!(matches!(err, Error::Parquet { .. }), "{err:?}");
        assert!(err.to_string().contains("junk.parquet"), "{err}");
    }
}
