//! The fused MMD pass compiled for AVX-512, AVX2 + FMA and the baseline gives the same bits
//! on this CPU, whichever of them it has: `set_max_simd` forces the narrower copies, so they
//! stay tested on an AVX-512 machine. One test, because the switch is process-wide.

use candle_core::{DType, Device, Tensor, Var};
use wae_divergence::{
    Estimator, Kernel, MmdConfig, MmdImplementation, SimdLevel, mmd_with, set_max_simd, simd_level,
};

fn pattern(rows: usize, cols: usize, a: f64, dtype: DType) -> Var {
    let v: Vec<f64> = (0..rows * cols)
        .map(|i| (a * i as f64).sin() * 1.7)
        .collect();
    let t = Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap();
    Var::from_tensor(&t.to_dtype(dtype).unwrap()).unwrap()
}

/// Value and both gradients, as f64 bits, for every kernel, estimator and dtype, on sizes
/// that leave partial chunks (the pass works in chunks of 64 columns).
fn run() -> Vec<Vec<u64>> {
    let mut out = Vec::new();
    for dtype in [DType::F32, DType::F64] {
        for (n, m, d) in [(37, 53, 5), (150, 130, 8)] {
            for kernel in [Kernel::InverseMultiquadratic, Kernel::Rbf] {
                for estimator in [Estimator::UStatistic, Estimator::VStatistic] {
                    let cfg = MmdConfig {
                        kernel,
                        estimator,
                        ..MmdConfig::default()
                    };
                    let q = pattern(n, d, 0.37, dtype);
                    let p = pattern(m, d, 0.71, dtype);
                    let v = mmd_with(q.as_tensor(), p.as_tensor(), &cfg, MmdImplementation::Fused)
                        .unwrap();
                    let grads = v.backward().unwrap();
                    for t in [&v, grads.get(&q).unwrap(), grads.get(&p).unwrap()] {
                        let t = t.flatten_all().unwrap();
                        let bits: Vec<u64> = match dtype {
                            DType::F32 => t
                                .to_vec1::<f32>()
                                .unwrap()
                                .iter()
                                .map(|x| x.to_bits() as u64)
                                .collect(),
                            _ => t
                                .to_vec1::<f64>()
                                .unwrap()
                                .iter()
                                .map(|x| x.to_bits())
                                .collect(),
                        };
                        out.push(bits);
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_simd_level_gives_the_baselines_bits() {
    set_max_simd(SimdLevel::Baseline);
    assert_eq!(simd_level(), SimdLevel::Baseline);
    let reference = run();
    assert_eq!(reference.len(), 2 * 2 * 2 * 2 * 3);
    for level in [SimdLevel::Avx2, SimdLevel::Avx512] {
        set_max_simd(level);
        let used = simd_level();
        assert!(used <= level, "{used:?} above the cap {level:?}");
        println!("cap {level:?}: running {used:?}");
        for (i, (got, want)) in run().iter().zip(&reference).enumerate() {
            assert_eq!(
                got, want,
                "{level:?}: output {i} differs from the baseline's"
            );
        }
    }
}
