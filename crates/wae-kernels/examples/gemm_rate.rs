//! The gemm crate's f32 rate on `count` independent `(m x k) * (k x n)` products, run in
//! parallel over rayon's threads, each single-threaded, operands hot in cache: the rate
//! the convolution kernels' GEMMs could reach at those shapes.
//!
//! `cargo run --release -p wae-kernels --example gemm_rate -- M K N COUNT`
//! (for example `256 512 256 72`, the Winograd products of the full-width 512->256 layer).
use rayon::prelude::*;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().expect("M K N COUNT: four positive integers"))
        .collect();
    let [m, k, n, count] = args[..] else {
        eprintln!("usage: gemm_rate M K N COUNT");
        std::process::exit(2);
    };
    let lhs = vec![0.5f32; m * k];
    let rhs = vec![0.25f32; k * n];
    let mut dsts: Vec<Vec<f32>> = (0..count).map(|_| vec![0f32; m * n]).collect();
    let mut best = 0f64;
    for rep in 0..4 {
        let t = std::time::Instant::now();
        dsts.par_iter_mut().for_each(|d| {
            // SAFETY: row-major m x k, k x n and m x n buffers of exactly those sizes; `d`
            // is this task's own.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    d.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    lhs.as_ptr(),
                    1,
                    k as isize,
                    rhs.as_ptr(),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            }
        });
        let rate = 2.0 * (m * k * n * count) as f64 / t.elapsed().as_secs_f64() / 1e9;
        if rep > 0 {
            best = best.max(rate);
        }
    }
    assert!(
        dsts.iter()
            .all(|d| d.iter().all(|&v| v == 0.125 * k as f32))
    );
    println!(
        "{m}x{k} * {k}x{n}, {count} products on {} threads: {best:.1} GFLOP/s (best of 3)",
        rayon::current_num_threads()
    );
}
