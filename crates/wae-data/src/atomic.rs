//! Writing files atomically: to a temporary name beside the destination, then renamed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The temporary file that `dest` is written to before the rename: `dest` with
/// `.tmp<pid>` appended to its name, in the same directory (so the rename is atomic).
pub(crate) fn temp_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    dest.with_file_name(name)
}

/// Writes `dest` through `fill`, which gets a buffered writer on a temporary file;
/// the file is flushed, synced and renamed only if `fill` succeeds, and removed if not.
pub(crate) fn write_atomically(
    dest: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = temp_path(dest);
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let result = (|| {
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        let mut writer = BufWriter::new(file);
        fill(&mut writer).map_err(io_err(&tmp))?;
        writer.flush().map_err(io_err(&tmp))?;
        let file = writer
            .into_inner()
            .map_err(|e| io_err(&tmp)(e.into_error()))?;
        file.sync_all().map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, dest).map_err(io_err(dest))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
