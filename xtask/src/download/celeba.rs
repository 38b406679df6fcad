//! `cargo xtask download celeba`: the aligned images from the hub's parquet shards or a
//! local zip / directory, cropped and resized to 64x64 into one cache file
//! ([`wae_data::celeba`]).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use wae_data::celeba::{
    CACHE_FILE_NAME, CELEBA_IMAGES, CELEBA_SPLIT_SEED, CacheHeader, CacheWriter, CelebA,
};

/// The hub dataset holding the aligned CelebA images.
pub const CELEBA_HUB_DATASET: &str = "flwrlabs/celeba";
/// The folder of [`CELEBA_HUB_DATASET`] with the aligned images' parquet shards.
pub const CELEBA_HUB_FOLDER: &str = "img_align+identity+attr/";

/// Where CelebA's aligned images come from, in source order (see [`CelebaSource::open`]).
#[derive(Debug)]
enum CelebaSource {
    /// Image files, sorted by name.
    Dir(Vec<PathBuf>),
    /// Entries of a zip archive, sorted by name: (name, index in the archive).
    Zip {
        path: PathBuf,
        entries: Vec<(String, usize)>,
    },
    /// Parquet shards in order (train, valid, test, then others; by name within each),
    /// with their row counts.
    Parquet(Vec<(PathBuf, usize)>),
}

/// One encoded image and its position in the source order.
struct Encoded {
    index: usize,
    name: String,
    bytes: Vec<u8>,
}

fn is_image_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let base = lower.rsplit('/').next().unwrap_or(&lower);
    !base.starts_with('.')
        && !lower.contains("__macosx/")
        && [".jpg", ".jpeg", ".png"].iter().any(|e| lower.ends_with(e))
}

/// Shard order: train, valid/validation/val, test, anything else; then by path.
fn shard_rank(path: &Path) -> (u8, PathBuf) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let rank = if name.starts_with("train") {
        0
    } else if name.starts_with("val") {
        1
    } else if name.starts_with("test") {
        2
    } else {
        3
    };
    (rank, path.to_path_buf())
}

impl CelebaSource {
    /// A local `img_align_celeba.zip`, or a directory of aligned images (or one holding an
    /// `img_align_celeba/` folder), or a directory of parquet shards.
    fn open(path: &Path) -> Result<Self> {
        if path.is_file() {
            let is_zip = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
            ensure!(
                is_zip,
                "{}: expected a .zip archive or a directory",
                path.display()
            );
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let mut archive = zip::ZipArchive::new(file)
                .with_context(|| format!("{}: not a readable zip archive", path.display()))?;
            let mut entries = Vec::new();
            for i in 0..archive.len() {
                let entry = archive
                    .by_index_raw(i)
                    .with_context(|| format!("{}: entry {i}", path.display()))?;
                let name = entry
                    .name()
                    .with_context(|| format!("{}: name of entry {i}", path.display()))?
                    .into_owned();
                if entry.is_file() && is_image_name(&name) {
                    entries.push((name, i));
                }
            }
            entries.sort();
            ensure!(
                !entries.is_empty(),
                "{}: no JPEG/PNG images inside",
                path.display()
            );
            return Ok(Self::Zip {
                path: path.to_path_buf(),
                entries,
            });
        }
        ensure!(
            path.is_dir(),
            "{}: no such file or directory. {}",
            path.display(),
            wae_data::HOW_TO_GET_CELEBA
        );
        let nested = path.join("img_align_celeba");
        let dir = if nested.is_dir() {
            nested
        } else {
            path.to_path_buf()
        };
        let mut images = Vec::new();
        let mut shards = Vec::new();
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
        {
            let p = entry?.path();
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if p.is_file() && is_image_name(&name) {
                images.push(p);
            } else if p.is_file() && name.ends_with(".parquet") {
                shards.push(p);
            }
        }
        if !images.is_empty() {
            images.sort();
            return Ok(Self::Dir(images));
        }
        ensure!(
            !shards.is_empty(),
            "{}: no JPEG/PNG images or parquet shards inside",
            dir.display()
        );
        Self::parquet(shards)
    }

