//! An in-memory image dataset (u8 pixels on the host), batches and epochs.

use std::fmt;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::error::{Error, Result};

/// A permutation of `0..n`: `(0..n).collect::<Vec<_>>()` shuffled in place by
/// `rand`'s `SliceRandom::shuffle` (Fisher-Yates) with `StdRng::seed_from_u64(seed)`.
///
/// Deterministic for a given `rand` version (0.9: `StdRng` is ChaCha12); it is not
/// numpy's permutation for the same seed.
pub fn seeded_permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    order
}

/// The order of examples in epoch `epoch` of a run seeded with `seed`.
///
/// `(0..n)` shuffled by `SliceRandom::shuffle` with `StdRng::from_seed(key)`, where the
/// 32-byte `key` is `seed` (8 bytes, little-endian), `epoch` (8 bytes, little-endian),
/// then the 12 ASCII bytes `wae-epoch-v1`, then 4 zero bytes. Each (seed, epoch) pair
/// thus has its own independent order, computable without replaying earlier epochs.
pub fn epoch_permutation(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&epoch.to_le_bytes());
    let tag = b"wae-epoch-v1";
    key[16..16 + tag.len()].copy_from_slice(tag);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::from_seed(key));
    order
}

/// Where a dataset's pixels live: in memory, or in a memory-mapped file (the image
/// caches of [`crate::images`]), so a data set larger than RAM can be trained on.
#[derive(Clone)]
enum Pixels {
    Owned(Vec<u8>),
    Mapped {
        map: Arc<memmap2::Mmap>,
        start: usize,
        len: usize,
    },
}

impl Pixels {
    fn as_slice(&self) -> &[u8] {
        match self {
            Pixels::Owned(v) => v,
            Pixels::Mapped { map, start, len } => &map[*start..*start + *len],
        }
    }

    /// After bytes `[offset, offset + len)` were copied out of a mapped file, drops their
    /// pages from this process's mapping (the OS page cache keeps them), so touching a
    /// whole large file over an epoch does not grow the resident set by its size.
    fn release(&self, offset: usize, len: usize) {
        #[cfg(unix)]
        if let Pixels::Mapped { map, start, .. } = self {
            // SAFETY: the mapping is a read-only view of a file this crate wrote and
            // never modifies; MADV_DONTNEED on it only drops page-table entries, and a
            // later read faults the same bytes back in from the file.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start + offset, len)
            };
        }
        #[cfg(not(unix))]
        let _ = (offset, len);
    }
}

/// Images (u8, kept on the host) with one u8 class label each.
///
/// Images are stored contiguously, example-major, each `channels x height x width`
/// row-major; a batch gathers only its own rows and converts them to f32 in `[0, 1]`.
/// The pixels are in memory ([`Dataset::new`]) or in a memory-mapped file
/// ([`Dataset::from_mapped`]); both behave the same.
#[derive(Clone)]
pub struct Dataset {
    images: Pixels,
    labels: Vec<u8>,
    channels: usize,
    height: usize,
    width: usize,
}

impl PartialEq for Dataset {
    fn eq(&self, other: &Self) -> bool {
        self.image_shape() == other.image_shape()
            && self.labels == other.labels
            && self.images() == other.images()
    }
}

impl Eq for Dataset {}

impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("len", &self.len())
            .field("channels", &self.channels)
            .field("height", &self.height)
            .field("width", &self.width)
            .finish_non_exhaustive()
    }
}

