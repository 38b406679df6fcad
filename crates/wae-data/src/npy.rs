//! NumPy's `.npy` array header: the one reader of it in the workspace (the dSprites
//! loader and `cargo xtask download dsprites` both use it).
//!
//! A `.npy` stream is the magic `\x93NUMPY`, a version (1.0: a 2-byte header length;
//! 2.0 and 3.0: 4 bytes), then a Python dict literal such as
//! `{'descr': '|u1', 'fortran_order': False, 'shape': (737280, 64, 64), }`, then the data.
//!
//! ```
//! let mut file = b"\x93NUMPY\x01\x00\x3c\x00".to_vec();
//! file.extend_from_slice(b"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 6), }\n");
//! let header = wae_data::npy::read_header(&mut file.as_slice())?;
//! assert_eq!((header.descr.as_str(), header.shape), ("<f8", vec![3, 6]));
//! # Ok::<(), wae_data::Error>(())
//! ```

use std::io::Read;

use crate::error::{Error, Result};

/// The largest header accepted, in bytes (numpy's own are under 1 KiB).
const MAX_HEADER_BYTES: usize = 1 << 20;

/// The parsed header of a `.npy` array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// The dtype descriptor, e.g. `|u1`, `<f8`, `<i8`.
    pub descr: String,
    /// Whether the data is stored in Fortran (column-major) order.
    pub fortran_order: bool,
    /// The array's shape (empty for a scalar).
    pub shape: Vec<usize>,
}

/// Reads the magic, version and header dictionary of a `.npy` stream, leaving `reader`
/// at the first data byte. A bad header is [`Error::NpyHeader`].
pub fn read_header(reader: &mut impl Read) -> Result<NpyHeader> {
    read_header_message(reader).map_err(|message| Error::NpyHeader { message })
}

/// [`read_header`] with the reason as a plain message, for callers that name the file.
pub(crate) fn read_header_message(
    reader: &mut impl Read,
) -> std::result::Result<NpyHeader, String> {
    let mut prefix = [0u8; 8];
    reader
        .read_exact(&mut prefix)
        .map_err(|e| format!("cannot read the npy header: {e}"))?;
    if &prefix[..6] != b"\x93NUMPY" {
        return Err("not a .npy array (bad magic)".into());
    }
    let header_len = match prefix[6] {
        1 => {
            let mut len = [0u8; 2];
            reader
                .read_exact(&mut len)
                .map_err(|e| format!("cannot read the npy header: {e}"))?;
            usize::from(u16::from_le_bytes(len))
        }
        2 | 3 => {
            let mut len = [0u8; 4];
            reader
                .read_exact(&mut len)
                .map_err(|e| format!("cannot read the npy header: {e}"))?;
            u32::from_le_bytes(len) as usize
        }
        v => return Err(format!("unsupported npy format version {v}")),
    };
    if header_len > MAX_HEADER_BYTES {
        return Err(format!("npy header of {header_len} bytes is implausible"));
    }
    let mut text = vec![0u8; header_len];
    reader
        .read_exact(&mut text)
        .map_err(|e| format!("cannot read the npy header: {e}"))?;
    let text = String::from_utf8_lossy(&text);
    parse_dict(&text).map_err(|message| format!("{message} in header {text:?}"))
}

/// Parses `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 6), }`.
fn parse_dict(text: &str) -> std::result::Result<NpyHeader, String> {
    let value_after = |key: &str| -> std::result::Result<&str, String> {
        let quoted = [format!("'{key}'"), format!("\"{key}\"")];
        let at = quoted
            .iter()
            .find_map(|q| text.find(q.as_str()).map(|i| i + q.len()))
            .ok_or_else(|| format!("no key '{key}'"))?;
        let rest = text[at..].trim_start();
        rest.strip_prefix(':')
            .map(str::trim_start)
            .ok_or_else(|| format!("no ':' after '{key}'"))
    };
    let descr_text = value_after("descr")?;
    let quote = descr_text
        .chars()
        .next()
        .filter(|c| *c == '\'' || *c == '"')
        .ok_or("descr is not a string")?;
    let descr_end = descr_text[1..]
        .find(quote)
        .ok_or("unterminated descr string")?;
    let descr = descr_text[1..1 + descr_end].to_string();

    let fortran_text = value_after("fortran_order")?;
    let fortran_order = if fortran_text.starts_with("True") {
        true
    } else if fortran_text.starts_with("False") {
        false
    } else {
        return Err("fortran_order is neither True nor False".into());
    };

    let shape_text = value_after("shape")?;
    let inner = shape_text
        .strip_prefix('(')
        .and_then(|s| s.find(')').map(|end| &s[..end]))
        .ok_or("shape is not a tuple")?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| format!("bad dimension {s:?} in shape"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(NpyHeader {
        descr,
        fortran_order,
        shape,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_dict_parses_numpy_headers() {
        let h = parse_dict("{'descr': '|u1', 'fortran_order': False, 'shape': (737280, 64, 64), }")
            .expect("parse");
        assert_eq!(h.descr, "|u1");
        assert!(!h.fortran_order);
        assert_eq!(h.shape, vec![737_280, 64, 64]);
        let h =
            parse_dict("{'descr': '<f8', 'fortran_order': True, 'shape': (5,), }").expect("parse");
        assert_eq!(
            (h.descr.as_str(), h.fortran_order, h.shape),
            ("<f8", true, vec![5])
        );
        assert!(parse_dict("{'descr': '<f8', 'shape': (5,), }").is_err());
        assert!(parse_dict("{'descr': '<f8', 'fortran_order': False, 'shape': (a,), }").is_err());
    }

    #[test]
    fn a_bad_magic_is_an_npy_header_error() {
        let err = read_header(&mut b"<html>rate limited</html>".as_slice()).unwrap_err();
        assert!(matches!(err, Error::NpyHeader { .. }), "{err}");
        assert!(err.to_string().contains("bad magic"), "{err}");
    }
}
