//! The crate's one error type.

use std::path::PathBuf;

/// How to get the MNIST files; appended to every error about missing or bad data.
pub const HOW_TO_GET_MNIST: &str = "To get MNIST: run `cargo xtask download mnist`, \
or copy the four files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, \
t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; gzip or uncompressed) into `data/mnist/`, \
or point `--data-dir` or the environment variable WAE_DATA_DIR at a directory holding them \
(see data/README.md).";

/// How to get the CelebA cache; appended to errors about a missing cache.
pub const HOW_TO_GET_CELEBA: &str = "To build it: run `cargo xtask download celeba` \
(aligned images from the Hugging Face dataset flwrlabs/celeba), or \
`cargo xtask download celeba --from img_align_celeba.zip` with the official aligned-images \
archive (or its unpacked directory) downloaded by hand from \
https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (see data/README.md).";

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong while finding, reading, checking and batching data.
///
/// Every variant that concerns a file names that file and says how to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No directory holding the MNIST files was found.
    #[error("MNIST data directory not found. Looked in, in this order:\n{}\n{HOW_TO_GET_MNIST}",
        searched.iter().map(|s| format!("  - {s}")).collect::<Vec<_>>().join("\n"))]
    DataDirNotFound {
        /// One line per place that was tried: the path and why it did not qualify.
        searched: Vec<String>,
    },

    /// The data directory exists but lacks one of the files.
    #[error("missing MNIST file: neither `{name}.gz` nor `{name}` is in {}. {HOW_TO_GET_MNIST}", dir.display())]
    MissingFile {
        /// The directory that was searched.
        dir: PathBuf,
        /// The file's base name (without `.gz`).
        name: String,
    },

    /// Reading a file failed at the operating-system level.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A `.gz` file is not a valid gzip stream (corrupt, truncated, or not gzip at all).
    #[error("{}: corrupt gzip file ({source}). Re-download it (`cargo xtask download mnist`) \
or replace it with the uncompressed file (same name without `.gz`).", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: std::io::Error,
    },

    /// The IDX magic number is not the expected one.
    #[error("{}: wrong magic number 0x{found:08x}, expected 0x{expected:08x} ({kind}). \
This is not an MNIST {kind} file (swapped image/label files, or not an IDX file); \
re-download it with `cargo xtask download mnist`.", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic number read.
        found: u32,
        /// The magic number required.
        expected: u32,
        /// What the file should hold ("u8 images, 3 dims" or "u8 labels, 1 dim").
        kind: &'static str,
    },

    /// The images are not of the expected size (MNIST: 28x28).
    #[error("{}: wrong image dimensions {found}, expected {expected}. \
This is not MNIST; use the canonical files (`cargo xtask download mnist`).", path.display())]
    BadDimensions {
        /// The file.
        path: PathBuf,
        /// The dimensions found, e.g. "32x32".
        found: String,
        /// The dimensions required, e.g. "28x28".
        expected: String,
    },

    /// A file holds fewer bytes than its header promises.
    #[error("{}: truncated file: the header promises {expected} bytes (uncompressed), \
found only {actual}. Re-download it with `cargo xtask download mnist`.", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises (header included).
        expected: u64,
        /// Bytes present (uncompressed).
        actual: u64,
    },

    /// A file holds more bytes than its header promises.
    #[error("{}: {extra} unexpected bytes after the {expected} bytes the header promises. \
The file is corrupt; re-download it with `cargo xtask download mnist`.", path.display())]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises (header included).
        expected: u64,
        /// Bytes beyond that.
        extra: u64,
    },

    /// The MD5 of a file's uncompressed content differs from the canonical one.
    #[error("{}: checksum mismatch: the MD5 of the uncompressed content is {actual}, \
the canonical MNIST file has {expected}. The file is corrupt or not the canonical MNIST; \
re-download it with `cargo xtask download mnist`.", path.display())]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// Canonical MD5 (hex).
        expected: String,
        /// MD5 found (hex).
        actual: String,
    },

    /// An image file and its label file disagree on the number of examples.
    #[error("count mismatch: {} holds {images} images but {} holds {labels} labels. \
Both files must come from the same split (train or t10k); re-download them with \
`cargo xtask download mnist`.", images_path.display(), labels_path.display())]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Number of images in it.
        images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// Number of labels in it.
        labels: usize,
    },

    /// A label outside the classes of the dataset (MNIST: 0..=9).
    #[error("{}: label {label} of example {index} is out of range (expected 0..={max}). \
The file is corrupt; re-download it with `cargo xtask download mnist`.", path.display())]
    BadLabel {
        /// The file.
        path: PathBuf,
        /// Example index.
        index: usize,
        /// The label found.
        label: i64,
        /// Largest valid label.
        max: u8,
    },

    /// A parquet file could not be read or does not have MNIST's schema.
    #[error("{}: cannot read MNIST parquet: {message}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// Downloading from the Hugging Face hub failed.
    #[error(
        "cannot download MNIST from the Hugging Face hub: {message}. Without network, \
use the IDX files instead. {HOW_TO_GET_MNIST}"
    )]
    Hub {
        /// What went wrong.
        message: String,
    },

    /// The CelebA cache file does not exist.
    #[error("CelebA cache not found at {}. {HOW_TO_GET_CELEBA}", path.display())]
    CelebaCacheMissing {
        /// The path that was tried.
        path: PathBuf,
    },

    /// The CelebA cache file exists but is not a valid cache (wrong magic, bad header,
    /// wrong size, bad order table or checksum mismatch).
    #[error("{}: not a valid CelebA cache: {reason}. Delete it and run \
`cargo xtask download celeba` again to rebuild it.", path.display())]
    CelebaCacheCorrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A source image could not be decoded, is too small, or (CelebA) is not an aligned
    /// CelebA image.
    #[error("image {name}: {message}")]
    BadImage {
        /// The image's name (file or archive entry) or position.
        name: String,
        /// What is wrong with it.
        message: String,
    },

    /// An image array (`.npy` / `.npz`) of the wrong dtype, rank or shape, or truncated.
    #[error("{}: {message}", path.display())]
    BadArray {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// An example index beyond the end of a dataset.
    #[error("example index {index} out of range for a dataset of {len} examples")]
    IndexOutOfRange {
        /// The index asked for.
        index: usize,
        /// The dataset's length.
        len: usize,
    },

    /// A Hugging Face parquet row lacks a readable image (see
    /// `hub::image_column`, feature `hub`; MNIST files report [`Error::Parquet`] with the path).
    #[error("Hub parquet row: {message}")]
    HubRow {
        /// What is wrong with it.
        message: String,
    },

    /// A `.npy` array header is unreadable (see [`crate::npy::read_header`]).
    #[error("bad .npy header: {message}")]
    NpyHeader {
        /// What is wrong with it.
        message: String,
    },

    /// A caller passed an invalid argument (e.g. a batch size of zero).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// An error from candle while building tensors.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl From<wae_io::Error> for Error {
    /// A failed atomic write or file digest: the file the failing step touched.
    fn from(e: wae_io::Error) -> Self {
        let (path, source) = e.into_parts();
        Error::Io { path, source }
    }
}