impl Dataset {
    /// Builds a dataset from `labels.len()` images of `channels x height x width` u8
    /// pixels each, stored example-major in `images`.
    pub fn new(
        images: Vec<u8>,
        labels: Vec<u8>,
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<Self> {
        let per_image = channels * height * width;
        if per_image == 0 {
            return Err(Error::InvalidArgument(format!(
                "image shape {channels}x{height}x{width} has no pixels"
            )));
        }
        if images.len() != labels.len() * per_image {
            return Err(Error::InvalidArgument(format!(
                "{} pixels do not make {} images of {channels}x{height}x{width}",
                images.len(),
                labels.len()
            )));
        }
        Ok(Self {
            images: Pixels::Owned(images),
            labels,
            channels,
            height,
            width,
        })
    }

    /// A dataset whose pixels are bytes `[start, start + labels.len() * C * H * W)` of a
    /// memory-mapped file (example-major, as [`Dataset::new`]). Only the rows a batch
    /// reads are paged in, and their pages are released again after the copy.
    pub fn from_mapped(
        map: Arc<memmap2::Mmap>,
        start: usize,
        labels: Vec<u8>,
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<Self> {
        let len = labels.len() * channels * height * width;
        if channels * height * width == 0 {
            return Err(Error::InvalidArgument(format!(
                "image shape {channels}x{height}x{width} has no pixels"
            )));
        }
        if start.checked_add(len).is_none_or(|end| end > map.len()) {
            return Err(Error::InvalidArgument(format!(
                "{} images of {channels}x{height}x{width} from byte {start} do not fit in a \
                 mapped file of {} bytes",
                labels.len(),
                map.len()
            )));
        }
        Ok(Self {
            images: Pixels::Mapped { map, start, len },
            labels,
            channels,
            height,
            width,
        })
    }

    /// Whether the pixels are in a memory-mapped file rather than in memory.
    pub fn is_mapped(&self) -> bool {
        matches!(self.images, Pixels::Mapped { .. })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Shape of one image: `(channels, height, width)`; MNIST: `(1, 28, 28)`.
    pub fn image_shape(&self) -> (usize, usize, usize) {
        (self.channels, self.height, self.width)
    }

    /// Number of u8 values per image (`channels * height * width`).
    pub fn pixels_per_image(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// All pixels, u8, example-major: length `len() * pixels_per_image()`.
    pub fn images(&self) -> &[u8] {
        self.images.as_slice()
    }

    /// The pixels of example `index` (u8, `channels x height x width` row-major).
    pub fn image(&self, index: usize) -> Result<&[u8]> {
        self.check_index(index)?;
        let n = self.pixels_per_image();
        Ok(&self.images.as_slice()[index * n..(index + 1) * n])
    }

    /// All labels, one u8 class per example.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// All labels as a `(N,)` u32 tensor on `device`.
    pub fn labels_tensor(&self, device: &Device) -> Result<Tensor> {
        let labels: Vec<u32> = self.labels.iter().map(|&l| u32::from(l)).collect();
        Ok(Tensor::from_vec(labels, self.len(), device)?)
    }

    fn check_index(&self, index: usize) -> Result<()> {
        if index >= self.len() {
            return Err(Error::IndexOutOfRange {
                index,
                len: self.len(),
            });
        }
        Ok(())
    }

    /// The images at `indices` as a `(B, C, H, W)` f32 tensor on `device`, pixels
    /// scaled to `[0, 1]` (`u8 / 255`). Only those rows are read.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Result<Tensor> {
        let n = self.pixels_per_image();
        let mut data = Vec::with_capacity(indices.len() * n);
        for &index in indices {
            let image = self.image(index)?;
            data.extend(image.iter().map(|&p| f32::from(p) / 255.0));
        }
        // The whole range, not just the rows: the kernel maps pages around each fault
        // ("fault-around"), which the rows' own ranges would leave resident.
        self.images.release(0, self.images().len());
        Ok(Tensor::from_vec(
            data,
            (indices.len(), self.channels, self.height, self.width),
            device,
        )?)
    }

    /// The labels at `indices` as a `(B,)` u32 tensor on `device`.
    pub fn batch_labels(&self, indices: &[usize], device: &Device) -> Result<Tensor> {
        let mut labels = Vec::with_capacity(indices.len());
        for &index in indices {
            self.check_index(index)?;
            labels.push(u32::from(self.labels[index]));
        }
        Ok(Tensor::from_vec(labels, indices.len(), device)?)
    }

    /// All images as one `(N, C, H, W)` f32 tensor in `[0, 1]` on `device`
    /// (N * 784 * 4 bytes for MNIST; prefer batches for large sets).
    pub fn images_tensor(&self, device: &Device) -> Result<Tensor> {
        let indices: Vec<usize> = (0..self.len()).collect();
        self.batch(&indices, device)
    }

    /// A new dataset of the examples at `indices`, in that order (copies those rows).
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset> {
        let n = self.pixels_per_image();
        let mut images = Vec::with_capacity(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len());
        for &index in indices {
            images.extend_from_slice(self.image(index)?);
            labels.push(self.labels[index]);
        }
        Dataset::new(images, labels, self.channels, self.height, self.width)
    }

    /// Concatenation of `self` then `other` (same image shape required).
    pub fn concat(&self, other: &Dataset) -> Result<Dataset> {
        if self.image_shape() != other.image_shape() {
            return Err(Error::InvalidArgument(format!(
                "cannot concatenate images of shape {:?} and {:?}",
                self.image_shape(),
                other.image_shape()
            )));
        }
        let mut images = Vec::with_capacity(self.images().len() + other.images().len());
        images.extend_from_slice(self.images());
        images.extend_from_slice(other.images());
        let mut labels = Vec::with_capacity(self.len() + other.len());
        labels.extend_from_slice(&self.labels);
        labels.extend_from_slice(&other.labels);
        Dataset::new(images, labels, self.channels, self.height, self.width)
    }

    /// The shuffled batches of epoch `epoch` (see [`EpochIter::new`]).
    pub fn epoch(
        &self,
        batch_size: usize,
        seed: u64,
        epoch: u64,
        device: &Device,
    ) -> Result<EpochIter<'_>> {
        EpochIter::new(self, batch_size, seed, epoch, device)
    }

    /// Counts, per-class counts and pixel statistics.
    pub fn summary(&self) -> Summary {
        let max_label = self.labels.iter().copied().max().map_or(0, usize::from);
        let mut class_counts = vec![0usize; if self.is_empty() { 0 } else { max_label + 1 }];
        for &l in &self.labels {
            class_counts[usize::from(l)] += 1;
        }
        // In chunks, releasing each from a mapped file once read (see `Pixels::release`).
        let pixels = self.images();
        const CHUNK: usize = 1 << 22;
        let (mut sum, mut min_pixel, mut max_pixel) = (0u64, u8::MAX, 0u8);
        for (i, chunk) in pixels.chunks(CHUNK).enumerate() {
            for &p in chunk {
                sum += u64::from(p);
                min_pixel = min_pixel.min(p);
                max_pixel = max_pixel.max(p);
            }
            self.images.release(i * CHUNK, chunk.len());
        }
        let mean_pixel = if pixels.is_empty() {
            0.0
        } else {
            sum as f64 / pixels.len() as f64 / 255.0
        };
        Summary {
            len: self.len(),
            image_shape: self.image_shape(),
            class_counts,
            mean_pixel,
            min_pixel: if pixels.is_empty() { 0 } else { min_pixel },
            max_pixel,
        }
    }
}

/// Counts and pixel statistics of a [`Dataset`]; `Display` prints them on two lines.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Number of examples.
    pub len: usize,
    /// `(channels, height, width)` of one image.
    pub image_shape: (usize, usize, usize),
    /// `class_counts[k]` = number of examples labelled `k`.
    pub class_counts: Vec<usize>,
    /// Mean pixel value scaled to `[0, 1]` (MNIST train: about 0.1307).
    pub mean_pixel: f64,
    /// Smallest raw pixel value (u8).
    pub min_pixel: u8,
    /// Largest raw pixel value (u8).
    pub max_pixel: u8,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, h, w) = self.image_shape;
        writeln!(
            f,
            "{} images of {c}x{h}x{w} u8, pixels {}..={} (mean {:.4} after /255)",
            self.len, self.min_pixel, self.max_pixel, self.mean_pixel
        )?;
        let per_class: Vec<String> = self
            .class_counts
            .iter()
            .enumerate()
            .map(|(k, n)| format!("{k}:{n}"))
            .collect();
        write!(f, "per class: {}", per_class.join(" "))
    }
}

