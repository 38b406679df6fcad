//! A linear softmax classifier trained full-batch with TensorFlow 1's Adagrad: the
//! classifier of the beta-VAE disentanglement metric ([`crate::beta_vae_metric`]).
//!
//! The model is `logits = x W + b` with `W` `(d, K)` and `b` `(K)`, the loss the mean
//! softmax cross-entropy over the `N` training points, and one step is
//! `tf.train.AdagradOptimizer(learning_rate, initial_accumulator_value)` on the full
//! batch: for every parameter `accum += g^2; p -= learning_rate * g / sqrt(accum)`, the
//! accumulators starting at `initial_accumulator`.
//!
//! Everything is f64 (TensorFlow ran the reference in f32). The points are stored
//! feature-major in blocks of 8, and one step is one pass over them in chunks that stay
//! in the L1 cache (logits, softmax and gradient per chunk), with no allocation, as
//! SIMD code: AVX-512 or AVX2 when the CPU has it, chosen at run time up to the cap of
//! [`wae_divergence::simd_level`] (`WAE_SIMD=avx2|baseline`), else plain arrays; no FMA
//! contraction, so all give the same bits. On a 2-core Xeon one step on 5,000 points of
//! 16 dimensions and 5 classes takes about 0.11 ms (the metric's 100,000 steps: 11 s):
//! `cargo bench -p wae-metrics --bench metrics -- softmax`, 2026-12-07, 111.6 / 111.8 ms
//! for 1,000 steps with AVX-512 against 118.7 / 127.8 with `WAE_SIMD=avx2`.

use ndarray::{Array1, Array2, ArrayView2};
use rand::Rng;
use rand::rngs::StdRng;

use crate::{Error, Result};

mod lanes;

use lanes::{LANES, Lanes, Portable};

/// Blocks of 8 points whose gradient contributions go to separate accumulators (hides
/// the latency of the additions); the points are padded to whole groups.
const BLOCKS_PER_GROUP: usize = 4;

/// Blocks of 8 points per chunk of the gradient pass: with 16 features, the chunk's
/// points (16 KiB), logit gradients and the accumulators fit in a 48 KiB L1 cache.
const CHUNK_BLOCKS: usize = 16;

/// Adagrad settings of [`train_softmax_regression`]; defaults are TensorFlow 1's with the
/// beta-VAE metric's learning rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SoftmaxAdagrad {
    /// Full-batch steps. Default 100,000.
    pub iterations: usize,
    /// Adagrad's learning rate. Default 1e-2.
    pub learning_rate: f64,
    /// Starting value of every squared-gradient accumulator. Default 0.1 (TensorFlow's).
    pub initial_accumulator: f64,
}

impl Default for SoftmaxAdagrad {
    fn default() -> Self {
        Self {
            iterations: 100_000,
            learning_rate: 1e-2,
            initial_accumulator: 0.1,
        }
    }
}

/// A trained softmax classifier and how it does on its training points.
#[derive(Debug, Clone, PartialEq)]
pub struct SoftmaxRegression {
    /// Kernel `W`, `(d, K)`.
    pub weights: Array2<f64>,
    /// Bias `b`, `(K)`.
    pub bias: Array1<f64>,
    /// Share of the training points whose largest logit is their label (ties to the
    /// lowest class, like `tf.argmax`).
    pub accuracy: f64,
    /// Mean softmax cross-entropy (nats) on the training points.
    pub loss: f64,
}

/// TensorFlow's default dense-layer kernel initialiser, Glorot (Xavier) uniform:
/// `(fan_in, fan_out)` entries drawn uniformly from `[-l, l)`, `l = sqrt(6 / (fan_in +
/// fan_out))`, row by row from `rng`.
pub fn glorot_uniform(fan_in: usize, fan_out: usize, rng: &mut StdRng) -> Array2<f64> {
    let limit = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt();
    Array2::from_shape_simple_fn((fan_in, fan_out), || rng.random_range(-limit..limit))
}