    fn parquet(mut shards: Vec<PathBuf>) -> Result<Self> {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        shards.sort_by_key(|p| shard_rank(p));
        let mut counted = Vec::new();
        for shard in shards {
            let file =
                File::open(&shard).with_context(|| format!("cannot open {}", shard.display()))?;
            let reader = SerializedFileReader::new(file)
                .with_context(|| format!("{}: not a readable parquet file", shard.display()))?;
            let rows = usize::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0);
            counted.push((shard, rows));
        }
        Ok(Self::Parquet(counted))
    }

    fn len(&self) -> usize {
        match self {
            Self::Dir(files) => files.len(),
            Self::Zip { entries, .. } => entries.len(),
            Self::Parquet(shards) => shards.iter().map(|(_, n)| n).sum(),
        }
    }

    /// What the cache header records about the source and its order.
    fn describe(&self) -> String {
        match self {
            Self::Dir(files) => format!(
                "directory {}: image files sorted by name",
                files
                    .first()
                    .and_then(|f| f.parent())
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            ),
            Self::Zip { path, .. } => format!("{}: entries sorted by name", path.display()),
            Self::Parquet(shards) => format!(
                "{} parquet shards ({}), train/valid/test shard order, rows in file order",
                shards.len(),
                shards
                    .first()
                    .and_then(|(p, _)| p.parent())
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            ),
        }
    }

    /// Hands every image, in source order, to `sink`.
    fn read_all(&self, sink: &mut dyn FnMut(Encoded) -> Result<()>) -> Result<()> {
        match self {
            Self::Dir(files) => {
                for (index, path) in files.iter().enumerate() {
                    let bytes = std::fs::read(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    let name = path.display().to_string();
                    sink(Encoded { index, name, bytes })?;
                }
            }
            Self::Zip { path, entries } => {
                let file =
                    File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
                let mut archive = zip::ZipArchive::new(file)?;
                for (index, (name, at)) in entries.iter().enumerate() {
                    let mut entry = archive
                        .by_index(*at)
                        .with_context(|| format!("{}: entry {name}", path.display()))?;
                    let mut bytes = Vec::with_capacity(entry.size() as usize);
                    entry
                        .read_to_end(&mut bytes)
                        .with_context(|| format!("{}: cannot inflate {name}", path.display()))?;
                    sink(Encoded {
                        index,
                        name: name.clone(),
                        bytes,
                    })?;
                }
            }
            Self::Parquet(shards) => {
                use parquet::file::reader::{FileReader, SerializedFileReader};
                let mut index = 0;
                for (shard, rows) in shards {
                    let file = File::open(shard)
                        .with_context(|| format!("cannot open {}", shard.display()))?;
                    let reader = SerializedFileReader::new(file).with_context(|| {
                        format!("{}: not a readable parquet file", shard.display())
                    })?;
                    let iter = reader
                        .get_row_iter(None)
                        .with_context(|| format!("{}: cannot read rows", shard.display()))?;
                    let mut seen = 0;
                    for (row_number, row) in iter.enumerate() {
                        let row =
                            row.with_context(|| format!("{}: row {row_number}", shard.display()))?;
                        let image = wae_data::hub::image_column(&row)
                            .with_context(|| format!("{}: row {row_number}", shard.display()))?;
                        let (path, bytes) = (image.path.map(str::to_owned), image.bytes.to_vec());
                        let name =
                            path.unwrap_or_else(|| format!("{}#{row_number}", shard.display()));
                        sink(Encoded { index, name, bytes })?;
                        index += 1;
                        seen += 1;
                    }
                    ensure!(
                        seen == *rows,
                        "{}: {seen} rows read, the metadata says {rows}",
                        shard.display()
                    );
                }
            }
        }
        Ok(())
    }
}