/// One batch from an [`EpochIter`].
#[derive(Clone, Debug)]
pub struct Batch {
    /// Images, `(B, C, H, W)` f32 in `[0, 1]`.
    pub images: Tensor,
    /// Labels, `(B,)` u32.
    pub labels: Tensor,
    /// Dataset indices of the `B` examples, in batch order.
    pub indices: Vec<usize>,
    /// Position of this batch in its epoch (0-based); resume after it with
    /// `EpochIter::new_at(.., epoch, batch_index + 1, ..)`.
    pub batch_index: usize,
}

/// The batches of one epoch, in a seeded order, built on demand.
///
/// The order of epoch `e` is [`epoch_permutation`]`(len, seed, e)` (or `0..len` for
/// [`EpochIter::sequential`]); batch `k` holds positions `k * batch_size ..
/// (k + 1) * batch_size` of that order. The last partial batch is dropped unless
/// [`EpochIter::with_drop_last`]`(false)`. Because the order depends only on
/// `(seed, epoch)`, training resumes exactly mid-epoch with [`EpochIter::new_at`].
/// Each batch gathers only its own rows from the host-side u8 images.
#[derive(Debug)]
pub struct EpochIter<'a> {
    dataset: &'a Dataset,
    device: Device,
    batch_size: usize,
    order: Vec<usize>,
    next_batch: usize,
    drop_last: bool,
}