/// Training points `(N, d)` with labels in `0..num_classes`, laid out for the fused pass.
#[derive(Debug, Clone)]
pub struct SoftmaxProblem {
    d: usize,
    k: usize,
    n: usize,
    /// Blocks of 8 points, rounded up to whole groups; the padding has weight 0.
    blocks: usize,
    /// `(d, blocks)`: feature `j` of point `i` at `[j * blocks + i / 8][i % 8]`.
    x: Vec<[f64; LANES]>,
    /// `(K, blocks)`: 1 where the point's label is the class, else 0.
    onehot: Vec<[f64; LANES]>,
    /// `(blocks)`: `1 / N` for a point, 0 for padding.
    weight: Vec<[f64; LANES]>,
    labels: Vec<usize>,
}

impl SoftmaxProblem {
    /// Checks and stores `points` `(N, d)` (finite) and their `labels` (`N`, each below
    /// `num_classes`).
    pub fn new(points: ArrayView2<'_, f64>, labels: &[usize], num_classes: usize) -> Result<Self> {
        let (n, d) = points.dim();
        if n == 0 || d == 0 || num_classes < 2 {
            return Err(Error::InvalidInput(format!(
                "softmax regression: need points (N >= 1, d >= 1) and at least 2 classes, \
                 got points {:?} and {num_classes} classes",
                points.dim()
            )));
        }
        if labels.len() != n {
            return Err(Error::InvalidInput(format!(
                "softmax regression: {n} points but {} labels",
                labels.len()
            )));
        }
        if let Some(&bad) = labels.iter().find(|&&l| l >= num_classes) {
            return Err(Error::InvalidInput(format!(
                "softmax regression: label {bad} is not below the {num_classes} classes"
            )));
        }
        if let Some(((i, j), v)) = points.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "softmax regression: point {i} has a non-finite value {v} in dimension {j}"
            )));
        }
        let blocks = n.div_ceil(BLOCKS_PER_GROUP * LANES) * BLOCKS_PER_GROUP;
        let mut x = vec![[0.0; LANES]; d * blocks];
        for ((i, j), &v) in points.indexed_iter() {
            x[j * blocks + i / LANES][i % LANES] = v;
        }
        let mut onehot = vec![[0.0; LANES]; num_classes * blocks];
        for (i, &l) in labels.iter().enumerate() {
            onehot[l * blocks + i / LANES][i % LANES] = 1.0;
        }
        let mut weight = vec![[0.0; LANES]; blocks];
        for i in 0..n {
            weight[i / LANES][i % LANES] = 1.0 / n as f64;
        }
        Ok(Self {
            d,
            k: num_classes,
            n,
            blocks,
            x,
            onehot,
            weight,
            labels: labels.to_vec(),
        })
    }

    /// Dimension `d` of the points.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// Number of classes `K`.
    pub fn num_classes(&self) -> usize {
        self.k
    }

    /// Trains from `initial_weights` `(d, K)` and a zero bias (TensorFlow's dense-layer
    /// bias initialiser) for `settings.iterations` full-batch Adagrad steps.
    pub fn train(
        &self,
        initial_weights: &Array2<f64>,
        settings: &SoftmaxAdagrad,
    ) -> Result<SoftmaxRegression> {
        if initial_weights.dim() != (self.d, self.k) {
            return Err(Error::InvalidInput(format!(
                "softmax regression: initial weights of shape {:?}, expected ({}, {})",
                initial_weights.dim(),
                self.d,
                self.k
            )));
        }
        if !(settings.learning_rate > 0.0 && settings.initial_accumulator > 0.0) {
            return Err(Error::InvalidInput(format!(
                "softmax regression: Adagrad needs a positive learning rate and initial \
                 accumulator, got {} and {}",
                settings.learning_rate, settings.initial_accumulator
            )));
        }
        let (d, k) = (self.d, self.k);
        // Row-major (d, K) then the K biases: one parameter vector for Adagrad.
        let mut params: Vec<f64> = initial_weights.iter().copied().collect();
        params.extend(std::iter::repeat_n(0.0, k));
        let mut accum = vec![settings.initial_accumulator; params.len()];
        self.adagrad_steps(&mut params, &mut accum, settings);
        let (accuracy, loss) = self.evaluate(&params);
        let weights = Array2::from_shape_vec((d, k), params[..d * k].to_vec())
            .map_err(|e| Error::InvalidInput(format!("softmax regression weights: {e}")))?;
        Ok(SoftmaxRegression {
            weights,
            bias: Array1::from(params[d * k..].to_vec()),
            accuracy,
            loss,
        })
    }

    /// `settings.iterations` Adagrad steps from `params` (`W` row-major, then `b`) with
    /// accumulators `accum`, on the fastest back end the CPU has.
    fn adagrad_steps(&self, params: &mut [f64], accum: &mut [f64], settings: &SoftmaxAdagrad) {
        #[cfg(target_arch = "x86_64")]
        {
            use wae_divergence::SimdLevel;
            let level = wae_divergence::simd_level();
            if level >= SimdLevel::Avx512
                && let Some(s) = lanes::Avx512::detect()
            {
                // SAFETY: `s` exists, so the CPU has AVX-512 F.
                return unsafe { self.adagrad_steps_avx512(s, params, accum, settings) };
            }
            if level >= SimdLevel::Avx2
                && let Some(s) = lanes::Avx2::detect()
            {
                // SAFETY: `s` exists, so the CPU has AVX2.
                return unsafe { self.adagrad_steps_avx2(s, params, accum, settings) };
            }
        }
        self.adagrad_steps_on(Portable, params, accum, settings);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2")]
    unsafe fn adagrad_steps_avx512(
        &self,
        s: lanes::Avx512,
        params: &mut [f64],
        accum: &mut [f64],
        settings: &SoftmaxAdagrad,
    ) {
        self.adagrad_steps_on(s, params, accum, settings);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn adagrad_steps_avx2(
        &self,
        s: lanes::Avx2,
        params: &mut [f64],
        accum: &mut [f64],
        settings: &SoftmaxAdagrad,
    ) {
        self.adagrad_steps_on(s, params, accum, settings);
    }

    #[inline(always)]
    fn adagrad_steps_on<S: Lanes>(
        &self,
        s: S,
        params: &mut [f64],
        accum: &mut [f64],
        settings: &SoftmaxAdagrad,
    ) {
        let mut grad = vec![0.0; params.len()];
        let mut scratch = Scratch::new(self.d, self.k, s.splat(0.0));
        for _ in 0..settings.iterations {
            self.gradient(s, params, &mut grad, &mut scratch);
            for ((p, a), &g) in params.iter_mut().zip(accum.iter_mut()).zip(&grad) {
                *a += g * g;
                *p -= settings.learning_rate * g / a.sqrt();
            }
        }
    }

    /// Gradient of the mean cross-entropy at `params` (`W` row-major, then `b`) into
    /// `grad`, over chunks of [`CHUNK_BLOCKS`] blocks of 8 points (small enough to stay
    /// in the L1 cache). Per chunk, first per block: logits (one class at a time, the sum
    /// in a register), softmax and the logits' gradient; then per parameter: the sum over
    /// the chunk's blocks of feature times logit gradient, into [`BLOCKS_PER_GROUP`]
    /// accumulators of 8 lanes (block `i` into accumulator `i % BLOCKS_PER_GROUP`), added
    /// up after the last chunk.
    #[inline(always)]
    fn gradient<S: Lanes>(
        &self,
        s: S,
        params: &[f64],
        grad: &mut [f64],
        scratch: &mut Scratch<S::V>,
    ) {
        let (d, k) = (self.d, self.k);
        let blocks = self.blocks;
        let (w, b) = params.split_at(d * k);
        let (x, onehot, weights) = (&self.x, &self.onehot, &self.weight);
        let Scratch {
            logits,
            logit_grads,
            sums,
        } = scratch;
        sums.fill([s.splat(0.0); BLOCKS_PER_GROUP]);
        for start in (0..blocks).step_by(CHUNK_BLOCKS) {
            let len = CHUNK_BLOCKS.min(blocks - start);
            for i in 0..len {
                let block = start + i;
                for (c, (logit, &bias)) in logits.iter_mut().zip(b).enumerate() {
                    let mut sum = s.splat(bias);
                    for j in 0..d {
                        let xj = s.load(&x[j * blocks + block]);
                        sum = s.add(sum, s.mul(s.splat(w[j * k + c]), xj));
                    }
                    *logit = sum;
                }
                // Softmax, then d loss / d logit = (softmax - onehot) / N (0 on padding).
                let mut max = logits[0];
                for &logit in &logits[1..] {
                    max = s.max(logit, max);
                }
                let mut sum = s.splat(0.0);
                for logit in logits.iter_mut() {
                    *logit = lanes::exp(s, s.sub(*logit, max));
                    sum = s.add(sum, *logit);
                }
                let weight = s.load(&weights[block]);
                let scale = s.div(weight, sum);
                for (c, &logit) in logits.iter().enumerate() {
                    let y = s.load(&onehot[c * blocks + block]);
                    logit_grads[c * CHUNK_BLOCKS + i] =
                        s.sub(s.mul(logit, scale), s.mul(y, weight));
                }
            }
            for (c, g) in logit_grads.chunks_exact(CHUNK_BLOCKS).enumerate() {
                let g = &g[..len];
                for j in 0..d {
                    let xj = &x[j * blocks + start..j * blocks + start + len];
                    add_products(s, &mut sums[j * k + c], xj, g);
                }
                add_blocks(s, &mut sums[d * k + c], g);
            }
        }
        for (g, acc) in grad.iter_mut().zip(sums.iter()) {
            *g = horizontal_sum(s, acc);
        }
    }

    /// Training accuracy and mean cross-entropy at `params`.
    fn evaluate(&self, params: &[f64]) -> (f64, f64) {
        let (d, k, blocks) = (self.d, self.k, self.blocks);
        let (w, b) = params.split_at(d * k);
        let mut right = 0usize;
        let mut loss = 0.0;
        let mut logits = vec![0.0; k];
        for (i, &label) in self.labels.iter().enumerate() {
            logits.copy_from_slice(b);
            for j in 0..d {
                let x = self.x[j * blocks + i / LANES][i % LANES];
                for (logit, &wjk) in logits.iter_mut().zip(&w[j * k..(j + 1) * k]) {
                    *logit += wjk * x;
                }
            }
            let mut best = 0;
            for c in 1..k {
                if logits[c] > logits[best] {
                    best = c;
                }
            }
            right += usize::from(best == label);
            let max = logits[best];
            let log_sum: f64 = logits.iter().map(|&z| (z - max).exp()).sum::<f64>().ln();
            loss += log_sum - (logits[label] - max);
        }
        (right as f64 / self.n as f64, loss / self.n as f64)
    }
}

/// Buffers of the gradient pass, made once per training.
struct Scratch<V> {
    /// `(K)` logits of a block of points.
    logits: Vec<V>,
    /// `(K, CHUNK_BLOCKS)` the logits' gradients of a chunk's blocks.
    logit_grads: Vec<V>,
    /// `(d K + K)` gradient accumulators.
    sums: Vec<[V; BLOCKS_PER_GROUP]>,
}

impl<V: Copy> Scratch<V> {
    fn new(d: usize, k: usize, zero: V) -> Self {
        Self {
            logits: vec![zero; k],
            logit_grads: vec![zero; k * CHUNK_BLOCKS],
            sums: vec![[zero; BLOCKS_PER_GROUP]; d * k + k],
        }
    }
}

/// Adds `x_i g_i` to accumulator `i % BLOCKS_PER_GROUP` (`x` and `g` a whole number of
/// groups of blocks).
#[inline(always)]
fn add_products<S: Lanes>(
    s: S,
    acc: &mut [S::V; BLOCKS_PER_GROUP],
    x: &[[f64; LANES]],
    g: &[S::V],
) {
    let mut sums = *acc;
    for (xs, gs) in x
        .chunks_exact(BLOCKS_PER_GROUP)
        .zip(g.chunks_exact(BLOCKS_PER_GROUP))
    {
        for ((a, xb), &gb) in sums.iter_mut().zip(xs).zip(gs) {
            *a = s.add(*a, s.mul(s.load(xb), gb));
        }
    }
    *acc = sums;
}

/// [`add_products`] with every `x_i = 1` (the bias's feature).
#[inline(always)]
fn add_blocks<S: Lanes>(s: S, acc: &mut [S::V; BLOCKS_PER_GROUP], g: &[S::V]) {
    let mut sums = *acc;
    for gs in g.chunks_exact(BLOCKS_PER_GROUP) {
        for (a, &gb) in sums.iter_mut().zip(gs) {
            *a = s.add(*a, gb);
        }
    }
    *acc = sums;
}

/// The sum of all lanes of the accumulators: pairwise over accumulators, then lanes in
/// order.
#[inline(always)]
fn horizontal_sum<S: Lanes>(s: S, acc: &[S::V; BLOCKS_PER_GROUP]) -> f64 {
    let total = s.add(s.add(acc[0], acc[1]), s.add(acc[2], acc[3]));
    let mut lanes = [0.0; LANES];
    s.store(total, &mut lanes);
    lanes.iter().sum()
}

/// Trains a softmax classifier on `points` `(N, d)` with `labels` in `0..num_classes`
/// from `initial_weights` `(d, K)` and a zero bias (see the module docs).
pub fn train_softmax_regression(
    points: ArrayView2<'_, f64>,
    labels: &[usize],
    num_classes: usize,
    initial_weights: &Array2<f64>,
    settings: &SoftmaxAdagrad,
) -> Result<SoftmaxRegression> {
    SoftmaxProblem::new(points, labels, num_classes)?.train(initial_weights, settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fused_gradient_is_the_mean_cross_entropy_gradient() {
        // 301 points (two full chunks of 128 and a partial one, padded), 3 dimensions,
        // 4 classes.
        let points = Array2::from_shape_fn((301, 3), |(i, j)| ((i * 7 + j * 3) % 5) as f64 - 2.0);
        let labels: Vec<usize> = (0..301).map(|i| (i * 5 + i / 7) % 4).collect();
        let problem = SoftmaxProblem::new(points.view(), &labels, 4).unwrap();
        let params: Vec<f64> = (0..16).map(|i| ((i * 11) % 7) as f64 * 0.1 - 0.3).collect();
        let mut grad = vec![0.0; 16];
        problem.gradient(
            Portable,
            &params,
            &mut grad,
            &mut Scratch::new(3, 4, [0.0; LANES]),
        );
        #[cfg(target_arch = "x86_64")]
        {
            let mut simd = vec![0.0; 16];
            if let Some(s) = lanes::Avx2::detect() {
                problem.gradient(s, &params, &mut simd, &mut Scratch::new(3, 4, s.splat(0.0)));
                assert_eq!(simd, grad, "AVX2 and portable give the same bits");
            }
            if let Some(s) = lanes::Avx512::detect() {
                let mut wide = vec![0.0; 16];
                problem.gradient(s, &params, &mut wide, &mut Scratch::new(3, 4, s.splat(0.0)));
                assert_eq!(wide, grad, "AVX-512 and portable give the same bits");
            }
        }
        let loss = |p: &[f64]| problem.evaluate(p).1;
        for i in 0..16 {
            let h = 1e-6;
            let mut plus = params.clone();
            plus[i] += h;
            let mut minus = params.clone();
            minus[i] -= h;
            let numeric = (loss(&plus) - loss(&minus)) / (2.0 * h);
            assert!(
                (numeric - grad[i]).abs() < 1e-8,
                "parameter {i}: analytic {} vs numeric {numeric}",
                grad[i]
            );
        }
    }
}
