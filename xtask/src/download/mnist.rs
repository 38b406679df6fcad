//! `cargo xtask download mnist`: the hub's parquet copy, written as the four IDX files and
//! checked against the canonical MD5s.

use std::path::Path;

use anyhow::{Context, Result, bail};
use wae_data::{MNIST_FILES, Mnist, MnistSource, Verify};

/// Fetches MNIST's parquet files from the hub, writes the IDX files into `dir` and
/// checks them against the canonical MD5s.
pub(super) fn mnist(dir: &Path, force: bool, progress: bool) -> Result<()> {
    if !force
        && MNIST_FILES
            .iter()
            .all(|(name, _)| dir.join(format!("{name}.gz")).is_file())
    {
        let source = MnistSource::from_dir(dir);
        if let Ok(m) = Mnist::load(&source) {
            println!(
                "MNIST already in {} ({} train, {} test, canonical MD5s); --force to redo",
                dir.display(),
                m.train.len(),
                m.test.len()
            );
            return Ok(());
        }
    }
    let hub = |file: &str| {
        wae_download::hub_file(wae_data::hub::HUB_DATASET, file, progress).with_context(|| {
            format!(
                "MNIST could not be fetched. Without network, copy the four IDX files \
                 (train-images-idx3-ubyte.gz, ...) into {} instead (see data/README.md)",
                dir.display()
            )
        })
    };
    let train = hub(wae_data::hub::HUB_TRAIN_FILE)?;
    let test = hub(wae_data::hub::HUB_TEST_FILE)?;
    let mnist = mnist_from_parquet(&train, &test, dir, Verify::Always)?;
    println!(
        "MNIST: {} train and {} test images from the hub dataset {} written to {} \
         as IDX files; their uncompressed content has the canonical MD5s",
        mnist.train.len(),
        mnist.test.len(),
        wae_data::hub::HUB_DATASET,
        dir.display()
    );
    Ok(())
}

/// Reads the two parquet files, writes the four gzip IDX files into `dir` and loads them
/// back with `verify`; on a failed check the written files are removed again.
fn mnist_from_parquet(train: &Path, test: &Path, dir: &Path, verify: Verify) -> Result<Mnist> {
    let mnist = Mnist::from_parquet(train, test).context("while reading MNIST's parquet files")?;
    let written = mnist
        .write_idx(dir)
        .with_context(|| format!("while writing the IDX files into {}", dir.display()))?;
    let source = MnistSource::from_dir(dir).with_verify(verify);
    match Mnist::load(&source) {
        Ok(back) if back == mnist => Ok(back),
        Ok(_) => bail!(
            "the IDX files written to {} read back differently",
            dir.display()
        ),
        Err(e) => {
            for path in &written {
                let _ = std::fs::remove_file(path);
            }
            Err(anyhow::Error::new(e).context(format!(
                "the hub's MNIST copy, written as IDX files, is not the canonical MNIST \
                 (the files were removed again); get the original IDX files instead \
                 (see data/README.md) and put them in {}",
                dir.display()
            )))
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::fs::File;

    /// Writes an MNIST-layout parquet file of PNG images with `labels`; image `i` has
    /// pixel `p` = `(i * 11 + p) % 256`.
    pub(in crate::download) fn write_mnist_parquet(
        path: &Path,
        labels: &[i64],
    ) -> wae_data::Dataset {
        use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
        use parquet::file::properties::WriterProperties;
        use parquet::file::writer::SerializedFileWriter;
        use parquet::schema::parser::parse_message_type;
        use std::sync::Arc;
        let schema = "message schema { optional group image { optional binary bytes; \
                      optional binary path (STRING); } optional int64 label; }";
        let pixels: Vec<u8> = (0..labels.len() * 784)
            .map(|k| ((k / 784) * 11 + k % 784) as u8)
            .collect();
        let pngs: Vec<ByteArray> = pixels
            .chunks(784)
            .map(|img| {
                let gray = image::GrayImage::from_raw(28, 28, img.to_vec()).unwrap();
                let mut out = std::io::Cursor::new(Vec::new());
                gray.write_to(&mut out, image::ImageFormat::Png).unwrap();
                ByteArray::from(out.into_inner())
            })
            .collect();
        let schema = Arc::new(parse_message_type(schema).unwrap());
        let props = Arc::new(WriterProperties::builder().build());
        let file = File::create(path).unwrap();
        let mut writer = SerializedFileWriter::new(file, schema, props).unwrap();
        let mut group = writer.next_row_group().unwrap();
        let n = labels.len();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<ByteArrayType>()
            .write_batch(&pngs, Some(&vec![2; n]), None)
            .unwrap();
        col.close().unwrap();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<ByteArrayType>()
            .write_batch(&[], Some(&vec![1; n]), None)
            .unwrap();
        col.close().unwrap();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<Int64Type>()
            .write_batch(labels, Some(&vec![1; n]), None)
            .unwrap();
        col.close().unwrap();
        group.close().unwrap();
        writer.close().unwrap();
        let labels = labels.iter().map(|&l| l as u8).collect();
        wae_data::Dataset::new(pixels, labels, 1, 28, 28).unwrap()
    }

    #[test]
    fn mnist_parquet_becomes_idx_files_the_loader_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let train = write_mnist_parquet(&tmp.path().join("train.parquet"), &[5, 0, 4]);
        let test = write_mnist_parquet(&tmp.path().join("test.parquet"), &[7, 2]);
        let dir = tmp.path().join("mnist");
        let got = mnist_from_parquet(
            &tmp.path().join("train.parquet"),
            &tmp.path().join("test.parquet"),
            &dir,
            Verify::Skip,
        )
        .unwrap();
        assert_eq!(got.train, train);
        assert_eq!(got.test, test);
        for (name, _) in MNIST_FILES {
            assert!(dir.join(format!("{name}.gz")).is_file(), "{name}.gz");
        }
        // The normal loader reads what was written.
        let loaded = Mnist::load(&MnistSource::from_dir(&dir).with_verify(Verify::Skip)).unwrap();
        assert_eq!((loaded.train, loaded.test), (train, test));

        // Not canonical MNIST: with the MD5 check the files are refused and removed.
        let dir2 = tmp.path().join("mnist2");
        let err = mnist_from_parquet(
            &tmp.path().join("train.parquet"),
            &tmp.path().join("test.parquet"),
            &dir2,
            Verify::Always,
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("not the canonical MNIST"), "{msg}");
        assert!(msg.contains("checksum mismatch"), "{msg}");
        assert_eq!(std::fs::read_dir(&dir2).unwrap().count(), 0);
    }
}