impl<'a> EpochIter<'a> {
    /// Epoch `epoch` of a run seeded with `seed`, from its first batch.
    pub fn new(
        dataset: &'a Dataset,
        batch_size: usize,
        seed: u64,
        epoch: u64,
        device: &Device,
    ) -> Result<Self> {
        Self::new_at(dataset, batch_size, seed, epoch, 0, device)
    }

    /// Epoch `epoch` of a run seeded with `seed`, starting at batch `start_batch`
    /// (`0..=num_batches()`; `num_batches()` gives an empty iterator).
    pub fn new_at(
        dataset: &'a Dataset,
        batch_size: usize,
        seed: u64,
        epoch: u64,
        start_batch: usize,
        device: &Device,
    ) -> Result<Self> {
        let order = epoch_permutation(dataset.len(), seed, epoch);
        Self::with_order(dataset, batch_size, order, start_batch, true, device)
    }

    /// All examples in dataset order, last partial batch kept (for evaluation).
    pub fn sequential(dataset: &'a Dataset, batch_size: usize, device: &Device) -> Result<Self> {
        let order = (0..dataset.len()).collect();
        Self::with_order(dataset, batch_size, order, 0, false, device)
    }

    fn with_order(
        dataset: &'a Dataset,
        batch_size: usize,
        order: Vec<usize>,
        start_batch: usize,
        drop_last: bool,
        device: &Device,
    ) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::InvalidArgument("batch size must be positive".into()));
        }
        let iter = Self {
            dataset,
            device: device.clone(),
            batch_size,
            order,
            next_batch: start_batch,
            drop_last,
        };
        if start_batch > iter.num_batches() {
            return Err(Error::InvalidArgument(format!(
                "start batch {start_batch} is past the end of an epoch of {} batches",
                iter.num_batches()
            )));
        }
        Ok(iter)
    }

    /// Keep (`false`) or drop (`true`, the default for shuffled epochs) the last
    /// batch when it has fewer than `batch_size` examples.
    pub fn with_drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Number of batches in the whole epoch (not only those left).
    pub fn num_batches(&self) -> usize {
        let n = self.order.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// Index of the next batch to be yielded (the resume position).
    pub fn position(&self) -> usize {
        self.next_batch
    }

    /// The example order of this epoch.
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

impl Iterator for EpochIter<'_> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next_batch >= self.num_batches() {
            return None;
        }
        let start = self.next_batch * self.batch_size;
        let end = (start + self.batch_size).min(self.order.len());
        let indices = self.order[start..end].to_vec();
        let batch_index = self.next_batch;
        self.next_batch += 1;
        let result = self
            .dataset
            .batch(&indices, &self.device)
            .and_then(|images| {
                let labels = self.dataset.batch_labels(&indices, &self.device)?;
                Ok(Batch {
                    images,
                    labels,
                    indices,
                    batch_index,
                })
            });
        Some(result)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.num_batches().saturating_sub(self.next_batch);
        (left, Some(left))
    }
}