/// Builds the CelebA cache in `dir` from `from` (local) or the hub copy.
pub(super) fn celeba(
    dir: &Path,
    from: Option<&Path>,
    test_size: usize,
    force: bool,
    progress: bool,
) -> Result<()> {
    let dest = dir.join(CACHE_FILE_NAME);
    if !force && let Ok(header) = CelebA::read_header(&dest) {
        println!(
            "CelebA cache already at {} ({} images, {} test); --force to rebuild",
            dest.display(),
            header.count,
            header.test_count
        );
        return Ok(());
    }
    let source = match from {
        Some(path) => CelebaSource::open(path)?,
        None => CelebaSource::parquet(celeba_hub_shards(progress)?)?,
    };
    let start = Instant::now();
    let header = build_celeba_cache(&source, &dest, test_size, progress)?;
    println!(
        "CelebA: {} images ({} train, {} test: seed-{} shuffle, last {} as test) cropped to \
         {:?} and resized to 64x64 (Lanczos, as PIL) into {} in {:.0} s",
        header.count,
        header.count - header.test_count,
        header.test_count,
        header.split_seed,
        header.test_count,
        header.crop_box,
        dest.display(),
        start.elapsed().as_secs_f64()
    );
    if header.count != CELEBA_IMAGES {
        println!(
            "note: the full aligned CelebA has {CELEBA_IMAGES} images; this source had {}",
            header.count
        );
    }
    Ok(())
}

/// Lists [`CELEBA_HUB_DATASET`] and fetches its parquet shards of the aligned images.
fn celeba_hub_shards(progress: bool) -> Result<Vec<PathBuf>> {
    let by_hand = || {
        format!(
            "CelebA could not be fetched from the hub dataset {CELEBA_HUB_DATASET}. Without \
             network, download img_align_celeba.zip from \
             https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html by hand and run \
             `cargo xtask download celeba --from img_align_celeba.zip`"
        )
    };
    let files = wae_download::hub_dataset_files(CELEBA_HUB_DATASET).with_context(by_hand)?;
    let shards: Vec<&String> = files
        .iter()
        .filter(|f| f.starts_with(CELEBA_HUB_FOLDER) && f.ends_with(".parquet"))
        .collect();
    ensure!(
        !shards.is_empty(),
        "the hub dataset {CELEBA_HUB_DATASET} has no parquet files under {CELEBA_HUB_FOLDER} \
         (its files: {}). {}",
        files.join(", "),
        by_hand()
    );
    shards
        .into_iter()
        .map(|f| wae_download::hub_file(CELEBA_HUB_DATASET, f, progress).with_context(by_hand))
        .collect()
}

