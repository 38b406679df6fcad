//! The loops compiled for AVX-512, AVX2 + FMA and the baseline give the same results (up
//! to rounding) on this CPU, whichever it has: `set_max_simd` forces the narrower paths,
//! so the AVX2 ones stay tested on an AVX-512 machine. One test: the switch is process-wide.

use candle_core::{DType, Device, Tensor, Var};
use wae_kernels::{Activation, SimdLevel, set_max_simd, simd_level};

fn pattern(shape: &[usize], a: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| (a * i as f32).sin()).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Forward outputs and gradients of a transposed conv, a conv and a BatchNorm + ReLU.
fn run() -> Vec<Vec<f32>> {
    let z = Var::from_tensor(&pattern(&[3, 16, 7, 7], 0.37)).unwrap();
    let w = Var::from_tensor(&pattern(&[16, 8, 4, 4], 0.11)).unwrap();
    let h = wae_kernels::conv_transpose2d(z.as_tensor(), w.as_tensor(), None, 2, 1, 0).unwrap();
    let bn = wae_kernels::batch_norm_train(&h, None, None, 1e-5, Activation::Relu).unwrap();
    let k = Var::from_tensor(&pattern(&[4, 8, 4, 4], 0.23)).unwrap();
    let y = wae_kernels::conv2d(&bn.output, k.as_tensor(), None, 2, 1).unwrap();
    let loss = (y.sqr().unwrap().sum_all().unwrap() * 0.5).unwrap();
    let grads = loss.backward().unwrap();
    let flat = |t: &Tensor| {
        t.flatten_all()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    vec![
        flat(&y),
        flat(grads.get(&z).unwrap()),
        flat(grads.get(&w).unwrap()),
        flat(grads.get(&k).unwrap()),
    ]
}

#[test]
fn every_simd_level_agrees_with_the_baseline() {
    set_max_simd(SimdLevel::Baseline);
    assert_eq!(simd_level(), SimdLevel::Baseline);
    let reference = run();
    for level in [SimdLevel::Avx2, SimdLevel::Avx512] {
        set_max_simd(level);
        let used = simd_level();
        assert!(used <= level, "{used:?} above the cap {level:?}");
        println!("cap {level:?}: running {used:?}");
        for (i, (got, want)) in run().iter().zip(&reference).enumerate() {
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
            let diff = got
                .iter()
                .zip(want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                diff <= 1e-5 * scale,
                "{level:?}, output {i}: largest difference {diff} (scale {scale})"
            );
        }
    }
}
