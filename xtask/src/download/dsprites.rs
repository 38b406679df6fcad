//! `cargo xtask download dsprites`: the dSprites npz, whose arrays and shapes are checked
//! (no checksum is published with it).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};

use super::{describe, options};

/// Where the dSprites file is published (no checksum is published with it).
pub const DSPRITES_URL: &str = "https://github.com/google-deepmind/dsprites-dataset/raw/master/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz";
/// The dSprites file name.
pub const DSPRITES_FILE_NAME: &str = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz";
/// Number of images in dSprites.
pub const DSPRITES_IMAGES: usize = 737_280;

/// Fetches the dSprites npz into `dir` and checks its arrays. Returns its path.
pub(super) fn dsprites(url: &str, dir: &Path, progress: bool) -> Result<PathBuf> {
    let dest = dir.join(DSPRITES_FILE_NAME);
    let outcome = wae_download::download(url, &dest, None, &options(progress))
        .context("dSprites could not be downloaded")?;
    tracing::info!(path = %dest.display(), outcome = describe(outcome), "dSprites");
    check_dsprites_npz(&dest, DSPRITES_IMAGES).with_context(|| {
        format!(
            "{} is not the dSprites file (no checksum is published, so its arrays are \
             checked instead); delete it and run the command again, or fetch {url} by hand",
            dest.display()
        )
    })?;
    Ok(dest)
}

/// Checks that the npz at `path` holds `imgs` `(images, 64, 64)` of one-byte values and
/// `latents_classes`, `latents_values` of shape `(images, 6)`.
fn check_dsprites_npz(path: &Path, images: usize) -> Result<()> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut archive = zip::ZipArchive::new(file).context("not a zip (npz) file")?;
    let expected: [(&str, Vec<usize>); 3] = [
        ("imgs", vec![images, 64, 64]),
        ("latents_classes", vec![images, 6]),
        ("latents_values", vec![images, 6]),
    ];
    for (name, shape) in expected {
        let mut entry = archive
            .by_name(&format!("{name}.npy"))
            .with_context(|| format!("no array `{name}`"))?;
        let wae_data::npy::NpyHeader {
            descr,
            shape: found,
            ..
        } = wae_data::npy::read_header(&mut entry).with_context(|| format!("array `{name}`"))?;
        ensure!(
            found == shape,
            "array `{name}` has shape {found:?}, expected {shape:?}"
        );
        if name == "imgs" {
            ensure!(
                descr.ends_with("u1") || descr.ends_with("b1"),
                "array `imgs` has dtype `{descr}`, expected one byte per pixel"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_download_names_the_url_and_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        // Nothing listens on port 9 of loopback (discard; closed on test machines).
        let url = "http://127.0.0.1:9/dsprites.npz";
        let err = dsprites(url, tmp.path(), false).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(url), "{msg}");
        assert!(msg.contains(DSPRITES_FILE_NAME), "{msg}");
    }

    fn npy(descr: &str, shape: &str) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out
    }

    fn write_npz(path: &Path, arrays: &[(&str, Vec<u8>)]) {
        let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
        for (name, bytes) in arrays {
            zip.start_file(
                format!("{name}.npy"),
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            std::io::Write::write_all(&mut zip, bytes).unwrap();
        }
        zip.finish().unwrap();
    }

    #[test]
    fn dsprites_npz_arrays_and_shapes_are_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("d.npz");
        let mut imgs = npy("|u1", "(3, 64, 64)");
        imgs.extend(vec![0u8; 3 * 64 * 64]);
        let good = [
            ("imgs", imgs),
            ("latents_classes", npy("<i8", "(3, 6)")),
            ("latents_values", npy("<f8", "(3, 6)")),
        ];
        write_npz(&path, &good);
        check_dsprites_npz(&path, 3).unwrap();
        let err = check_dsprites_npz(&path, DSPRITES_IMAGES).unwrap_err();
        assert!(format!("{err:#}").contains("shape [3, 64, 64], expected [737280, 64, 64]"));

        write_npz(&path, &good[..2]);
        let err = check_dsprites_npz(&path, 3).unwrap_err();
        assert!(format!("{err:#}").contains("latents_values"), "{err:#}");

        write_npz(
            &path,
            &[
                ("imgs", npy("<f4", "(3, 64, 64)")),
                ("latents_classes", npy("<i8", "(3, 6)")),
                ("latents_values", npy("<f8", "(3, 6)")),
            ],
        );
        let err = check_dsprites_npz(&path, 3).unwrap_err();
        assert!(format!("{err:#}").contains("dtype `<f4`"), "{err:#}");

        std::fs::write(&path, b"<html>rate limited</html>").unwrap();
        let err = check_dsprites_npz(&path, 3).unwrap_err();
        assert!(format!("{err:#}").contains("not a zip"), "{err:#}");
    }
}
