//! Hub parquet image columns (feature `hub`).

use std::fs::File;
use std::path::{Path, PathBuf};

use super::cache::load_cached;
use super::*;
use crate::error::{Error, Result};

/// Loads the images in column `column` (a struct `{bytes, path}` as Hugging Face
/// `datasets` writes, or plain binary) of local parquet files, in file then row order,
/// each row labelled by its integer `label` column when it has one in 0..=255, else 0.
/// Goes through the same cache as folders.
pub fn load_parquet(
    files: &[PathBuf],
    column: &str,
    split: &TestSplit,
    options: &ImageOptions,
    cache_dir: Option<&Path>,
    progress: Progress<'_>,
) -> Result<LoadedImages> {
    use ::parquet::file::reader::{FileReader, SerializedFileReader};
    options.check()?;
    if files.is_empty() {
        return Err(Error::InvalidArgument(
            "no parquet files to read (data.files is empty)".into(),
        ));
    }
    let mut identity = Vec::new();
    let mut readers = Vec::new();
    let mut n = 0usize;
    for path in files {
        let perr = |message: String| Error::Parquet {
            path: path.clone(),
            message,
        };
        let file = File::open(path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let meta = file.metadata().map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let mtime = mtime_nanos(&meta);
        let abs = path.canonicalize().unwrap_or_else(|_| path.clone());
        identity.push((abs.display().to_string(), meta.len(), mtime));
        let reader = SerializedFileReader::new(file).map_err(|e| perr(e.to_string()))?;
        let rows = usize::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0);
        n += rows;
        readers.push((path.clone(), reader));
    }
    let key = serde_json::json!({
        "kind": "parquet", "files": identity, "column": column,
        "options": [options.size, options.channels], "split": split,
    });
    let mut iters = Vec::new();
    for (path, reader) in &readers {
        let iter = reader.get_row_iter(None).map_err(|e| Error::Parquet {
            path: path.clone(),
            message: e.to_string(),
        })?;
        iters.push((path.clone(), iter));
    }
    let state = std::cell::RefCell::new((iters.into_iter(), None, 0usize));
    let rows = (0..n).map(|_| {
        let state = &state;
        move |options: &ImageOptions, skipped: &mut Vec<SkippedImage>| -> Row {
            let mut guard = state.borrow_mut();
            let (files, current, index) = &mut *guard;
            loop {
                if current.is_none() {
                    *current = files.next();
                    *index = 0;
                }
                let Some((path, iter)) = current else {
                    return Err(Error::InvalidArgument(
                        "the parquet files hold fewer rows than their metadata says".into(),
                    ));
                };
                let Some(row) = iter.next() else {
                    *current = None;
                    continue;
                };
                let at = *index;
                *index += 1;
                let perr = |message: String| Error::Parquet {
                    path: path.clone(),
                    message: format!("row {at}: {message}"),
                };
                let row = row.map_err(|e| perr(e.to_string()))?;
                let cell = crate::hub::image_cell_in(&row, column).map_err(perr)?;
                let label = crate::hub::label(&row)
                    .ok()
                    .and_then(|l| u8::try_from(l).ok())
                    .unwrap_or(0);
                let name = format!("{}#row{at}", path.display());
                return skip_or_fail(decode(&name, cell.bytes, options), label, options, skipped);
            }
        }
    });
    let source = format!("parquet {}", files[0].display());
    load_cached(
        &key,
        source,
        Vec::new(),
        n,
        rows,
        split,
        options,
        cache_dir,
        progress,
    )
}

/// Downloads (or finds in the hf-hub cache, `HF_HOME`) `files` of the Hub dataset
/// `repo` and loads them with [`load_parquet`]. `test_files`, when not empty, are read
/// the same way as the test set.
#[allow(clippy::too_many_arguments)]
pub fn load_hub(
    repo: &str,
    files: &[String],
    test_files: &[String],
    column: &str,
    split: &TestSplit,
    options: &ImageOptions,
    cache_dir: Option<&Path>,
    progress: Progress<'_>,
) -> Result<LoadedImages> {
    let get = |file: &String| {
        wae_download::hub_file(repo, file, false).map_err(|e| Error::Hub {
            message: format!("{repo}/{file}: {e}"),
        })
    };
    let train: Vec<PathBuf> = files.iter().map(get).collect::<Result<_>>()?;
    if test_files.is_empty() {
        return load_parquet(&train, column, split, options, cache_dir, progress);
    }
    let test: Vec<PathBuf> = test_files.iter().map(get).collect::<Result<_>>()?;
    let loaded = load_parquet(
        &train,
        column,
        &TestSplit::None,
        options,
        cache_dir,
        progress,
    )?;
    let no_progress = &mut |_, _| {};
    let t = load_parquet(
        &test,
        column,
        &TestSplit::None,
        options,
        cache_dir,
        no_progress,
    )?;
    Ok(loaded.with_test_from(t))
}
