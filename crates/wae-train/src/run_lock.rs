//! One writer per run directory: an exclusive OS advisory lock on `RUN/.wae.lock`.
//!
//! Every command that writes into a run directory (`wae train`, `--resume`, `wae eval`
//! and the picture commands writing their default outputs there) holds a [`RunLock`]
//! for as long as it writes. The lock is the operating system's (`flock` on Unix,
//! `LockFileEx` on Windows), so it is released when the process ends, however it
//! ends (`kill -9` included); the file itself stays and is reused. The holder writes
//! its PID and command into the file, so a second writer is told who holds the run.
//!
//! Readers (`wae sample RUN --out elsewhere.png`, `wae plot`) take no lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Name of the lock file inside a run directory.
pub const LOCK_FILE: &str = ".wae.lock";

/// An exclusive lock on a run directory, held until dropped (or the process ends).
#[derive(Debug)]
pub struct RunLock {
    file: File,
    dir: PathBuf,
}

impl RunLock {
    /// Locks the existing directory `run_dir` for `command` (e.g. `"wae train"`,
    /// written into the lock file for whoever is refused). Fails at once, without
    /// waiting, with [`Error::RunDirInUse`] naming the holder's PID when another
    /// process holds the lock.
    pub fn acquire(run_dir: &Path, command: &str) -> Result<Self> {
        let path = run_dir.join(LOCK_FILE);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                return Err(Error::RunDirInUse {
                    dir: run_dir.to_path_buf(),
                    holder: holder_text(&mut file),
                });
            }
            Err(fs4::TryLockError::Error(source)) => return Err(io(source)),
        }
        let note = format!("pid {}\ncommand {command}\n", std::process::id());
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(note.as_bytes()))
            .and_then(|_| file.flush())
            .map_err(io)?;
        Ok(Self {
            file,
            dir: run_dir.to_path_buf(),
        })
    }

    /// The locked run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes it immediate
        // even where another handle to the file is still open.
        let _ = fs4::FileExt::unlock(&self.file);
    }
}

/// "process 1234 (`wae train`)" from the lock file's note, or as much as it says.
fn holder_text(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
            .filter(|v| !v.is_empty())
    };
    match (field("pid "), field("command ")) {
        (Some(pid), Some(cmd)) => format!("process {pid} (`{cmd}`)"),
        (Some(pid), None) => format!("process {pid}"),
        _ => "another process (it has not written its PID yet)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn second_lock_is_refused_with_the_pid_and_released_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        fs::create_dir_all(&run).unwrap();
        let first = RunLock::acquire(&run, "wae train").unwrap();
        assert_eq!(first.dir(), run);
        // flock locks belong to the open file description: a second open in the same
        // process conflicts just as another process would.
        let err = RunLock::acquire(&run, "wae eval").unwrap_err().to_string();
        let pid = std::process::id().to_string();
        assert!(err.contains(&pid), "{err}");
        assert!(err.contains("wae train"), "{err}");
        assert!(err.contains(run.to_str().unwrap()), "{err}");
        drop(first);
        let again = RunLock::acquire(&run, "wae eval").unwrap();
        drop(again);
        let note = fs::read_to_string(run.join(LOCK_FILE)).unwrap();
        assert!(note.contains("command wae eval"), "{note}");
    }
}
