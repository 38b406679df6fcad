//! Download behaviour against a tiny HTTP server on loopback that the tests run themselves.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use wae_download::{Checksum, Error, Options, Outcome, download, partial_path};

/// What the server saw: one entry per request, the `Range` header if any.
type Log = Arc<Mutex<Vec<Option<String>>>>;

/// Serves `body` at every path; if `cut_after` is set, the first response stops after that
/// many body bytes (a broken connection). Honours `Range: bytes=N-`.
fn serve(body: Vec<u8>, cut_after: Option<usize>) -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let log: Log = Arc::default();
    let log2 = log.clone();
    thread::spawn(move || {
        let mut first = true;
        // A bounded number of connections: the tests make at most a handful.
        for stream in listener.incoming().take(8) {
            let Ok(stream) = stream else { break };
            let range = handle(stream, &body, if first { cut_after } else { None });
            first = false;
            log2.lock().expect("log").push(range);
        }
    });
    (format!("http://{addr}/file.bin"), log)
}

fn handle(mut stream: TcpStream, body: &[u8], cut_after: Option<usize>) -> Option<String> {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            range = Some(v.trim().trim_end_matches('-').to_string());
        }
    }
    let start: usize = range.as_deref().and_then(|r| r.parse().ok()).unwrap_or(0);
    let (status, slice) = if range.is_some() {
        ("206 Partial Content", &body[start..])
    } else {
        ("200 OK", body)
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        slice.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let send = cut_after.map_or(slice.len(), |n| n.min(slice.len()));
    let _ = stream.write_all(&slice[..send]);
    let _ = stream.flush();
    range
}

fn body() -> Vec<u8> {
    (0..200_000u32).map(|i| (i * 7 + i / 13) as u8).collect()
}

fn sha(bytes: &[u8]) -> Checksum {
    use sha2::Digest;
    Checksum::sha256(&hex::encode(sha2::Sha256::digest(bytes)))
}

fn quiet() -> Options {
    Options {
        progress: false,
        ..Options::default()
    }
}

#[test]
fn fresh_download_writes_the_file_and_checks_it() {
    let body = body();
    let (url, log) = serve(body.clone(), None);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("sub/file.bin");
    let out = download(&url, &dest, Some(&sha(&body)), &quiet()).unwrap();
    assert_eq!(out, Outcome::Downloaded);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert!(!partial_path(&dest).exists());
    assert_eq!(log.lock().unwrap().len(), 1);
}

#[test]
fn cache_hit_contacts_no_server() {
    let body = body();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("file.bin");
    std::fs::write(&dest, &body).unwrap();
    // Nothing listens on this URL: a request would fail.
    let out = download(
        "http://127.0.0.1:9/file.bin",
        &dest,
        Some(&sha(&body)),
        &quiet(),
    )
    .unwrap();
    assert_eq!(out, Outcome::CacheHit);
}

#[test]
fn checksum_mismatch_is_an_error_and_leaves_no_file() {
    let body = body();
    let (url, _log) = serve(body.clone(), None);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("file.bin");
    let wrong = sha(b"something else");
    let err = download(&url, &dest, Some(&wrong), &quiet()).unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("checksum mismatch"), "{msg}");
    let (Checksum::Sha256(expected), Checksum::Sha256(actual)) = (wrong, sha(&body)) else {
        unreachable!()
    };
    assert!(msg.contains(&expected) && msg.contains(&actual), "{msg}");
    assert!(
        !dest.exists(),
        "a file with a bad checksum must not be kept"
    );
    assert!(!partial_path(&dest).exists());
}

#[test]
fn interrupted_download_resumes_with_a_range_request() {
    let body = body();
    let (url, log) = serve(body.clone(), Some(70_000));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("file.bin");
    let checksum = sha(&body);
    let first = download(&url, &dest, Some(&checksum), &quiet());
    assert!(first.is_err(), "the cut connection must be reported");
    let part = partial_path(&dest);
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && kept < body.len() as u64, "kept {kept} bytes");
    let second = download(&url, &dest, Some(&checksum), &quiet()).unwrap();
    assert_eq!(second, Outcome::Resumed { from_bytes: kept });
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0], None);
    assert_eq!(log[1].as_deref(), Some(kept.to_string().as_str()));
}

#[test]
fn offline_error_names_the_url_and_where_to_put_the_file() {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("weights.pth");
    let url = "http://127.0.0.1:9/weights.pth";
    let err = download(url, &dest, Some(&Checksum::sha256("ab12")), &quiet()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Network { .. }), "{msg}");
    assert!(msg.contains(url), "{msg}");
    assert!(msg.contains(&dest.display().to_string()), "{msg}");
    assert!(msg.contains("sha256 ab12"), "{msg}");
}

#[test]
fn hub_offline_without_cache_says_how_to_get_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // SAFETY of env mutation: this is the only test in this binary touching these variables.
    unsafe {
        std::env::set_var("HF_HOME", dir.path());
        std::env::set_var("HF_HUB_OFFLINE", "1");
    }
    let err = wae_download::hub_file("ylecun/mnist", "mnist/test-00000-of-00001.parquet", false)
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("ylecun/mnist"), "{msg}");
    assert!(msg.contains("HF_HUB_OFFLINE"), "{msg}");
    assert!(msg.contains("--data-dir"), "{msg}");
}
