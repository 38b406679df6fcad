//! Phase timings of the fused MMD on the CPU: forward without gradient (blockwise), forward
//! with gradient, backward. `cargo run --release -p wae-divergence --example mmd_timing -- N D REPS`.
//! (The benchmark proper is `benches/mmd.rs`.)
use std::time::Instant;

use candle_core::{DType, Device, Var};
use rand::{SeedableRng, rngs::StdRng};
use wae_divergence::{MmdConfig, MmdImplementation, Prior, mmd_blockwise, mmd_with};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap_or(1000))
        .collect();
    let (n, d, reps) = (
        args.first().copied().unwrap_or(1000),
        args.get(1).copied().unwrap_or(8),
        args.get(2).copied().unwrap_or(5),
    );
    let mut rng = StdRng::seed_from_u64(0);
    let q = Var::from_tensor(&Prior::Normal { variance: 2.0 }.sample(
        n,
        d,
        &mut rng,
        &Device::Cpu,
        DType::F32,
    )?)?;
    let p = Prior::default().sample(n, d, &mut rng, &Device::Cpu, DType::F32)?;
    let cfg = MmdConfig::default();
    for _ in 0..reps {
        let t0 = Instant::now();
        let v = mmd_blockwise(q.as_tensor(), &p, &cfg, 128)?;
        let t1 = Instant::now();
        let loss = mmd_with(q.as_tensor(), &p, &cfg, MmdImplementation::Fused)?;
        let t2 = Instant::now();
        let g = loss.backward()?;
        let t3 = Instant::now();
        let _ = g.get(q.as_tensor());
        println!(
            "n={n} d={d}: fwd no-grad {:.2} ms, fwd with grad cache {:.2} ms, bwd {:.2} ms (value {v:.4e})",
            (t1 - t0).as_secs_f64() * 1e3,
            (t2 - t1).as_secs_f64() * 1e3,
            (t3 - t2).as_secs_f64() * 1e3
        );
    }
    Ok(())
}
