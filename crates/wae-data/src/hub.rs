//! MNIST from the Hugging Face hub (dataset `ylecun/mnist`, its parquet files).
//!
//! Enabled by the cargo feature `hub`. The files are downloaded by `hf-hub` into its
//! own cache (`HF_HOME`, by default `~/.cache/huggingface`), never into the data
//! directory. Each parquet row holds `image: struct {bytes: binary (PNG), path: string}`
//! and `label: int64`, as in the hub's `datasets` export.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::mnist::{MNIST_CLASSES, MNIST_SIDE, Mnist};

/// The hub dataset holding MNIST.
pub const HUB_DATASET: &str = "ylecun/mnist";
/// Path of the training parquet file inside [`HUB_DATASET`].
pub const HUB_TRAIN_FILE: &str = "mnist/train-00000-of-00001.parquet";
/// Path of the test parquet file inside [`HUB_DATASET`].
pub const HUB_TEST_FILE: &str = "mnist/test-00000-of-00001.parquet";

/// Reads an MNIST parquet file (HF layout) into a `(1, 28, 28)` dataset, in row order.
///
/// Every image must be a 28x28 PNG (converted to 8-bit grey) and every label in 0..=9.
pub fn read_parquet(path: &Path) -> Result<Dataset> {
    let perr = |message: String| Error::Parquet {
        path: path.to_path_buf(),
        message,
    };
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = SerializedFileReader::new(file).map_err(|e| perr(e.to_string()))?;
    let rows = usize::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0);
    let mut images = Vec::with_capacity(rows * MNIST_SIDE * MNIST_SIDE);
    let mut labels = Vec::with_capacity(rows);
    let iter = reader.get_row_iter(None).map_err(|e| perr(e.to_string()))?;
    for (index, row) in iter.enumerate() {
        let row = row.map_err(|e| perr(format!("row {index}: {e}")))?;
        let png = image_cell(&row)
            .map_err(|m| perr(format!("row {index}: {m}")))?
            .bytes;
        let grey = image::load_from_memory_with_format(png, image::ImageFormat::Png)
            .map_err(|e| perr(format!("row {index}: cannot decode the PNG: {e}")))?
            .to_luma8();
        if grey.width() as usize != MNIST_SIDE || grey.height() as usize != MNIST_SIDE {
            return Err(Error::BadDimensions {
                path: path.to_path_buf(),
                found: format!("{}x{} (row {index})", grey.width(), grey.height()),
                expected: format!("{MNIST_SIDE}x{MNIST_SIDE}"),
            });
        }
        images.extend_from_slice(grey.as_raw());
        let label = label(&row).map_err(|m| perr(format!("row {index}: {m}")))?;
        match u8::try_from(label) {
            Ok(l) if usize::from(l) < MNIST_CLASSES => labels.push(l),
            _ => {
                return Err(Error::BadLabel {
                    path: path.to_path_buf(),
                    index,
                    label,
                    max: (MNIST_CLASSES - 1) as u8,
                });
            }
        }
    }
    Dataset::new(images, labels, 1, MNIST_SIDE, MNIST_SIDE)
}

fn column<'r>(row: &'r Row, name: &str) -> Option<&'r Field> {
    row.get_column_iter()
        .find(|(n, _)| n.as_str() == name)
        .map(|(_, f)| f)
}

/// The image cell of a parquet row written by Hugging Face `datasets`: its encoded
/// bytes (PNG, JPEG, ...) and the original file name when the row records one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubImage<'r> {
    /// The encoded image file.
    pub bytes: &'r [u8],
    /// `image.path`, when present and not empty.
    pub path: Option<&'r str>,
}

/// Reads the `image` column of `row`: a struct `{bytes: binary, path: string}` (the
/// `datasets` export) or plain binary. The one reader of Hub image rows: MNIST here and
/// the CelebA shards of `cargo xtask download celeba` use it. A row without it is
/// [`Error::HubRow`].
pub fn image_column(row: &Row) -> Result<HubImage<'_>> {
    image_cell(row).map_err(|message| Error::HubRow { message })
}

fn image_cell(row: &Row) -> std::result::Result<HubImage<'_>, String> {
    image_cell_in(row, "image")
}

/// The encoded image in column `name` of `row` (see [`image_column`]).
pub(crate) fn image_cell_in<'r>(
    row: &'r Row,
    name: &str,
) -> std::result::Result<HubImage<'r>, String> {
    match column(row, name) {
        Some(Field::Group(image)) => {
            let bytes = match column(image, "bytes") {
                Some(Field::Bytes(bytes)) => bytes.data(),
                Some(other) => {
                    return Err(format!(
                        "`image.bytes` is {other:?}, expected binary image bytes"
                    ));
                }
                None => return Err("no `image.bytes` field".into()),
            };
            let path = match column(image, "path") {
                Some(Field::Str(p)) if !p.is_empty() => Some(p.as_str()),
                _ => None,
            };
            Ok(HubImage { bytes, path })
        }
        Some(Field::Bytes(bytes)) => Ok(HubImage {
            bytes: bytes.data(),
            path: None,
        }),
        Some(other) => Err(format!(
            "`{name}` is {other:?}, expected a struct {{bytes, path}} or binary"
        )),
        None => Err(format!(
            "no `{name}` column (set data.column); the columns are: {}",
            row.get_column_iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

pub(crate) fn label(row: &Row) -> std::result::Result<i64, String> {
    match column(row, "label") {
        Some(Field::Long(v)) => Ok(*v),
        Some(Field::Int(v)) => Ok(i64::from(*v)),
        Some(Field::Short(v)) => Ok(i64::from(*v)),
        Some(Field::Byte(v)) => Ok(i64::from(*v)),
        Some(Field::ULong(v)) => i64::try_from(*v).map_err(|e| e.to_string()),
        Some(Field::UInt(v)) => Ok(i64::from(*v)),
        Some(Field::UShort(v)) => Ok(i64::from(*v)),
        Some(Field::UByte(v)) => Ok(i64::from(*v)),
        Some(other) => Err(format!("`label` is {other:?}, expected an integer")),
        None => Err("no `label` column".into()),
    }
}

impl Mnist {
    /// Reads MNIST from its two parquet files (HF layout, see [`read_parquet`]).
    pub fn from_parquet(train: &Path, test: &Path) -> Result<Self> {
        Ok(Mnist {
            train: read_parquet(train)?,
            test: read_parquet(test)?,
        })
    }

    /// Downloads (or finds in the hf-hub cache) MNIST's parquet files from the hub dataset
    /// [`HUB_DATASET`] and reads them ([`Split::Standard`](crate::Split::Standard) order).
    /// Needs network on first use.
    pub fn from_hub() -> Result<Self> {
        let (train, test) = download_parquet()?;
        Self::from_parquet(&train, &test)
    }
}

/// Downloads (or finds in the hf-hub cache) the train and test parquet files; returns
/// their local paths.
pub fn download_parquet() -> Result<(PathBuf, PathBuf)> {
    // wae-download's Hub access: the hf-hub cache under HF_HOME first, the network only
    // when HF_HUB_OFFLINE is not set.
    let get = |file: &str| {
        wae_download::hub_file(HUB_DATASET, file, false).map_err(|e| Error::Hub {
            message: e.to_string(),
        })
    };
    Ok((get(HUB_TRAIN_FILE)?, get(HUB_TEST_FILE)?))
}
