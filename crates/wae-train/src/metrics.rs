//! `metrics.jsonl`: one JSON object per logged step, appended and flushed.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use tracing::warn;

use crate::{Error, Result};

/// Name of the metrics file in a run directory.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// An append-only JSON-lines log.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens `path` for appending. With `keep_up_to_step = Some(s)` (a resumed run),
    /// lines whose `"step"` is greater than `s` are dropped first: they were logged
    /// after the checkpoint the run resumes from and will be logged again.
    /// With `None` the file is started afresh.
    pub fn open(path: &Path, keep_up_to_step: Option<u64>) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        match keep_up_to_step {
            None => {
                wae_io::write_atomic(path, b"")?;
            }
            Some(limit) if path.exists() => {
                let reader = BufReader::new(File::open(path).map_err(io)?);
                let mut kept = String::new();
                let mut damaged = Vec::new();
                let mut previous_step = None;
                for (i, line) in reader.lines().enumerate() {
                    let line = line.map_err(|source| Error::Io {
                        path: path.to_path_buf(),
                        source,
                    })?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let step = serde_json::from_str::<Value>(&line)
                        .ok()
                        .and_then(|v| v.get("step").and_then(Value::as_u64));
                    match step {
                        Some(s) => {
                            if s <= limit {
                                kept.push_str(&line);
                                kept.push('\n');
                            }
                            previous_step = Some(s);
                        }
                        // A line that does not parse (a crash mid-write) is dropped too.
                        None => damaged.push(damaged_line_text(i + 1, previous_step)),
                    }
                }
                if !damaged.is_empty() {
                    warn!(
                        file = %path.display(),
                        "dropping {} damaged line(s) of the metrics log: {} (a crash or \
                         another writer cut them); the steps they held are logged again \
                         only if they come after the checkpoint resumed from",
                        damaged.len(),
                        damaged.join("; ")
                    );
                }
                wae_io::write_atomic(path, kept.as_bytes())?;
            }
            Some(_) => {}
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends one record and flushes it.
    pub fn write(&mut self, record: &Map<String, Value>) -> Result<()> {
        let mut line = serde_json::to_string(record)
            .map_err(|e| Error::InvalidConfig(format!("cannot serialise a metrics record: {e}")))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })
    }
}

/// "line 7 (after step 6)": where a damaged line of the log was.
fn damaged_line_text(line: usize, previous_step: Option<u64>) -> String {
    match previous_step {
        Some(s) => format!("line {line} (after step {s})"),
        None => format!("line {line} (before any step)"),
    }
}

/// Reads every record of a metrics file.
pub fn read_metrics(path: &Path) -> Result<Vec<Map<String, Value>>> {
    let text = fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Map<String, Value> =
            serde_json::from_str(line).map_err(|e| Error::CorruptCheckpoint {
                path: path.to_path_buf(),
                reason: format!("line {}: {e}", i + 1),
            })?;
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(step: u64) -> Map<String, Value> {
        match json!({"step": step, "total": 1.5}) {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn resume_drops_lines_after_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join(METRICS_FILE);
        let mut log = MetricsLog::open(&p, None).unwrap();
        for s in 1..=5 {
            log.write(&rec(s)).unwrap();
        }
        drop(log);
        // simulate a torn last line
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"step\": 6, \"tot").unwrap();
        drop(f);
        let mut log = MetricsLog::open(&p, Some(3)).unwrap();
        log.write(&rec(4)).unwrap();
        let steps: Vec<u64> = read_metrics(&p)
            .unwrap()
            .iter()
            .map(|r| r["step"].as_u64().unwrap())
            .collect();
        assert_eq!(steps, vec![1, 2, 3, 4]);
    }
}
