//! Resumable, checksummed downloads for wae's data sets and weights.
//!
//! Two sources are supported:
//! - plain HTTP(S) files ([`download`]): the file grows in `DEST.part`, an interrupted
//!   download resumes from where it stopped with an HTTP `Range` request, the content is
//!   checked against a SHA-256 or MD5 before it is renamed into place, and an existing
//!   file whose checksum matches is a cache hit that touches no network;
//! - files of a Hugging Face Hub repository ([`hub_file`]), through `hf-hub`'s blocking API
//!   and its cache; with `HF_HUB_OFFLINE=1` only the cache is looked at.
//!
//! Errors say what was tried and how to place the file by hand, since many machines
//! that run experiments have no internet access.
//!
//! ```no_run
//! use wae_download::{download, Checksum, Options};
//! let dest = std::path::Path::new("data/pt_inception-2015-12-05-6726825d.pth");
//! download(
//!     "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
//!     dest,
//!     Some(&Checksum::sha256("6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2")),
//!     &Options::default(),
//! )?;
//! # Ok::<(), wae_download::Error>(())
//! ```
#![deny(missing_docs)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Everything that can go wrong while fetching a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server could not be reached or answered with an error.
    #[error(
        "could not download {url}: {reason}\n\
         If this machine is offline, download that URL on another machine and place the file at {dest}{checksum_hint}"
    )]
    Network {
        /// The URL that was requested.
        url: String,
        /// Where the file was to be written.
        dest: PathBuf,
        /// What the HTTP client said.
        reason: String,
        /// A hint naming the expected checksum, or empty.
        checksum_hint: String,
    },
    /// The downloaded (or existing) content does not have the expected checksum.
    #[error(
        "checksum mismatch for {path} (from {url}): expected {algorithm} {expected}, got {actual}.\n\
         The partial file was removed; run the command again to download it afresh, or place a good copy there by hand"
    )]
    ChecksumMismatch {
        /// The file that was checked.
        path: PathBuf,
        /// Where it came from.
        url: String,
        /// `sha256` or `md5`.
        algorithm: &'static str,
        /// The checksum we wanted.
        expected: String,
        /// The checksum we got.
        actual: String,
    },
    /// A Hugging Face Hub file could not be fetched or found in the cache.
    #[error(
        "could not get {file} from the Hugging Face Hub {kind} {repo}: {reason}\n\
         Offline? Copy the file into the hf-hub cache ({cache}) on a machine with access \
         (e.g. `huggingface-cli download --repo-type {kind} {repo} {file}`), or place the data by hand and point --data-dir at it"
    )]
    Hub {
        /// `dataset` or `model`.
        kind: &'static str,
        /// The repository id, e.g. `ylecun/mnist`.
        repo: String,
        /// The file inside the repository.
        file: String,
        /// The hf-hub cache directory that was used.
        cache: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The file list of a Hugging Face Hub repository could not be had, online or cached.
    #[error(
        "could not list the files of the Hugging Face Hub {kind} {repo}: {reason}\n\
         Offline? On a machine with access run `huggingface-cli download --repo-type {kind} {repo}` \
         and copy its hf-hub cache into {cache} here (or set HF_HOME to a copy), or place the data by hand"
    )]
    HubListing {
        /// `dataset` or `model`.
        kind: &'static str,
        /// The repository id.
        repo: String,
        /// The hf-hub cache directory that was used.
        cache: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// An expected checksum of a whole file, as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// SHA-256 of the file.
    Sha256(String),
    /// MD5 of the file (for data sets whose publishers only list MD5s).
    Md5(String),
}

impl Checksum {
    /// A SHA-256 checksum from its hex digest.
    pub fn sha256(hex: &str) -> Self {
        Self::Sha256(hex.to_ascii_lowercase())
    }
    /// An MD5 checksum from its hex digest.
    pub fn md5(hex: &str) -> Self {
        Self::Md5(hex.to_ascii_lowercase())
    }
    fn digest(&self) -> wae_io::Algorithm {
        match self {
            Self::Sha256(_) => wae_io::Algorithm::Sha256,
            Self::Md5(_) => wae_io::Algorithm::Md5,
        }
    }
    fn algorithm(&self) -> &'static str {
        self.digest().name()
    }
    fn expected(&self) -> &str {
        match self {
            Self::Sha256(h) | Self::Md5(h) => h,
        }
    }
    /// The checksum of a file on disk, in this checksum's algorithm ([`wae_io::hash_file`]).
    pub fn of_file(&self, path: &Path) -> Result<String> {
        wae_io::hash_file(self.digest(), path).map_err(|e| {
            let context = format!("while reading {}", e.path().display());
            let (_, source) = e.into_parts();
            Error::Io { context, source }
        })
    }
    /// Whether the file at `path` has this checksum.
    pub fn matches(&self, path: &Path) -> Result<bool> {
        Ok(self.of_file(path)? == self.expected())
    }
}

