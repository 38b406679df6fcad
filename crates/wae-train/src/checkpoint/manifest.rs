//! `manifest.json` and the digests that make a checkpoint verifiable: every file read
//! back is checked against the size and SHA-256 recorded when it was written.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{
    CHECKPOINT_FILES, CONFIG_FILE, MANIFEST_FILE, MANIFEST_FORMAT, STATE_FILE, TrainState, io_err,
};
use crate::{Error, Result};

/// The content of `manifest.json`: a digest for each file of the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// Size and SHA-256 of every file of the checkpoint, keyed by file name.
    pub files: BTreeMap<String, FileDigest>,
}

/// Size and SHA-256 of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Length in bytes.
    pub bytes: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

impl FileDigest {
    /// Digest of a byte buffer.
    pub fn of(data: &[u8]) -> Self {
        Self {
            bytes: data.len() as u64,
            sha256: wae_io::sha256_hex(data),
        }
    }
}

/// Checks `bytes` (the content of `path`) against `expected`, the digest recorded in
/// `recorded_in`.
fn verify(path: &Path, bytes: &[u8], expected: &FileDigest, recorded_in: &str) -> Result<()> {
    let got = FileDigest::of(bytes);
    if got.bytes != expected.bytes {
        return Err(Error::CorruptCheckpoint {
            path: path.to_path_buf(),
            reason: format!(
                "it has {} bytes, {} were written (truncated, overwritten or edited; \
                 sizes recorded in {recorded_in})",
                got.bytes, expected.bytes
            ),
        });
    }
    if got.sha256 != expected.sha256 {
        return Err(Error::CorruptCheckpoint {
            path: path.to_path_buf(),
            reason: format!(
                "SHA-256 {} does not match the recorded {} (in {recorded_in}): the file was \
                 changed after it was written. A checkpoint is not edited: resume it with \
                 --config to change what may change, or start a new run",
                got.sha256, expected.sha256
            ),
        });
    }
    Ok(())
}

pub(super) fn read_verified(dir: &Path, file: &str, state: &TrainState) -> Result<Vec<u8>> {
    let path = dir.join(file);
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    let expected = state
        .files
        .get(file)
        .ok_or_else(|| Error::CorruptCheckpoint {
            path: dir.join(STATE_FILE),
            reason: format!("no digest recorded for {file}"),
        })?;
    verify(&path, &bytes, expected, STATE_FILE)?;
    Ok(bytes)
}

/// The checkpoint's files as verified bytes, keyed by name: against `manifest.json`
/// when there is one (every file), else against `state.json` (the tensor files
/// only, with a warning).
pub(super) fn read_checkpoint_files(dir: &Path) -> Result<HashMap<&'static str, Vec<u8>>> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let read = |file: &str| -> Result<Vec<u8>> {
        let path = dir.join(file);
        fs::read(&path).map_err(io_err(&path))
    };
    let mut out = HashMap::new();
    if manifest_path.is_file() {
        let text = fs::read_to_string(&manifest_path).map_err(io_err(&manifest_path))?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| Error::CorruptCheckpoint {
                path: manifest_path.clone(),
                reason: format!("cannot parse: {e}"),
            })?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(Error::CorruptCheckpoint {
                path: manifest_path,
                reason: format!(
                    "format {} is not the supported format {MANIFEST_FORMAT}",
                    manifest.format
                ),
            });
        }
        for file in CHECKPOINT_FILES {
            let expected = manifest
                .files
                .get(file)
                .ok_or_else(|| Error::CorruptCheckpoint {
                    path: manifest_path.clone(),
                    reason: format!("it records no digest for {file}"),
                })?;
            let bytes = read(file)?;
            verify(&dir.join(file), &bytes, expected, MANIFEST_FILE)?;
            out.insert(file, bytes);
        }
        return Ok(out);
    }
    tracing::warn!(
        checkpoint = %dir.display(),
        "this checkpoint has no {MANIFEST_FILE} (it was written by an older wae): its tensor \
         files are verified, its {CONFIG_FILE} and {STATE_FILE} are not"
    );
    out.insert(STATE_FILE, read(STATE_FILE)?);
    out.insert(CONFIG_FILE, read(CONFIG_FILE)?);
    Ok(out)
}
