//! Throughput of the FID pieces on the CPU.
//!
//! `cargo bench -p wae-metrics --bench metrics` (add `-- inception` or `-- frechet` to pick one).
//! - `inception_features/batch`: pool3 features of a batch of 299x299 RGB images (no
//!   resize) with formula weights; random weights cost exactly what the real ones do.
//! - `frechet_distance/2048`: FID between two 2048-d Gaussians (covariances of 4096
//!   deterministic-formula samples, full rank).
//! - `gaussian_stats/4096x2048`: mean and covariance of 4096 feature vectors.
//! - `softmax_adagrad/5000x16x5`: 1,000 full-batch Adagrad steps of the beta-VAE metric's
//!   linear classifier on its reference size (5,000 points, 16 dimensions, 5 classes);
//!   `WAE_SIMD=avx2|baseline` caps its SIMD back end (AVX-512 by default).
//!
//! The PyTorch side: `xtask/reference/inception_reference.py --bench` and
//! `xtask/reference/metrics_reference.py --bench`. Results: docs/performance.md.

use std::hint::black_box;
use std::time::Duration;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;
use wae_metrics::softmax_regression::{SoftmaxAdagrad, train_softmax_regression};
use wae_metrics::testing::{inception_formula_weights, uniform};
use wae_metrics::{GaussianStats, InceptionConfig, InceptionV3, frechet_distance};

fn inception(c: &mut Criterion) {
    let dev = Device::Cpu;
    let weights = inception_formula_weights(&dev).expect("formula weights");
    let net = InceptionV3::new(
        &InceptionConfig::default(),
        VarBuilder::from_tensors(weights, DType::F32, &dev),
    )
    .expect("network");
    let mut group = c.benchmark_group("inception_features");
    for batch in [1usize, 8] {
        let values: Vec<f32> = (0..(batch * 3 * 299 * 299) as u64)
            .map(|k| uniform(1, k) as f32)
            .collect();
        let images = Tensor::from_vec(values, (batch, 3, 299, 299), &dev).expect("images");
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch{batch}"), |b| {
            b.iter(|| black_box(net.features(&images).expect("features")))
        });
    }
    group.finish();
}

fn features(seed: u32, n: usize, d: usize) -> Array2<f64> {
    let u = |i: usize, j: usize| uniform(seed, (i * d + j) as u64);
    Array2::from_shape_fn((n, d), |(i, j)| u(i, j) + 0.5 * u(i, (j + 1) % d))
}

fn frechet(c: &mut Criterion) {
    let d = 2048;
    let xa = features(1, 4096, d);
    let xb = features(2, 4096, d);
    let a = GaussianStats::from_features(&xa).expect("stats a");
    let b = GaussianStats::from_features(&xb).expect("stats b");
    c.bench_function("frechet_distance/2048", |bench| {
        bench.iter(|| black_box(frechet_distance(&a, &b).expect("fid")))
    });
    c.bench_function("gaussian_stats/4096x2048", |bench| {
        bench.iter(|| black_box(GaussianStats::from_features(&xa).expect("stats")))
    });
}

fn softmax(c: &mut Criterion) {
    let (n, d, k) = (5000, 16, 5);
    let points = features(3, n, d);
    let labels: Vec<usize> = (0..n).map(|i| (i * 7 + i / 11) % k).collect();
    let init = Array2::from_shape_fn((d, k), |(i, j)| uniform(4, (i * k + j) as u64) * 0.1);
    let settings = SoftmaxAdagrad {
        iterations: 1000,
        ..SoftmaxAdagrad::default()
    };
    c.bench_function(&format!("softmax_adagrad/{n}x{d}x{k}"), |bench| {
        bench.iter(|| {
            black_box(
                train_softmax_regression(points.view(), &labels, k, &init, &settings)
                    .expect("train"),
            )
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(15));
    targets = inception, frechet, softmax
}
criterion_main!(benches);