/// How a download behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Show a progress bar (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Give up on a connection that sends nothing for this long.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            progress: true,
            timeout: Duration::from_secs(60),
        }
    }
}

/// What [`download`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The file was already there with the right checksum; nothing was fetched.
    CacheHit,
    /// The file was fetched from the start.
    Downloaded,
    /// An earlier partial download was continued from this many bytes.
    Resumed {
        /// Bytes already on disk before this call.
        from_bytes: u64,
    },
}

/// The path of the partial file that `dest` grows in while downloading.
pub fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// Downloads `url` to `dest`, resuming a partial download and checking `checksum`.
///
/// - If `dest` exists and matches `checksum` (or no checksum is given), nothing is fetched.
/// - Bytes go to `dest.part` first; an interrupted download leaves that file and the next
///   call asks the server for the rest with `Range: bytes=N-` (a server that ignores the
///   range restarts the file).
/// - Only a complete file with the right checksum is renamed to `dest`; on a mismatch the
///   partial file is removed and [`Error::ChecksumMismatch`] names both checksums.
pub fn download(
    url: &str,
    dest: &Path,
    checksum: Option<&Checksum>,
    options: &Options,
) -> Result<Outcome> {
    if dest.exists() {
        match checksum {
            None => return Ok(Outcome::CacheHit),
            Some(c) if c.matches(dest)? => return Ok(Outcome::CacheHit),
            Some(_) => {
                tracing::warn!(path = %dest.display(), "existing file has the wrong checksum; downloading it again");
            }
        }
    }
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io_err(format!(
            "while creating the directory {}",
            parent.display()
        )))?;
    }
    let part = partial_path(dest);
    let have = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let network = |reason: String| Error::Network {
        url: url.to_string(),
        dest: dest.to_path_buf(),
        reason,
        checksum_hint: checksum
            .map(|c| format!(" ({} {})", c.algorithm(), c.expected()))
            .unwrap_or_default(),
    };

    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(15))
        .timeout_read(options.timeout)
        .build();
    let mut request = agent.get(url);
    if have > 0 {
        request = request.set("Range", &format!("bytes={have}-"));
    }
    let response = match request.call() {
        Ok(r) => r,
        // 416: the partial file already holds every byte.
        Err(ureq::Error::Status(416, _)) if have > 0 => {
            return finish(
                url,
                dest,
                &part,
                checksum,
                Outcome::Resumed { from_bytes: have },
            );
        }
        Err(e) => return Err(network(e.to_string())),
    };
    let resumed = have > 0 && response.status() == 206;
    let total = response
        .header("Content-Length")
        .and_then(|v| v.parse::<u64>().ok())
        .map(|n| if resumed { n + have } else { n });
    let mut file = if resumed {
        OpenOptions::new()
            .append(true)
            .open(&part)
            .map_err(io_err(format!("while opening {}", part.display())))?
    } else {
        File::create(&part).map_err(io_err(format!("while creating {}", part.display())))?
    };

    let bar = progress_bar(options.progress, total, dest);
    bar.set_position(if resumed { have } else { 0 });
    let mut reader = response.into_reader();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| network(format!("connection broke off: {e} (run again to resume)")))?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])
            .map_err(io_err(format!("while writing {}", part.display())))?;
        bar.inc(n as u64);
    }
    file.sync_all()
        .map_err(io_err(format!("while flushing {}", part.display())))?;
    drop(file);
    bar.finish_and_clear();
    if let Some(total) = total {
        let got = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        if got < total {
            return Err(network(format!(
                "the server sent {got} of {total} bytes (run again to resume)"
            )));
        }
    }
    let outcome = if resumed {
        Outcome::Resumed { from_bytes: have }
    } else {
        Outcome::Downloaded
    };
    finish(url, dest, &part, checksum, outcome)
}

fn finish(
    url: &str,
    dest: &Path,
    part: &Path,
    checksum: Option<&Checksum>,
    outcome: Outcome,
) -> Result<Outcome> {
    if let Some(c) = checksum {
        let actual = c.of_file(part)?;
        if actual != c.expected() {
            let _ = fs::remove_file(part);
            return Err(Error::ChecksumMismatch {
                path: dest.to_path_buf(),
                url: url.to_string(),
                algorithm: c.algorithm(),
                expected: c.expected().to_string(),
                actual,
            });
        }
    }
    fs::rename(part, dest).map_err(io_err(format!(
        "while moving {} to {}",
        part.display(),
        dest.display()
    )))?;
    Ok(outcome)
}

fn progress_bar(enabled: bool, total: Option<u64>, dest: &Path) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(
        dest.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    bar
}

