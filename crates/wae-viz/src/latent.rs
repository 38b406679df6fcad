//! Paths through the latent space: linear and spherical interpolation between
//! codes, the bilinear "finer grid" between four codes, and traversals of one
//! coordinate at a time. Codes are plain `f32` vectors of length d_z.

use crate::{Error, Result};

/// How to move between two codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interpolation {
    /// `(1 - t) a + t b`.
    #[default]
    Linear,
    /// Spherical: along the great circle between the directions of `a` and
    /// `b`, the norm interpolated linearly (White 2016, "Sampling generative
    /// networks"); linear when the directions (nearly) coincide or are opposite.
    Spherical,
}

impl Interpolation {
    /// The point at `t` in [0, 1] between `a` and `b` (same length).
    pub fn at(self, a: &[f32], b: &[f32], t: f64) -> Vec<f32> {
        match self {
            Interpolation::Linear => lerp(a, b, t),
            Interpolation::Spherical => slerp(a, b, t),
        }
    }
}

fn lerp(a: &[f32], b: &[f32], t: f64) -> Vec<f32> {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| ((1.0 - t) * x as f64 + t * y as f64) as f32)
        .collect()
}

fn norm(a: &[f32]) -> f64 {
    a.iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt()
}

fn slerp(a: &[f32], b: &[f32], t: f64) -> Vec<f32> {
    let (na, nb) = (norm(a), norm(b));
    if na < 1e-12 || nb < 1e-12 {
        return lerp(a, b, t);
    }
    let cos = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| x as f64 * y as f64)
        .sum::<f64>()
        / (na * nb);
    let omega = cos.clamp(-1.0, 1.0).acos();
    let sin = omega.sin();
    if sin.abs() < 1e-6 {
        return lerp(a, b, t);
    }
    // Unit directions moved along the great circle, then scaled by the
    // linearly interpolated norm.
    let wa = ((1.0 - t) * omega).sin() / sin;
    let wb = (t * omega).sin() / sin;
    let radius = (1.0 - t) * na + t * nb;
    a.iter()
        .zip(b)
        .map(|(&x, &y)| ((wa * x as f64 / na + wb * y as f64 / nb) * radius) as f32)
        .collect()
}

fn check_same_len(codes: &[&[f32]]) -> Result<()> {
    let d = codes.first().map_or(0, |c| c.len());
    if d == 0 || codes.iter().any(|c| c.len() != d) {
        return Err(Error::InvalidInput(format!(
            "latent codes must be non-empty and of equal length, got lengths {:?}",
            codes.iter().map(|c| c.len()).collect::<Vec<_>>()
        )));
    }
    Ok(())
}

/// `steps` codes from `a` to `b` inclusive (`t = i / (steps - 1)`), `steps >= 2`.
///
/// ```
/// use wae_viz::{Interpolation, interpolation_path};
/// let path = interpolation_path(&[0.0, 0.0], &[1.0, 2.0], 3, Interpolation::Linear)?;
/// assert_eq!(path, vec![vec![0.0, 0.0], vec![0.5, 1.0], vec![1.0, 2.0]]);
/// # Ok::<(), wae_viz::Error>(())
/// ```
pub fn interpolation_path(
    a: &[f32],
    b: &[f32],
    steps: usize,
    mode: Interpolation,
) -> Result<Vec<Vec<f32>>> {
    check_same_len(&[a, b])?;
    if steps < 2 {
        return Err(Error::InvalidInput(format!(
            "an interpolation needs at least 2 steps (the two ends), got {steps}"
        )));
    }
    Ok((0..steps)
        .map(|i| mode.at(a, b, i as f64 / (steps - 1) as f64))
        .collect())
}

/// A `size x size` grid of codes, row-major, with `corners` = [top-left,
/// top-right, bottom-left, bottom-right] at its corners: the top and bottom
/// rows interpolate between their corners, each column between its top and
/// bottom code (bilinear for [`Interpolation::Linear`]).
pub fn corner_grid(
    corners: [&[f32]; 4],
    size: usize,
    mode: Interpolation,
) -> Result<Vec<Vec<f32>>> {
    check_same_len(&corners)?;
    if size < 2 {
        return Err(Error::InvalidInput(format!(
            "an interpolation grid needs at least 2 x 2 cells, got {size}"
        )));
    }
    let top = interpolation_path(corners[0], corners[1], size, mode)?;
    let bottom = interpolation_path(corners[2], corners[3], size, mode)?;
    let mut out = vec![Vec::new(); size * size];
    for col in 0..size {
        let column = interpolation_path(&top[col], &bottom[col], size, mode)?;
        for (row, code) in column.into_iter().enumerate() {
            out[row * size + col] = code;
        }
    }
    Ok(out)
}