/// Decodes, crops and resizes every image of `source` (in parallel, in chunks) into a
/// new cache at `dest`.
fn build_celeba_cache(
    source: &CelebaSource,
    dest: &Path,
    test_size: usize,
    progress: bool,
) -> Result<CacheHeader> {
    let count = source.len();
    ensure!(
        count > test_size,
        "{count} images cannot give {test_size} test images and a training set \
         (use --test-size)"
    );
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("while creating {}", parent.display()))?;
    }
    let mut writer = CacheWriter::create(
        dest,
        count,
        test_size,
        CELEBA_SPLIT_SEED,
        &source.describe(),
    )?;
    let bar = if progress {
        let bar = ProgressBar::new(count as u64);
        bar.set_draw_target(ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("CelebA 64x64 [{bar:30}] {pos}/{len} images, eta {eta}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    const CHUNK: usize = 512;
    let mut chunk: Vec<Encoded> = Vec::with_capacity(CHUNK);
    let flush = |chunk: &mut Vec<Encoded>, writer: &mut CacheWriter| -> Result<()> {
        let done: Vec<(usize, wae_data::Result<Vec<u8>>)> = chunk
            .par_iter()
            .map(|e| {
                (
                    e.index,
                    wae_data::celeba::preprocess_encoded(&e.name, &e.bytes),
                )
            })
            .collect();
        for (index, pixels) in done {
            writer.write(index, &pixels?)?;
        }
        bar.inc(chunk.len() as u64);
        chunk.clear();
        Ok(())
    };
    source.read_all(&mut |encoded| {
        ensure!(
            encoded.index < count,
            "the source holds more images than it announced"
        );
        chunk.push(encoded);
        if chunk.len() == CHUNK {
            flush(&mut chunk, &mut writer)?;
        }
        Ok(())
    })?;
    flush(&mut chunk, &mut writer)?;
    bar.finish_and_clear();
    Ok(writer.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::download::mnist::tests::write_mnist_parquet;

    /// Aligned-size test image `k`: a colour ramp shifted by `k`.
    fn face(k: u32) -> image::RgbImage {
        image::RgbImage::from_fn(178, 218, |x, y| {
            image::Rgb([
                ((x + 9 * k) % 256) as u8,
                ((y + 5 * k) % 256) as u8,
                (40 * k) as u8,
            ])
        })
    }

    fn encode(img: &image::RgbImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    /// Five aligned images named 000001..000005, as PNG (lossless, so the expected
    /// pixels are exact) except 000004 as JPEG.
    fn faces() -> Vec<(String, Vec<u8>)> {
        (1..=5u32)
            .map(|k| {
                let (ext, format) = if k == 4 {
                    ("jpg", image::ImageFormat::Jpeg)
                } else {
                    ("png", image::ImageFormat::Png)
                };
                (format!("{k:06}.{ext}"), encode(&face(k), format))
            })
            .collect()
    }

    /// Checks a cache built from [`faces`]: source index `i` is file `i + 1`.
    fn check_faces_cache(path: &Path, images: &[(String, Vec<u8>)]) -> CelebA {
        let celeba = CelebA::load(path).unwrap();
        assert_eq!((celeba.train.len(), celeba.test.len()), (3, 2));
        let order = wae_data::seeded_permutation(5, CELEBA_SPLIT_SEED);
        for (slot, &source) in order.iter().enumerate() {
            let expected =
                wae_data::celeba::preprocess_encoded(&images[source].0, &images[source].1).unwrap();
            let got = if slot < 3 {
                celeba.train.image(slot).unwrap()
            } else {
                celeba.test.image(slot - 3).unwrap()
            };
            assert_eq!(
                got,
                expected.as_slice(),
                "slot {slot} = {}",
                images[source].0
            );
        }
        celeba
    }

    #[test]
    fn celeba_cache_from_a_zip_and_from_a_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let images = faces();
        // The archive lists the files out of order, inside a folder, with junk beside.
        let zip_path = tmp.path().join("img_align_celeba.zip");
        let mut zip = zip::ZipWriter::new(File::create(&zip_path).unwrap());
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.add_directory("img_align_celeba/", deflated).unwrap();
        for i in [3, 0, 4, 1, 2] {
            zip.start_file(format!("img_align_celeba/{}", images[i].0), deflated)
                .unwrap();
            std::io::Write::write_all(&mut zip, &images[i].1).unwrap();
        }
        zip.start_file("img_align_celeba/README.txt", deflated)
            .unwrap();
        zip.start_file("__MACOSX/img_align_celeba/._000001.png", deflated)
            .unwrap();
        zip.finish().unwrap();

        let out = tmp.path().join("zip-cache");
        celeba(&out, Some(&zip_path), 2, false, false).unwrap();
        let from_zip = check_faces_cache(&out.join(CACHE_FILE_NAME), &images);
        assert!(from_zip.header.source.contains("sorted by name"));
        // A second run finds the cache and does nothing.
        let before = std::fs::metadata(out.join(CACHE_FILE_NAME))
            .unwrap()
            .modified()
            .unwrap();
        celeba(&out, Some(&zip_path), 2, false, false).unwrap();
        let after = std::fs::metadata(out.join(CACHE_FILE_NAME))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);

        // The same images unpacked into a directory (holding img_align_celeba/).
        let root = tmp.path().join("unpacked");
        std::fs::create_dir_all(root.join("img_align_celeba")).unwrap();
        for (name, bytes) in &images {
            std::fs::write(root.join("img_align_celeba").join(name), bytes).unwrap();
        }
        let out = tmp.path().join("dir-cache");
        celeba(&out, Some(&root), 2, false, false).unwrap();
        let from_dir = check_faces_cache(&out.join(CACHE_FILE_NAME), &images);
        assert_eq!(
            (from_dir.train, from_dir.test),
            (from_zip.train, from_zip.test)
        );

        // Too few images for the test size; a wrong-size image names itself.
        let err = celeba(&tmp.path().join("x"), Some(&root), 5, true, false).unwrap_err();
        assert!(format!("{err:#}").contains("--test-size"), "{err:#}");
        std::fs::write(
            root.join("img_align_celeba/000006.png"),
            encode(&image::RgbImage::new(64, 64), image::ImageFormat::Png),
        )
        .unwrap();
        let err = celeba(&tmp.path().join("y"), Some(&root), 2, true, false).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("000006.png") && msg.contains("178x218"),
            "{msg}"
        );
        assert!(!tmp.path().join("y").join(CACHE_FILE_NAME).exists());
    }

    /// Writes a hub-layout parquet shard: `image {bytes, path}` and an int `celeb_id`.
    fn write_celeba_shard(path: &Path, rows: &[(String, Vec<u8>)]) {
        use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
        use parquet::file::properties::WriterProperties;
        use parquet::file::writer::SerializedFileWriter;
        use parquet::schema::parser::parse_message_type;
        use std::sync::Arc;
        let schema = "message schema { optional group image { optional binary bytes; \
                      optional binary path (STRING); } optional int64 celeb_id; }";
        let schema = Arc::new(parse_message_type(schema).unwrap());
        let props = Arc::new(WriterProperties::builder().build());
        let mut writer =
            SerializedFileWriter::new(File::create(path).unwrap(), schema, props).unwrap();
        let mut group = writer.next_row_group().unwrap();
        let n = rows.len();
        let bytes: Vec<ByteArray> = rows
            .iter()
            .map(|(_, b)| ByteArray::from(b.clone()))
            .collect();
        let names: Vec<ByteArray> = rows
            .iter()
            .map(|(n, _)| ByteArray::from(n.as_str()))
            .collect();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<ByteArrayType>()
            .write_batch(&bytes, Some(&vec![2; n]), None)
            .unwrap();
        col.close().unwrap();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<ByteArrayType>()
            .write_batch(&names, Some(&vec![2; n]), None)
            .unwrap();
        col.close().unwrap();
        let mut col = group.next_column().unwrap().unwrap();
        col.typed::<Int64Type>()
            .write_batch(&vec![1; n], Some(&vec![1; n]), None)
            .unwrap();
        col.close().unwrap();
        group.close().unwrap();
        writer.close().unwrap();
    }

    #[test]
    fn celeba_cache_from_parquet_shards_in_train_valid_test_order() {
        let tmp = tempfile::tempdir().unwrap();
        let images = faces();
        let shards = tmp.path().join("img_align+identity+attr");
        std::fs::create_dir_all(&shards).unwrap();
        // Alphabetical order would be test, train, valid: the order must not be that.
        write_celeba_shard(&shards.join("test-00000-of-00001.parquet"), &images[4..]);
        write_celeba_shard(&shards.join("train-00000-of-00002.parquet"), &images[..2]);
        write_celeba_shard(&shards.join("train-00001-of-00002.parquet"), &images[2..3]);
        write_celeba_shard(&shards.join("valid-00000-of-00001.parquet"), &images[3..4]);
        let out = tmp.path().join("cache");
        celeba(&out, Some(&shards), 2, false, false).unwrap();
        let cache = check_faces_cache(&out.join(CACHE_FILE_NAME), &images);
        assert!(
            cache.header.source.contains("4 parquet shards"),
            "{}",
            cache.header.source
        );

        // A shard without an `image` column is refused with its columns named.
        let bad = tmp.path().join("bad");
        std::fs::create_dir_all(&bad).unwrap();
        write_mnist_parquet(&bad.join("train.parquet"), &[1, 2, 3]);
        std::fs::rename(bad.join("train.parquet"), bad.join("train-0.parquet")).unwrap();
        let err = celeba(&tmp.path().join("c2"), Some(&bad), 1, false, false).unwrap_err();
        let msg = format!("{err:#}");
        // MNIST's parquet has an image column but 28x28 images.
        assert!(msg.contains("28x28") && msg.contains("178x218"), "{msg}");
    }

    #[test]
    fn shard_order_and_image_names() {
        let mut shards = [
            PathBuf::from("x/test-0.parquet"),
            PathBuf::from("x/valid-0.parquet"),
            PathBuf::from("x/train-1.parquet"),
            PathBuf::from("x/extra.parquet"),
            PathBuf::from("x/train-0.parquet"),
        ];
        shards.sort_by_key(|p| shard_rank(p));
        let names: Vec<_> = shards
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "train-0.parquet",
                "train-1.parquet",
                "valid-0.parquet",
                "test-0.parquet",
                "extra.parquet"
            ]
        );
        assert!(is_image_name("img_align_celeba/000001.jpg"));
        assert!(is_image_name("A.PNG"));
        assert!(!is_image_name("__MACOSX/img_align_celeba/._000001.jpg"));
        assert!(!is_image_name("img_align_celeba/._000001.jpg"));
        assert!(!is_image_name("list_eval_partition.txt"));
    }
}
