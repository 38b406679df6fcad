//! Integration tests of wae-divergence (one test binary, several modules, to keep link time low).

mod errors;
mod extras;
mod gradient;
mod losses;
mod priors;
mod reference;
mod statistics;

use candle_core::{DType, Device, Tensor};

/// The deterministic input formula shared with `xtask/reference/mmd_reference.py`:
/// `X[i, j] = amp * sin(a * i + b * j + phase) + slope * j + shift`, computed in f64.
#[derive(Clone, Copy)]
pub struct Formula {
    pub a: f64,
    pub b: f64,
    pub amp: f64,
    pub slope: f64,
    pub phase: f64,
    pub shift: f64,
}

/// The codes' formula `Q` of the reference script.
pub const Q: Formula = Formula {
    a: 0.37,
    b: 1.3,
    amp: 1.5,
    slope: 0.1,
    phase: 0.0,
    shift: 0.0,
};
/// The prior samples' formula `P` of the reference script.
pub const P: Formula = Formula {
    a: 0.23,
    b: 0.7,
    amp: 1.2,
    slope: -0.05,
    phase: 0.5,
    shift: 0.3,
};
/// `P_CLOSE` of the reference script (close to `Q`).
pub const P_CLOSE: Formula = Formula {
    a: 0.37,
    b: 1.3,
    amp: 1.45,
    slope: 0.1,
    phase: 0.05,
    shift: 0.02,
};

impl Formula {
    pub fn values(&self, n: usize, d: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(n * d);
        for i in 0..n {
            for j in 0..d {
                let (i, j) = (i as f64, j as f64);
                out.push(
                    self.amp * (self.a * i + self.b * j + self.phase).sin()
                        + self.slope * j
                        + self.shift,
                );
            }
        }
        out
    }

    pub fn tensor(&self, n: usize, d: usize, dtype: DType) -> Tensor {
        Tensor::from_vec(self.values(n, d), (n, d), &Device::Cpu)
            .and_then(|t| t.to_dtype(dtype))
            .expect("formula tensor")
    }
}

pub fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64)
        .and_then(|t| t.to_scalar::<f64>())
        .expect("scalar")
}

pub fn assert_rel(actual: f64, expected: f64, rel: f64, what: &str) {
    let err = (actual - expected).abs() / expected.abs().max(1e-300);
    assert!(
        err <= rel,
        "{what}: got {actual}, expected {expected} (relative error {err:.3e} > {rel:.0e})"
    );
}
