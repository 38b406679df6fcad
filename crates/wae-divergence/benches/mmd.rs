//! Forward + backward of the default MMD penalty (IMQ, 7 scales, U-statistic, f32, CPU).
//!
//! `cargo bench -p wae-divergence --bench mmd` ; filter with e.g. `-- n=1000`.
//! `WAE_BENCH_OPS=1` also times the plain candle-ops implementation (slow at n = 10000).
//! The PyTorch side is `xtask/reference/mmd_bench_torch.py`; results in `docs/performance.md`.

use std::time::Duration;

use candle_core::{DType, Device, Tensor, Var};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::{SeedableRng, rngs::StdRng};
use wae_divergence::{MmdConfig, MmdImplementation, Prior, mmd_with};

fn forward_backward(
    codes: &Var,
    prior: &Tensor,
    cfg: &MmdConfig,
    implementation: MmdImplementation,
) -> f32 {
    let value = mmd_with(codes.as_tensor(), prior, cfg, implementation).expect("mmd forward");
    let grads = value.backward().expect("mmd backward");
    let grad = grads.get(codes.as_tensor()).expect("gradient of the codes");
    // Touch the gradient so nothing is optimised away.
    grad.get(0)
        .and_then(|row| row.get(0))
        .and_then(|v| v.to_scalar::<f32>())
        .expect("read gradient")
}

fn bench_mmd(c: &mut Criterion) {
    let cfg = MmdConfig::default();
    let with_ops = std::env::var("WAE_BENCH_OPS").is_ok_and(|v| v == "1");
    let mut group = c.benchmark_group("mmd_fwd_bwd");
    for &n in &[100usize, 1000, 10_000] {
        for &d in &[8usize, 64] {
            let mut rng = StdRng::seed_from_u64(0);
            let codes = Prior::Normal { variance: 2.0 }
                .sample(n, d, &mut rng, &Device::Cpu, DType::F32)
                .expect("codes");
            let codes = Var::from_tensor(&codes).expect("var");
            let prior = Prior::default()
                .sample(n, d, &mut rng, &Device::Cpu, DType::F32)
                .expect("prior");
            if n >= 10_000 {
                group
                    .sample_size(10)
                    .warm_up_time(Duration::from_millis(100))
                    .measurement_time(Duration::from_secs(5));
            } else {
                group
                    .sample_size(20)
                    .warm_up_time(Duration::from_millis(500))
                    .measurement_time(Duration::from_secs(3));
            }
            let id = format!("n={n}/d={d}");
            group.bench_with_input(BenchmarkId::new("candle-fused", &id), &(), |b, _| {
                b.iter(|| forward_backward(&codes, &prior, &cfg, MmdImplementation::Fused))
            });
            if with_ops {
                group.bench_with_input(BenchmarkId::new("candle-ops", &id), &(), |b, _| {
                    b.iter(|| forward_backward(&codes, &prior, &cfg, MmdImplementation::CandleOps))
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench_mmd);
criterion_main!(benches);
