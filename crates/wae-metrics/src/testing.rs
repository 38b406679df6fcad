//! Deterministic inputs shared with the Python reference scripts.
//!
//! `xtask/reference/*.py` implement the same integer formulas, so a Rust test
//! and its reference see bit-identical inputs (no random generator whose
//! streams differ between languages, no large files in the repository).

/// One output of the splitmix64 mixer for the 64-bit state `x`.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A 53-bit uniform number in [0, 1) for (`seed`, `index`), exact in f64:
/// `(splitmix64((seed << 32) ^ index) >> 11) * 2^-53`.
pub fn uniform(seed: u32, index: u64) -> f64 {
    (splitmix64((u64::from(seed) << 32) ^ index) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The deterministic Inception weights of `xtask/reference/inception_reference.py`.
///
/// The keys of [`crate::inception::parameter_shapes`] (pytorch-fid's state_dict
/// minus `fc.*` and `*.num_batches_tracked`) are sorted; key number `k`,
/// element `e` (row-major) gets `u = uniform(k, e)` and
/// - `*.conv.weight`: `(2u - 1) sqrt(6 / fan_in)` (He-uniform),
/// - `*.bn.weight`, `*.bn.running_var`: `0.5 + u`,
/// - `*.bn.bias`, `*.bn.running_mean`: `0.2 (u - 0.5)`,
///
/// computed in f64 and rounded to f32. Returns the tensors on `device`.
pub fn inception_formula_weights(
    device: &candle_core::Device,
) -> crate::Result<std::collections::HashMap<String, candle_core::Tensor>> {
    let mut shapes = crate::inception::parameter_shapes()?;
    shapes.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = std::collections::HashMap::with_capacity(shapes.len());
    for (k, (name, shape)) in shapes.into_iter().enumerate() {
        let numel: usize = shape.iter().product();
        let seed = k as u32;
        let values: Vec<f32> = if name.ends_with("conv.weight") {
            let fan_in: usize = shape[1..].iter().product();
            let bound = (6.0 / fan_in as f64).sqrt();
            (0..numel as u64)
                .map(|e| ((2.0 * uniform(seed, e) - 1.0) * bound) as f32)
                .collect()
        } else if name.ends_with("bn.weight") || name.ends_with("bn.running_var") {
            (0..numel as u64)
                .map(|e| (0.5 + uniform(seed, e)) as f32)
                .collect()
        } else if name.ends_with("bn.bias") || name.ends_with("bn.running_mean") {
            (0..numel as u64)
                .map(|e| (0.2 * (uniform(seed, e) - 0.5)) as f32)
                .collect()
        } else {
            return Err(crate::Error::InvalidInput(format!(
                "inception_formula_weights: no formula for {name}"
            )));
        };
        let tensor = candle_core::Tensor::from_vec(values, shape, device)?;
        out.insert(name, tensor);
    }
    Ok(out)
}