/// Whether `HF_HUB_OFFLINE` asks for cache-only Hub access.
pub fn hub_offline() -> bool {
    matches!(
        std::env::var("HF_HUB_OFFLINE").as_deref(),
        Ok("1") | Ok("true") | Ok("TRUE") | Ok("yes")
    )
}

/// A file of a Hugging Face Hub dataset repository, fetched through hf-hub's cache.
///
/// `repo` is e.g. `ylecun/mnist` and `file` a path inside it such as
/// `mnist/train-00000-of-00001.parquet`. The cache is hf-hub's (`HF_HOME`, default
/// `~/.cache/huggingface`). With `HF_HUB_OFFLINE=1` the network is never used.
pub fn hub_file(repo: &str, file: &str, progress: bool) -> Result<PathBuf> {
    let cache = hf_hub::Cache::from_env();
    let hub_err = |reason: String| Error::Hub {
        kind: "dataset",
        repo: repo.to_string(),
        file: file.to_string(),
        cache: cache.path().clone(),
        reason,
    };
    if let Some(path) = cached_snapshot_file(cache.path(), repo, file) {
        return Ok(path);
    }
    if hub_offline() {
        return Err(hub_err(
            "HF_HUB_OFFLINE is set and the file is not in the cache".into(),
        ));
    }
    let api = hf_hub::api::sync::ApiBuilder::from_cache(cache.clone())
        .with_progress(progress)
        .build()
        .map_err(|e| hub_err(e.to_string()))?;
    api.dataset(repo.to_string())
        .get(file)
        .map_err(|e| hub_err(e.to_string()))
}

/// The files of a Hugging Face Hub dataset repository (paths from its root, `/`-separated,
/// sorted).
///
/// Online, the Hub's listing (hf-hub's `info()`, the repository's `siblings`). With
/// `HF_HUB_OFFLINE=1`, or when the Hub cannot be reached, the files of the snapshot that
/// hf-hub's cache holds for the `main` revision (only what was downloaded before).
/// [`Error::HubListing`] when neither gives a listing.
pub fn hub_dataset_files(repo: &str) -> Result<Vec<String>> {
    let cache = hf_hub::Cache::from_env();
    let hub_err = |reason: String| Error::HubListing {
        kind: "dataset",
        repo: repo.to_string(),
        cache: cache.path().clone(),
        reason,
    };
    let cached = cached_snapshot_files(cache.path(), repo);
    if hub_offline() {
        return cached.ok_or_else(|| {
            hub_err("HF_HUB_OFFLINE is set and the cache holds no snapshot of it".into())
        });
    }
    let online = hf_hub::api::sync::ApiBuilder::from_cache(cache.clone())
        .with_progress(false)
        .build()
        .map_err(|e| e.to_string())
        .and_then(|api| {
            api.dataset(repo.to_string())
                .info()
                .map_err(|e| e.to_string())
        });
    match (online, cached) {
        (Ok(info), _) => {
            let mut files: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
            files.sort();
            Ok(files)
        }
        (Err(reason), Some(files)) => {
            tracing::warn!(%repo, %reason, "cannot list the repository on the Hub; using the cached snapshot");
            Ok(files)
        }
        (Err(reason), None) => Err(hub_err(reason)),
    }
}

/// `<cache>/datasets--<owner>--<name>/snapshots/<commit of refs/main>/`, if the cache
/// has it. Like hf-hub's own lookup, but tolerant of a trailing newline in the ref file
/// (as hand-written or copied caches may have).
fn cached_snapshot_dir(cache: &Path, repo: &str) -> Option<PathBuf> {
    let folder = hf_hub::Repo::new(repo.to_string(), hf_hub::RepoType::Dataset).folder_name();
    let root = cache.join(folder);
    let commit = fs::read_to_string(root.join("refs").join("main")).ok()?;
    let snapshot = root.join("snapshots").join(commit.trim());
    snapshot.is_dir().then_some(snapshot)
}

/// The cached copy of `file` of the dataset `repo`, if any.
fn cached_snapshot_file(cache: &Path, repo: &str, file: &str) -> Option<PathBuf> {
    let path = cached_snapshot_dir(cache, repo)?.join(file);
    path.is_file().then_some(path)
}

/// The files of the cached snapshot of the dataset `repo`, or `None` when there is none.
fn cached_snapshot_files(cache: &Path, repo: &str) -> Option<Vec<String>> {
    let snapshot = cached_snapshot_dir(cache, repo)?;
    let mut files = Vec::new();
    let mut stack = vec![snapshot.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                let relative = path.strip_prefix(&snapshot).ok()?;
                let parts: Vec<String> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                files.push(parts.join("/"));
            }
        }
    }
    files.sort();
    Some(files)
}
