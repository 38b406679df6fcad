//! Bit-for-bit determinism across thread counts: forward values and gradients of every
//! op must not depend on the size of rayon's pool (nor on scheduling), so that training
//! (and its resume) is reproducible at any `RAYON_NUM_THREADS`.
//!
//! This file holds a single test because it flips the process-wide Winograd switch.

use candle_core::{Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wae_kernels::{Activation, Padding2d};

type R = Result<(), Box<dyn std::error::Error>>;

fn randn(rng: &mut StdRng, shape: &[usize]) -> candle_core::Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
}

/// The bits of every element of `t`.
fn bits(t: &Tensor) -> candle_core::Result<Vec<u32>> {
    Ok(t.flatten_all()?
        .to_vec1::<f32>()?
        .into_iter()
        .map(f32::to_bits)
        .collect())
}

/// One op applied to three variables (input, weight, bias).
type Op<'a> = dyn Fn(&Tensor, &Tensor, &Tensor) -> wae_kernels::Result<Tensor> + Sync + 'a;

/// The output and the gradients of `sum(op(x, w, b) * r)` for x, w and b, as bits.
fn run(op: &Op<'_>, vars: &[Var; 3], r_seed: u64) -> Result<Vec<Vec<u32>>, String> {
    run_inner(op, vars, r_seed).map_err(|e| e.to_string())
}

fn run_inner(
    op: &Op<'_>,
    vars: &[Var; 3],
    r_seed: u64,
) -> Result<Vec<Vec<u32>>, Box<dyn std::error::Error>> {
    let y = op(&vars[0], &vars[1], &vars[2])?;
    let r = randn(&mut StdRng::seed_from_u64(r_seed), y.dims())?;
    let grads = (&y * &r)?.sum_all()?.backward()?;
    let mut out = vec![bits(&y)?];
    for v in vars {
        out.push(bits(grads.get(v).ok_or("missing gradient")?)?);
    }
    Ok(out)
}

/// Runs `op` in pools of 1, 2 and 3 threads and asserts bit-identical results.
fn check(name: &str, op: &Op<'_>, shapes: [&[usize]; 3], seed: u64) -> R {
    let mut rng = StdRng::seed_from_u64(seed);
    let vars = [
        Var::from_tensor(&randn(&mut rng, shapes[0])?)?,
        Var::from_tensor(&(randn(&mut rng, shapes[1])? * 0.1)?)?,
        Var::from_tensor(&(randn(&mut rng, shapes[2])? * 0.1)?)?,
    ];
    let mut reference: Option<Vec<Vec<u32>>> = None;
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?;
        let got = pool.install(|| run(op, &vars, seed + 1000))?;
        match &reference {
            None => reference = Some(got),
            Some(want) => {
                for (i, (a, b)) in got.iter().zip(want).enumerate() {
                    let what = ["output", "input grad", "weight grad", "bias grad"][i];
                    let differ = a.iter().zip(b).filter(|(x, y)| x != y).count();
                    assert!(
                        a.len() == b.len() && differ == 0,
                        "{name}: {what} differs at {threads} threads ({differ} elements)"
                    );
                }
            }
        }
    }
    Ok(())
}

#[test]
fn ops_are_bit_identical_across_thread_counts() -> R {
    let same = Padding2d {
        top: 1,
        bottom: 2,
        left: 1,
        right: 2,
    };
    // Encoder-like convolutions: many small planes (groups of samples per task,
    // several kernel-gradient slots) and a few large ones (one sample per task).
    check(
        "conv2d-8x8",
        &|x, w, b| wae_kernels::conv2d_padded(x, w, Some(b), 2, same),
        [&[37, 16, 8, 8], &[24, 16, 4, 4], &[24]],
        1,
    )?;
    check(
        "conv2d-28x28",
        &|x, w, b| wae_kernels::conv2d_padded(x, w, Some(b), 2, same),
        [&[9, 3, 28, 28], &[8, 3, 4, 4], &[8]],
        2,
    )?;
    check(
        "conv2d-3x3-s1",
        &|x, w, b| wae_kernels::conv2d(x, w, Some(b), 1, 1),
        [&[5, 4, 9, 7], &[6, 4, 3, 3], &[6]],
        3,
    )?;
    // Transposed convolutions: the Winograd layer, the same layer on the GEMM path,
    // and shapes only the GEMM path takes.
    for winograd in [true, false] {
        wae_kernels::set_winograd_enabled(winograd);
        let name = if winograd { "winograd" } else { "gemm" };
        check(
            &format!("convt-4x4-s2-{name}-7x7"),
            &|x, w, b| wae_kernels::conv_transpose2d(x, w, Some(b), 2, 1, 0),
            [&[23, 32, 7, 7], &[32, 16, 4, 4], &[16]],
            4,
        )?;
        check(
            &format!("convt-4x4-s2-{name}-14x14"),
            &|x, w, b| wae_kernels::conv_transpose2d(x, w, Some(b), 2, 1, 0),
            [&[11, 8, 14, 14], &[8, 4, 4, 4], &[4]],
            5,
        )?;
    }
    wae_kernels::set_winograd_mode(wae_kernels::WinogradMode::Auto);
    check(
        "convt-5x5-s2",
        &|x, w, b| wae_kernels::conv_transpose2d(x, w, Some(b), 2, 2, 1),
        [&[13, 16, 8, 8], &[16, 8, 5, 5], &[8]],
        6,
    )?;
    check(
        "convt-4x4-s1",
        &|x, w, b| wae_kernels::conv_transpose2d(x, w, Some(b), 1, 1, 0),
        [&[7, 8, 5, 5], &[8, 1, 4, 4], &[1]],
        7,
    )?;
    for activation in [Activation::Identity, Activation::Relu] {
        check(
            &format!("batch_norm_train-{activation:?}"),
            &|x, w, b| {
                Ok(wae_kernels::batch_norm_train(x, Some(w), Some(b), 1e-5, activation)?.output)
            },
            [&[29, 24, 7, 7], &[24], &[24]],
            8,
        )?;
    }
    // The fully connected layer: its products are split into one block per thread
    // (the dSprites nets' first layer and a small batch), or left to gemm when small.
    for (n, d_in, d_out, seed) in [(100, 4096, 1200, 9), (7, 300, 520, 10), (5, 16, 40, 11)] {
        check(
            &format!("linear-{n}x{d_in}->{d_out}"),
            &|x, w, b| wae_kernels::linear(x, w, b),
            [&[n, d_in], &[d_out, d_in], &[d_out]],
            seed,
        )?;
    }
    Ok(())
}
