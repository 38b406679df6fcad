//! MNIST: loading the four IDX files and the two splits.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::checksum::{ChecksumCache, Verify};
use crate::dataset::{Dataset, seeded_permutation};
use crate::error::{Error, Result};
use crate::idx;
use crate::source::MnistSource;

/// Image height and width of MNIST.
pub const MNIST_SIDE: usize = 28;
/// Number of MNIST classes (digits 0..=9).
pub const MNIST_CLASSES: usize = 10;
/// Seed of the paper's split ([`Split::Paper`]).
pub const PAPER_SPLIT_SEED: u64 = 123;
/// Size of the test set in both splits.
pub const TEST_SIZE: usize = 10_000;

/// The four files (base names, without `.gz`) and the canonical MD5s of their
/// uncompressed content, in the order train images, train labels, test images, test labels.
pub const FILES: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte",
        "6bbc9ace898e44ae57da46a324031adb",
    ),
    (
        "train-labels-idx1-ubyte",
        "a25bea736e30d166cdddb491f175f624",
    ),
    ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
    ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"),
];

/// How MNIST's 70,000 examples are divided into train and test.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The files' own split: 60,000 train (`train-*`), 10,000 test (`t10k-*`), in file order.
    #[default]
    Standard,
    /// The split of the paper's code: train then test concatenated (70,000), permuted by
    /// [`seeded_permutation`]`(70_000, 123)`, the last 10,000 of that order as test and the
    /// first 60,000 as train. The paper's code shuffled with numpy (`np.random.seed(123)`);
    /// this crate cannot reproduce numpy's permutation, so the sets differ from the
    /// paper's in membership, not in size or procedure.
    Paper,
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Standard => "standard",
            Split::Paper => "paper",
        })
    }
}

impl FromStr for Split {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "standard" => Ok(Split::Standard),
            "paper" => Ok(Split::Paper),
            other => Err(Error::InvalidArgument(format!(
                "unknown split `{other}`; expected `standard` or `paper`"
            ))),
        }
    }
}

/// MNIST in memory: a train and a test [`Dataset`] of `(1, 28, 28)` u8 images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mnist {
    /// Training examples (60,000 in both splits).
    pub train: Dataset,
    /// Test examples (10,000 in both splits).
    pub test: Dataset,
}

impl Mnist {
    /// Reads the four IDX files of `source.dir` (`name.gz` preferred over `name`), checks
    /// their headers, sizes, labels and (unless `Verify::Skip`) canonical MD5s, and
    /// returns the [`Split::Standard`] split.
    ///
    /// Never writes into the data directory; the checksum verdict cache lives in
    /// `source.cache_dir` (or the default cache directory).
    pub fn load(source: &MnistSource) -> Result<Self> {
        let mut cache = match source.verify {
            Verify::Cached => Some(ChecksumCache::open(source.effective_cache_dir().as_deref())),
            Verify::Always => Some(ChecksumCache::open(None)),
            Verify::Skip => None,
        };
        let result = (|| {
            let train = load_pair(&source.dir, FILES[0], FILES[1], cache.as_mut())?;
            let test = load_pair(&source.dir, FILES[2], FILES[3], cache.as_mut())?;
            Ok(Mnist { train, test })
        })();
        if let Some(cache) = cache.as_mut() {
            cache.save();
        }
        result
    }

    /// Looks the directory up ([`MnistSource::resolve`]) and loads it with default checks.
    pub fn load_default() -> Result<Self> {
        Self::load(&MnistSource::locate(None)?)
    }

    /// Rearranges a [`Split::Standard`] `Mnist` (as [`Mnist::load`] returns) into `split`.
    pub fn into_split(self, split: Split) -> Result<Self> {
        match split {
            Split::Standard => Ok(self),
            Split::Paper => {
                let all = self.train.concat(&self.test)?;
                if all.len() < TEST_SIZE {
                    return Err(Error::InvalidArgument(format!(
                        "the paper split needs at least {TEST_SIZE} examples, found {}",
                        all.len()
                    )));
                }
                let order = seeded_permutation(all.len(), PAPER_SPLIT_SEED);
                let cut = all.len() - TEST_SIZE;
                Ok(Mnist {
                    train: all.subset(&order[..cut])?,
                    test: all.subset(&order[cut..])?,
                })
            }
        }
    }

