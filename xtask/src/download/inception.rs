//! `cargo xtask download inception`: pytorch-fid's Inception weights (downloaded or a
//! local `.pth`), SHA-256 checked and converted to safetensors.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use wae_download::Checksum;
use wae_metrics::inception::{FID_WEIGHTS_FILE_NAME, FID_WEIGHTS_SHA256, convert_pth};

use super::{describe, options};

/// File name of the converted Inception weights.
pub const FID_SAFETENSORS_FILE_NAME: &str = "pt_inception-2015-12-05-6726825d.safetensors";

/// Fetches (or takes `local`) the FID Inception `.pth`, checks its SHA-256 (unless
/// `check` is false, only allowed with `local`) and converts it to safetensors.
/// Returns a one-paragraph report.
pub(super) fn inception(
    url: &str,
    dir: &Path,
    local: Option<&Path>,
    out: Option<&Path>,
    check: bool,
    progress: bool,
) -> Result<String> {
    let mut report = Vec::new();
    let pth = match local {
        Some(path) => {
            ensure!(path.is_file(), "--weights {}: no such file", path.display());
            if check {
                let actual = wae_io::sha256_file(path)
                    .with_context(|| format!("while hashing {}", path.display()))?;
                ensure!(
                    actual == FID_WEIGHTS_SHA256,
                    "{}: SHA-256 {actual}, but pytorch-fid's {FID_WEIGHTS_FILE_NAME} has \
                     {FID_WEIGHTS_SHA256}. Pass --no-checksum to convert it anyway.",
                    path.display()
                );
                report.push(format!(
                    "{}: SHA-256 matches the published one",
                    path.display()
                ));
            } else {
                report.push(format!(
                    "{}: SHA-256 NOT checked (--no-checksum)",
                    path.display()
                ));
            }
            path.to_path_buf()
        }
        None => {
            ensure!(
                check,
                "--no-checksum only applies to a local file given with --weights"
            );
            let dest = dir.join(FID_WEIGHTS_FILE_NAME);
            let outcome = wae_download::download(
                url,
                &dest,
                Some(&Checksum::sha256(FID_WEIGHTS_SHA256)),
                &options(progress),
            )
            .context("the FID Inception weights could not be downloaded")?;
            report.push(format!(
                "{}: {} (SHA-256 {FID_WEIGHTS_SHA256} checked)",
                dest.display(),
                describe(outcome)
            ));
            dest
        }
    };
    let out = out.map_or_else(|| dir.join(FID_SAFETENSORS_FILE_NAME), Path::to_path_buf);
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("while creating {}", parent.display()))?;
    }
    let count = convert_pth(&pth, &out)
        .with_context(|| format!("while converting {} to safetensors", pth.display()))?;
    report.push(format!("{}: {count} tensors converted", out.display()));
    if check {
        wae_metrics::InceptionV3::load(&out, &candle_core::Device::Cpu).with_context(|| {
            format!(
                "{} does not load as the FID Inception network",
                out.display()
            )
        })?;
        report.push("it loads as the FID Inception-v3 (every weight name and shape)".into());
    }
    Ok(report.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn legacy_pth() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../crates/wae-metrics/tests/data/legacy_state_dict.pth")
    }

    #[test]
    fn inception_converts_a_local_pth_and_checks_its_sha256() {
        let tmp = tempfile::tempdir().unwrap();
        // The tiny test file is not the FID weights: refused unless told otherwise.
        let err =
            inception("unused", tmp.path(), Some(&legacy_pth()), None, true, false).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(FID_WEIGHTS_SHA256), "{msg}");
        assert!(msg.contains("--no-checksum"), "{msg}");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);

        let out = tmp.path().join("sub/tiny.safetensors");
        let report = inception(
            "unused",
            tmp.path(),
            Some(&legacy_pth()),
            Some(&out),
            false,
            false,
        )
        .unwrap();
        assert!(report.contains("NOT checked"), "{report}");
        let tensors = candle_core::safetensors::load(&out, &candle_core::Device::Cpu).unwrap();
        assert_eq!(tensors["block.conv.weight"].dims(), &[4, 3, 3, 3]);
        assert_eq!(tensors["fc.weight"].dims(), &[3, 5]);
        assert!(
            report.contains(&format!("{} tensors converted", tensors.len())),
            "{report}"
        );
        // Default output name in DIR.
        inception(
            "unused",
            tmp.path(),
            Some(&legacy_pth()),
            None,
            false,
            false,
        )
        .unwrap();
        assert!(tmp.path().join(FID_SAFETENSORS_FILE_NAME).is_file());
    }

    #[test]
    fn a_refused_download_names_the_url_and_where_to_put_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        // Nothing listens on port 9 of loopback (discard; closed on test machines).
        let url = "http://127.0.0.1:9/pt_inception-2015-12-05-6726825d.pth";
        let err = inception(url, tmp.path(), None, None, true, false).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(url), "{msg}");
        assert!(msg.contains("place the file at"), "{msg}");
        assert!(msg.contains(FID_WEIGHTS_SHA256), "{msg}");
    }
}
