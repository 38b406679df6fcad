//! Helpers shared by the integration tests: deterministic weights and inputs
//! (the same formulas as `xtask/reference/nets_reference.py`).
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use wae_nets::Architecture;

/// Architecture from the reference script's snake_case name.
pub fn arch_from_name(name: &str) -> Architecture {
    match name {
        "mnist_dcgan" => Architecture::MnistDcgan,
        "celeba_dcgan" => Architecture::CelebaDcgan,
        "mlp" => Architecture::Mlp,
        "fading_squares" => Architecture::FadingSquares,
        "dsprites" => Architecture::Dsprites,
        other => panic!("unknown architecture {other}"),
    }
}

/// Sets every variable under `prefix` (sorted by name, index k) by the
/// formula of the reference script.
pub fn set_deterministic_weights(varmap: &VarMap, prefix: &str) {
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = data
        .keys()
        .filter(|n| n.starts_with(&format!("{prefix}.")))
        .collect();
    names.sort();
    for (k, name) in names.into_iter().enumerate() {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let numel: usize = dims.iter().product();
        let parts: Vec<&str> = name.split('.').collect();
        let leaf = parts[parts.len() - 2];
        let values: Vec<f32> = (0..numel)
            .map(|i| {
                let s = (0.731 * i as f64 + 1.13 * (k + 1) as f64).sin();
                let v = if name.ends_with(".running_mean") {
                    0.1 * s
                } else if name.ends_with(".running_var") {
                    1.0 + 0.5 * s
                } else if name.ends_with(".bias") {
                    0.1 * s
                } else if leaf.starts_with("bn") {
                    1.0 + 0.2 * s
                } else {
                    let out = if leaf.starts_with("deconv") {
                        dims[1]
                    } else {
                        dims[0]
                    };
                    2.0 / ((numel / out) as f64).sqrt() * s
                };
                v as f32
            })
            .collect();
        let t = Tensor::from_vec(values, dims.as_slice(), &Device::Cpu).unwrap();
        var.set(&t).unwrap();
    }
}

fn pattern(dims: &[usize], a: f64, b: f64, scale: f64, offset: f64) -> Tensor {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| (offset + scale * (a * i as f64 + b).sin()) as f32)
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
}

/// Images `(n, C, H, W)`: 0.5 + 0.5 sin(0.37 i + 0.1).
pub fn image_input(arch: Architecture, n: usize) -> Tensor {
    let (c, h, w) = arch.image_shape();
    pattern(&[n, c, h, w], 0.37, 0.1, 0.5, 0.5)
}

/// Codes `(n, d)`: 1.5 sin(0.53 i + 0.3).
pub fn code_input(n: usize, d: usize) -> Tensor {
    pattern(&[n, d], 0.53, 0.3, 1.5, 0.0)
}

/// Implicit-encoder noise `(n, d)`: sin(0.91 i + 0.2).
pub fn noise_input(n: usize, d: usize) -> Tensor {
    pattern(&[n, d], 0.91, 0.2, 1.0, 0.0)
}

/// All values of a tensor as f32.
pub fn values(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}