    /// Writes the four IDX files, gzip-compressed, into `dir` (created if needed):
    /// `train-images-idx3-ubyte.gz` etc. from `self.train` and `self.test`, in their
    /// order, each written atomically. Applied to a [`Split::Standard`] MNIST, the
    /// uncompressed files are byte for byte the canonical ones (same MD5s), so
    /// [`Mnist::load`] reads them back with its usual checks. Returns the paths written.
    pub fn write_idx(&self, dir: &Path) -> Result<Vec<std::path::PathBuf>> {
        for (part, data) in [("train", &self.train), ("test", &self.test)] {
            if data.image_shape() != (1, MNIST_SIDE, MNIST_SIDE) {
                return Err(Error::InvalidArgument(format!(
                    "MNIST {part} images must be 1x{MNIST_SIDE}x{MNIST_SIDE}, found {:?}",
                    data.image_shape()
                )));
            }
        }
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = |k: usize| dir.join(format!("{}.gz", FILES[k].0));
        idx::write_images(&path(0), &self.train)?;
        idx::write_labels(&path(1), &self.train)?;
        idx::write_images(&path(2), &self.test)?;
        idx::write_labels(&path(3), &self.test)?;
        Ok((0..4).map(path).collect())
    }

    /// Loads and rearranges into `split` in one step.
    pub fn load_split(source: &MnistSource, split: Split) -> Result<Self> {
        Self::load(source)?.into_split(split)
    }
}

impl fmt::Display for Mnist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "train: {}", self.train.summary())?;
        write!(f, "test:  {}", self.test.summary())
    }
}

/// Loads one images file and one labels file, checks them and that they agree, then
/// (when `cache` is given) checks their MD5s.
fn load_pair(
    dir: &Path,
    (images_name, images_md5): (&str, &str),
    (labels_name, labels_md5): (&str, &str),
    cache: Option<&mut ChecksumCache>,
) -> Result<Dataset> {
    let images_path = idx::find_file(dir, images_name)?;
    let labels_path = idx::find_file(dir, labels_name)?;

    let mut images = idx::read_uncompressed(&images_path)?;
    let (image_count, images_header) =
        idx::check_images(&images_path, &images, MNIST_SIDE, MNIST_SIDE)?;
    let mut labels = idx::read_uncompressed(&labels_path)?;
    let (label_count, labels_header) =
        idx::check_labels(&labels_path, &labels, (MNIST_CLASSES - 1) as u8)?;
    if image_count != label_count {
        return Err(Error::CountMismatch {
            images_path,
            images: image_count,
            labels_path,
            labels: label_count,
        });
    }
    if let Some(cache) = cache {
        cache.verify(&images_path, &images, images_md5)?;
        cache.verify(&labels_path, &labels, labels_md5)?;
    }
    images.drain(..images_header);
    labels.drain(..labels_header);
    Dataset::new(images, labels, 1, MNIST_SIDE, MNIST_SIDE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_parses_and_prints() {
        assert_eq!("paper".parse::<Split>().expect("paper"), Split::Paper);
        assert_eq!(
            "Standard".parse::<Split>().expect("standard"),
            Split::Standard
        );
        assert!("random".parse::<Split>().is_err());
        assert_eq!(Split::Paper.to_string(), "paper");
    }

    #[test]
    fn paper_split_on_a_toy_set() {
        let n = TEST_SIZE + 6;
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let images: Vec<u8> = (0..n).flat_map(|i| [(i % 251) as u8; 784]).collect();
        let all = Dataset::new(images, labels, 1, 28, 28).expect("toy");
        let mnist = Mnist {
            train: all.subset(&(0..4).collect::<Vec<_>>()).expect("train"),
            test: all.subset(&(4..n).collect::<Vec<_>>()).expect("test"),
        };
        let paper = mnist.clone().into_split(Split::Paper).expect("paper");
        assert_eq!((paper.train.len(), paper.test.len()), (6, TEST_SIZE));
        let order = seeded_permutation(n, PAPER_SPLIT_SEED);
        assert_eq!(paper.train.labels()[0], (order[0] % 10) as u8);
        assert_eq!(paper.test.labels()[0], (order[6] % 10) as u8);
        assert_eq!(
            mnist.clone().into_split(Split::Standard).expect("std"),
            mnist
        );
    }
}