impl ExactSizeIterator for EpochIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    /// `n` images of 1x2x3 where every pixel of image `i` is `i`; label `i % 10`.
    fn toy(n: usize) -> Dataset {
        let images = (0..n)
            .flat_map(|i| std::iter::repeat_n(i as u8, 6))
            .collect();
        let labels = (0..n).map(|i| (i % 10) as u8).collect();
        Dataset::new(images, labels, 1, 2, 3).expect("toy dataset")
    }

    fn indices(iter: EpochIter<'_>) -> Vec<Vec<usize>> {
        iter.map(|b| b.expect("batch").indices).collect()
    }

    #[test]
    fn new_rejects_inconsistent_sizes() {
        assert!(Dataset::new(vec![0; 7], vec![0], 1, 2, 3).is_err());
        assert!(Dataset::new(vec![], vec![], 0, 2, 3).is_err());
    }

    #[test]
    fn batch_gathers_rows_scaled_to_unit_interval() {
        let data = toy(20);
        let batch = data.batch(&[3, 17, 3], &Device::Cpu).expect("batch");
        assert_eq!(batch.dims(), &[3, 1, 2, 3]);
        assert_eq!(batch.dtype(), DType::F32);
        let v = batch
            .flatten_all()
            .expect("flat")
            .to_vec1::<f32>()
            .expect("vec");
        assert_eq!(v[0], 3.0 / 255.0);
        assert_eq!(v[6], 17.0 / 255.0);
        let labels = data.batch_labels(&[3, 17], &Device::Cpu).expect("labels");
        assert_eq!(labels.to_vec1::<u32>().expect("vec"), vec![3, 7]);
        assert_eq!(
            data.labels_tensor(&Device::Cpu).expect("labels").dims(),
            &[20]
        );
        let err = data.batch(&[20], &Device::Cpu).expect_err("out of range");
        assert!(err.to_string().contains("index 20"), "{err}");
    }

    #[test]
    fn subset_concat_and_summary() {
        let data = toy(12);
        let sub = data.subset(&[11, 0, 5]).expect("subset");
        assert_eq!(sub.len(), 3);
        assert_eq!(sub.labels(), &[1, 0, 5]);
        assert_eq!(sub.image(0).expect("0"), &[11; 6]);
        let both = sub.concat(&data).expect("concat");
        assert_eq!(both.len(), 15);
        assert_eq!(both.image(3).expect("3"), data.image(0).expect("0"));
        let s = sub.summary();
        assert_eq!(s.class_counts, vec![1, 1, 0, 0, 0, 1]);
        assert_eq!((s.min_pixel, s.max_pixel), (0, 11));
        assert!((s.mean_pixel - 16.0 / 3.0 / 255.0).abs() < 1e-12);
        let text = s.to_string();
        assert!(text.starts_with("3 images of 1x2x3 u8"), "{text}");
        assert!(text.contains("per class: 0:1 1:1 2:0"), "{text}");
    }

    #[test]
    fn permutations_are_seeded() {
        let p = epoch_permutation(50, 9, 4);
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_eq!(p, epoch_permutation(50, 9, 4));
        assert_ne!(p, epoch_permutation(50, 9, 5));
        assert_ne!(p, epoch_permutation(50, 10, 4));
        assert_ne!(p, (0..50).collect::<Vec<_>>());
        assert_eq!(seeded_permutation(50, 3), seeded_permutation(50, 3));
        assert_ne!(seeded_permutation(50, 3), seeded_permutation(50, 4));
    }

    #[test]
    fn epoch_covers_each_example_once_and_drops_the_partial_batch() {
        let data = toy(23);
        let iter = EpochIter::new(&data, 5, 1, 0, &Device::Cpu).expect("epoch");
        assert_eq!((iter.num_batches(), iter.len()), (4, 4));
        let order = iter.order().to_vec();
        let batches = indices(iter);
        assert_eq!(batches.len(), 4);
        assert!(batches.iter().all(|b| b.len() == 5));
        assert_eq!(batches.concat(), order[..20]);

        let kept = EpochIter::new(&data, 5, 1, 0, &Device::Cpu)
            .expect("epoch")
            .with_drop_last(false);
        let batches = indices(kept);
        assert_eq!(batches.len(), 5);
        assert_eq!(batches[4].len(), 3);
        let mut all = batches.concat();
        all.sort_unstable();
        assert_eq!(all, (0..23).collect::<Vec<_>>());
    }

    #[test]
    fn resuming_mid_epoch_gives_the_remaining_batches() {
        let data = toy(40);
        let full = indices(EpochIter::new(&data, 6, 77, 3, &Device::Cpu).expect("epoch"));
        for start in 0..=full.len() {
            let iter = EpochIter::new_at(&data, 6, 77, 3, start, &Device::Cpu).expect("resume");
            assert_eq!(iter.position(), start);
            assert_eq!(indices(iter), full[start..]);
        }
        let err = EpochIter::new_at(&data, 6, 77, 3, full.len() + 1, &Device::Cpu);
        assert!(err.is_err());
        assert!(EpochIter::new(&data, 0, 77, 3, &Device::Cpu).is_err());
        // Batch contents follow the indices.
        let mut iter = EpochIter::new(&data, 6, 77, 3, &Device::Cpu).expect("epoch");
        let b = iter.next().expect("batch").expect("ok");
        assert_eq!(b.images.dims(), &[6, 1, 2, 3]);
        let labels = b.labels.to_vec1::<u32>().expect("labels");
        let expected: Vec<u32> = b.indices.iter().map(|&i| (i % 10) as u32).collect();
        assert_eq!(labels, expected);
    }

    #[test]
    fn sequential_keeps_dataset_order() {
        let data = toy(7);
        let batches = indices(EpochIter::sequential(&data, 3, &Device::Cpu).expect("seq"));
        assert_eq!(batches, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
    }
}