/// Codes that vary one coordinate at a time: for each `dims[r]`, one row of
/// `base` with that coordinate set to each of `values`. Row-major,
/// `dims.len() * values.len()` codes.
pub fn traversal(base: &[f32], dims: &[usize], values: &[f32]) -> Result<Vec<Vec<f32>>> {
    check_same_len(&[base])?;
    if let Some(&bad) = dims.iter().find(|&&k| k >= base.len()) {
        return Err(Error::InvalidInput(format!(
            "latent dimension {bad} does not exist (d_z = {}, dimensions are 0..{})",
            base.len(),
            base.len()
        )));
    }
    if dims.is_empty() || values.is_empty() {
        return Err(Error::InvalidInput(
            "a traversal needs at least one dimension and one value".into(),
        ));
    }
    let mut out = Vec::with_capacity(dims.len() * values.len());
    for &k in dims {
        for &v in values {
            let mut code = base.to_vec();
            code[k] = v;
            out.push(code);
        }
    }
    Ok(out)
}

/// `count` evenly spaced values from `-range` to `range` inclusive.
pub fn symmetric_values(range: f32, count: usize) -> Vec<f32> {
    match count {
        0 => Vec::new(),
        1 => vec![0.0],
        _ => (0..count)
            .map(|i| -range + 2.0 * range * i as f32 / (count - 1) as f32)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
    }

    #[test]
    fn slerp_keeps_the_norm_on_a_circle() {
        let a = [2.0f32, 0.0];
        let b = [0.0f32, 2.0];
        let mid = Interpolation::Spherical.at(&a, &b, 0.5);
        let h = 2.0 / 2f32.sqrt();
        assert!(close(&mid, &[h, h]), "{mid:?}");
        let lin = Interpolation::Linear.at(&a, &b, 0.5);
        assert!(close(&lin, &[1.0, 1.0]));
        // Ends are exact, norms interpolate linearly.
        assert!(close(&Interpolation::Spherical.at(&a, &b, 0.0), &a));
        assert!(close(&Interpolation::Spherical.at(&a, &b, 1.0), &b));
        let c = [0.0f32, 4.0];
        let q = Interpolation::Spherical.at(&a, &c, 0.5);
        assert!((norm(&q) - 3.0).abs() < 1e-5, "{q:?}");
        // Parallel codes fall back to linear.
        let p = Interpolation::Spherical.at(&[1.0, 0.0], &[3.0, 0.0], 0.5);
        assert!(close(&p, &[2.0, 0.0]));
    }

    #[test]
    fn grid_corners_and_centre() -> Result<()> {
        let corners: [&[f32]; 4] = [&[0.0, 0.0], &[1.0, 0.0], &[0.0, 1.0], &[1.0, 1.0]];
        let g = corner_grid(corners, 3, Interpolation::Linear)?;
        assert_eq!(g.len(), 9);
        assert!(close(&g[0], &[0.0, 0.0]));
        assert!(close(&g[2], &[1.0, 0.0]));
        assert!(close(&g[6], &[0.0, 1.0]));
        assert!(close(&g[8], &[1.0, 1.0]));
        assert!(close(&g[4], &[0.5, 0.5]));
        assert!(close(&g[5], &[1.0, 0.5]));
        Ok(())
    }

    #[test]
    fn traversal_rows() -> Result<()> {
        let t = traversal(&[0.5, 0.5, 0.5], &[2, 0], &symmetric_values(1.0, 3))?;
        assert_eq!(t.len(), 6);
        assert_eq!(t[0], vec![0.5, 0.5, -1.0]);
        assert_eq!(t[2], vec![0.5, 0.5, 1.0]);
        assert_eq!(t[4], vec![0.0, 0.5, 0.5]);
        let err = traversal(&[0.0; 3], &[3], &[1.0]).unwrap_err().to_string();
        assert!(err.contains("dimension 3 does not exist"), "{err}");
        Ok(())
    }

    #[test]
    fn bad_paths() {
        assert!(interpolation_path(&[0.0], &[0.0, 1.0], 3, Interpolation::Linear).is_err());
        assert!(interpolation_path(&[0.0], &[1.0], 1, Interpolation::Linear).is_err());
        let one: &[f32] = &[1.0];
        assert!(corner_grid([one; 4], 1, Interpolation::Linear).is_err());
    }
}
