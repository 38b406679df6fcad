//! Maximum mean discrepancy (MMD) with sums of IMQ or RBF kernels.

use candle_core::{DType, Device, Tensor};

use crate::{Error, Result, check, fused};

/// The positive-definite kernel used by [`mmd`].
///
/// For a scale `s` the kernel constant is `C_s = 2 * d * prior_variance * s`
/// (`d` = latent dimension) and
/// - `InverseMultiquadratic`: `k_s(x, y) = C_s / (C_s + ||x - y||^2)`,
/// - `Rbf`: `k_s(x, y) = exp(-||x - y||^2 / C_s)`.
///
/// The kernel used by the estimator is the **sum** over all scales.
///
/// With the `serde` feature it is written `"imq"` or `"rbf"` (`"inverse_multiquadratic"`
/// is read too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Kernel {
    /// Inverse multiquadratic kernel `C / (C + ||x - y||^2)` (heavy tails; the WAE paper's choice).
    #[default]
    #[cfg_attr(
        feature = "serde",
        serde(rename = "imq", alias = "inverse_multiquadratic")
    )]
    InverseMultiquadratic,
    /// Gaussian (radial basis function) kernel `exp(-||x - y||^2 / C)`.
    Rbf,
}

/// Which estimator of MMD^2 to use.
///
/// With the `serde` feature it is written in snake case: `"u_statistic"`,
/// `"v_statistic"`, `"paired_u_statistic"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Estimator {
    /// Unbiased U-statistic: within-sample sums skip `i == j` and are divided by
    /// `n (n - 1)` and `m (m - 1)`; the cross term is the full mean over `n m` pairs.
    /// Needs `n >= 2` and `m >= 2`. Can be slightly negative.
    #[default]
    UStatistic,
    /// Biased V-statistic: every mean includes the diagonal (`1 / n^2`, `1 / m^2`,
    /// `1 / (n m)`). Always `>= 0` up to rounding.
    VStatistic,
    /// The U-statistic of paired samples (`n == m`, pair `i` = `(qz_i, pz_i)`): the cross
    /// term also skips `i == j` and every sum is divided by `n (n - 1)`, as Rubenstein et
    /// al.'s code (`paruby/Wasserstein-Auto-Encoders`, `models.py`, `_mmd_init`) computes it.
    /// Also unbiased (each pair is an independent draw from `Q x P`). Needs `n == m >= 2`.
    PairedUStatistic,
}

/// Configuration of [`mmd`].
///
/// `Default` is the WAE paper's setting: inverse multiquadratic kernel summed over the
/// scales `[0.1, 0.2, 0.5, 1, 2, 5, 10]`, prior variance 1, U-statistic.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields, default))]
pub struct MmdConfig {
    /// Kernel family.
    pub kernel: Kernel,
    /// Scales `s`; each gives a kernel constant `C_s = 2 * d * prior_variance * s`. Must be
    /// non-empty, each positive and finite.
    pub scales: Vec<f64>,
    /// Variance `sigma_z^2` of the prior (per coordinate). Positive and finite.
    pub prior_variance: f64,
    /// U- or V-statistic.
    pub estimator: Estimator,
}

impl Default for MmdConfig {
    fn default() -> Self {
        Self {
            kernel: Kernel::InverseMultiquadratic,
            scales: vec![0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0],
            prior_variance: 1.0,
            estimator: Estimator::UStatistic,
        }
    }
}

impl MmdConfig {
    /// Checks the configuration: non-empty scales, each positive and finite, and a
    /// positive finite prior variance.
    pub fn validate(&self) -> Result<()> {
        if self.scales.is_empty() {
            return Err(Error::EmptyScales);
        }
        if let Some(&s) = self.scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(Error::NonPositiveScale(s));
        }
        check::variance(self.prior_variance)
    }

    /// The kernel constants `C_s = 2 * latent_dim * prior_variance * s`, one per scale.
    pub fn kernel_constants(&self, latent_dim: usize) -> Vec<f64> {
        self.scales
            .iter()
            .map(|s| 2.0 * latent_dim as f64 * self.prior_variance * s)
            .collect()
    }
}

/// How [`mmd_with`] computes the estimate. Both give the same values and gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MmdImplementation {
    /// `Fused` on the CPU for f32/f64, `CandleOps` everywhere else.
    #[default]
    Auto,
    /// One fused CPU pass over the pairwise distances in blocks of rows (one GEMM per block),
    /// which also computes the analytic gradient when the inputs track gradients (the
    /// backward pass then only scales it). Bounded memory. CPU device, f32 or f64 only.
    Fused,
    /// Plain candle tensor ops differentiated by candle's autograd; any device and float dtype.
    /// Materialises several `n x m` temporaries per kernel scale.
    CandleOps,
}

/// Estimate of MMD^2 between the codes `qz` (n, d) and prior samples `pz` (m, d).
///
/// Returns a scalar tensor (shape `()`, dtype of the inputs) on the inputs' device,
/// differentiable with respect to `qz` (and `pz` if it tracks gradients) through
/// candle's autograd. See [`Kernel`] and [`Estimator`] for the exact formulas; the
/// pairwise squared distances are computed as `||x||^2 + ||y||^2 - 2 x.y`, clamped at 0.
///
/// Errors (never panics) when a tensor is not rank 2 or not a float tensor, the
/// dimensions or dtypes differ, `n < 2` or `m < 2` for the U-statistic (`n, m >= 1`
/// for the V-statistic), or the configuration is invalid (see [`MmdConfig::validate`]).
///
/// # Example: an MMD penalty on your own model's codes
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use candle_nn::{linear, Module, Optimizer, VarBuilder, VarMap, SGD};
/// use rand::{SeedableRng, rngs::StdRng};
/// use wae_divergence::{mmd, MmdConfig, Prior};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let device = Device::Cpu;
/// let varmap = VarMap::new();
/// let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
/// let encoder = linear(20, 8, vb.pp("encoder"))?; // your model: x (N, 20) -> z (N, 8)
/// let decoder = linear(8, 20, vb.pp("decoder"))?;
/// let mut opt = SGD::new(varmap.all_vars(), 1e-2)?;
/// let mut rng = StdRng::seed_from_u64(0);
/// let x = Tensor::randn(0f32, 1.0, (64, 20), &device)?;
///
/// let cfg = MmdConfig::default(); // IMQ, 7 scales, sigma_z^2 = 1, U-statistic
/// let z = encoder.forward(&x)?;
/// let z_prior = Prior::Normal { variance: 1.0 }.sample(64, 8, &mut rng, &device, DType::F32)?;
/// let reconstruction = (decoder.forward(&z)? - &x)?.sqr()?.sum(1)?.mean_all()?;
/// let loss = (reconstruction + (mmd(&z, &z_prior, &cfg)? * 10.0)?)?; // lambda = 10
/// opt.backward_step(&loss)?;
/// # Ok(())
/// # }
/// ```
pub fn mmd(qz: &Tensor, pz: &Tensor, cfg: &MmdConfig) -> Result<Tensor> {
    mmd_with(qz, pz, cfg, MmdImplementation::Auto)
}

/// [`mmd`] with an explicit choice of implementation (for cross-checks and benchmarks).
pub fn mmd_with(
    qz: &Tensor,
    pz: &Tensor,
    cfg: &MmdConfig,
    implementation: MmdImplementation,
) -> Result<Tensor> {
    let (n, m, d) = validate(qz, pz, cfg)?;
    let consts = cfg.kernel_constants(d);
    let value = match resolve(qz, implementation)? {
        Resolved::Fused => fused::mmd(qz, pz, cfg.kernel, &consts, cfg.estimator)?,
        Resolved::Ops => mmd_ops(qz, pz, n, m, cfg.kernel, &consts, cfg.estimator)?,
    };
    if cfg.estimator == Estimator::PairedUStatistic {
        let correction = paired_diagonal_correction(qz, pz, cfg.kernel, &consts)?;
        let correction = correction.to_dtype(value.dtype())?;
        return Ok((value + correction)?);
    }
    Ok(value)
}

/// Validates the inputs of every MMD entry point; returns `(n, m, d)`.
pub(crate) fn validate(qz: &Tensor, pz: &Tensor, cfg: &MmdConfig) -> Result<(usize, usize, usize)> {
    let (n, m, d) = check::two_samples(qz, "qz", pz, "pz")?;
    cfg.validate()?;
    let needed = match cfg.estimator {
        Estimator::UStatistic | Estimator::PairedUStatistic => 2,
        Estimator::VStatistic => 1,
    };
    if cfg.estimator == Estimator::PairedUStatistic && n != m {
        return Err(Error::InvalidArgument(format!(
            "the paired U-statistic needs as many prior samples as codes, got {n} codes and {m} prior samples"
        )));
    }
    if n < needed {
        return Err(Error::TooFewSamples {
            name: "qz",
            needed,
            got: n,
        });
    }
    if m < needed {
        return Err(Error::TooFewSamples {
            name: "pz",
            needed,
            got: m,
        });
    }
    Ok((n, m, d))
}

enum Resolved {
    Fused,
    Ops,
}

fn fused_supported(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64) && !force_fallback()
}

/// 0: not decided yet (read `WAE_FORCE_FALLBACK`), 1: fused CPU pass allowed, 2: candle ops.
static FALLBACK: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Makes [`MmdImplementation::Auto`] use candle's ops (the path of CUDA and other
/// devices) on the CPU too (`true`), or the fused CPU pass again (`false`), for the whole
/// process, overriding the environment variable `WAE_FORCE_FALLBACK=1` (read once).
pub fn set_force_fallback(force: bool) {
    FALLBACK.store(
        if force { 2 } else { 1 },
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// Whether `Auto` is forced onto candle's ops (see [`set_force_fallback`]).
pub fn force_fallback() -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    match FALLBACK.load(Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let on = std::env::var("WAE_FORCE_FALLBACK").is_ok_and(|v| v == "1");
            let _ = FALLBACK.compare_exchange(0, if on { 2 } else { 1 }, Relaxed, Relaxed);
            FALLBACK.load(Relaxed) == 2
        }
    }
}

fn resolve(t: &Tensor, implementation: MmdImplementation) -> Result<Resolved> {
    match implementation {
        MmdImplementation::Auto if fused_supported(t) => Ok(Resolved::Fused),
        MmdImplementation::Auto | MmdImplementation::CandleOps => Ok(Resolved::Ops),
        MmdImplementation::Fused if fused_supported(t) => Ok(Resolved::Fused),
        MmdImplementation::Fused => Err(Error::InvalidArgument(format!(
            "the fused MMD runs on the CPU in f32 or f64, got {:?} on {:?}",
            t.dtype(),
            t.device().location()
        ))),
    }
}

/// The coefficients `(c_qq, c_pp, c_qp)` with `MMD^2 = c_qq S_qq + c_pp S_pp + c_qp S_qp`,
/// where `S_qq` and `S_pp` sum the kernel over off-diagonal pairs and `S_qp` over all pairs
/// (the V-statistic's diagonal is added separately).
pub(crate) fn coefficients(n: usize, m: usize, estimator: Estimator) -> (f64, f64, f64) {
    let (n, m) = (n as f64, m as f64);
    match estimator {
        Estimator::UStatistic => (1.0 / (n * (n - 1.0)), 1.0 / (m * (m - 1.0)), -2.0 / (n * m)),
        Estimator::VStatistic => (1.0 / (n * n), 1.0 / (m * m), -2.0 / (n * m)),
        // n == m; the cross diagonal is removed by `paired_diagonal_correction`.
        Estimator::PairedUStatistic => {
            let c = 1.0 / (n * (n - 1.0));
            (c, c, -2.0 * c)
        }
    }
}

/// For [`Estimator::PairedUStatistic`]: `2 / (n (n - 1)) * sum_i k(qz_i, pz_i)`, the term
/// that removes the paired (diagonal) entries from the cross sum `c_qp S_qp` (differentiable,
/// candle ops; `n` entries only).
pub(crate) fn paired_diagonal_correction(
    qz: &Tensor,
    pz: &Tensor,
    kernel: Kernel,
    consts: &[f64],
) -> Result<Tensor> {
    let n = qz.dim(0)? as f64;
    let dist = (qz - pz)?.sqr()?.sum(1)?;
    let k = kernel_sum(&dist, kernel, consts)?.sum(0)?;
    Ok(k.affine(2.0 / (n * (n - 1.0)), 0.0)?)
}

/// Pairwise squared distances `(n, m)` from candle ops: `||x||^2 + ||y||^2 - 2 x y^T`, clamped at 0.
pub(crate) fn squared_distances(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let x_norms = x.sqr()?.sum_keepdim(1)?; // (n, 1)
    let y_norms = y.sqr()?.sum_keepdim(1)?.t()?; // (1, m)
    let dots = x.matmul(&y.t()?)?; // (n, m)
    Ok(dots
        .affine(-2.0, 0.0)?
        .broadcast_add(&x_norms)?
        .broadcast_add(&y_norms)?
        .relu()?)
}

/// The kernel summed over all constants, elementwise on a distance matrix.
pub(crate) fn kernel_sum(dist: &Tensor, kernel: Kernel, consts: &[f64]) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for &c in consts {
        let k = match kernel {
            Kernel::InverseMultiquadratic => dist.affine(1.0 / c, 1.0)?.recip()?,
            Kernel::Rbf => dist.affine(-1.0 / c, 0.0)?.exp()?,
        };
        total = Some(match total {
            None => k,
            Some(t) => (t + k)?,
        });
    }
    total.ok_or(Error::EmptyScales)
}

/// Sum of a matrix, reduced row-wise first (less rounding than one long f32 sum).
fn sum_matrix(t: &Tensor) -> Result<Tensor> {
    Ok(t.sum(1)?.sum(0)?)
}

/// Sum of `k` over the off-diagonal pairs of one sample (diagonal distances forced to 0,
/// so each diagonal entry is exactly `consts.len()`, which is then subtracted).
fn self_sum_ops(x: &Tensor, n: usize, kernel: Kernel, consts: &[f64]) -> Result<Tensor> {
    let off_diagonal = Tensor::eye(n, x.dtype(), x.device())?.affine(-1.0, 1.0)?;
    let dist = (squared_distances(x, x)? * off_diagonal)?;
    let total = sum_matrix(&kernel_sum(&dist, kernel, consts)?)?;
    Ok(total.affine(1.0, -((n * consts.len()) as f64))?)
}

fn mmd_ops(
    qz: &Tensor,
    pz: &Tensor,
    n: usize,
    m: usize,
    kernel: Kernel,
    consts: &[f64],
    estimator: Estimator,
) -> Result<Tensor> {
    let (c_qq, c_pp, c_qp) = coefficients(n, m, estimator);
    let s_qq = self_sum_ops(qz, n, kernel, consts)?;
    let s_pp = self_sum_ops(pz, m, kernel, consts)?;
    let s_qp = sum_matrix(&kernel_sum(&squared_distances(qz, pz)?, kernel, consts)?)?;
    let mut value =
        ((s_qq.affine(c_qq, 0.0)? + s_pp.affine(c_pp, 0.0)?)? + s_qp.affine(c_qp, 0.0)?)?;
    if estimator == Estimator::VStatistic {
        // The diagonal terms k(x_i, x_i) = number of scales, n of them in S_qq (same for S_pp).
        let diagonal = consts.len() as f64 * (c_qq * n as f64 + c_pp * m as f64);
        value = value.affine(1.0, diagonal)?;
    }
    Ok(value)
}

/// MMD^2 evaluated in bounded memory, for large samples (e.g. 20,000 codes of dimension 64).
///
/// Same value as [`mmd`] (same kernel, constants and estimator), but computed block by
/// block: no matrix larger than `block_size x max(n, m)` (fused CPU path) or
/// `block_size x block_size` (candle-ops path, other devices) exists at any time.
/// Forward only: the inputs are detached and the result is returned as an `f64`,
/// accumulated in double precision.
///
/// Errors as [`mmd`], and for `block_size == 0`.
pub fn mmd_blockwise(qz: &Tensor, pz: &Tensor, cfg: &MmdConfig, block_size: usize) -> Result<f64> {
    mmd_blockwise_with(qz, pz, cfg, block_size, MmdImplementation::Auto)
}

/// [`mmd_blockwise`] with an explicit choice of implementation.
pub fn mmd_blockwise_with(
    qz: &Tensor,
    pz: &Tensor,
    cfg: &MmdConfig,
    block_size: usize,
    implementation: MmdImplementation,
) -> Result<f64> {
    let (n, m, d) = validate(qz, pz, cfg)?;
    if block_size == 0 {
        return Err(Error::InvalidArgument(
            "block_size must be at least 1".into(),
        ));
    }
    let consts = cfg.kernel_constants(d);
    let qz = qz.detach();
    let pz = pz.detach();
    match resolve(&qz, implementation)? {
        Resolved::Fused => {
            let value = fused::mmd_value(&qz, &pz, cfg.kernel, &consts, cfg.estimator, block_size)?;
            if cfg.estimator == Estimator::PairedUStatistic {
                let correction = paired_diagonal_correction(&qz, &pz, cfg.kernel, &consts)?;
                return Ok(value + to_f64(&correction)?);
            }
            Ok(value)
        }
        Resolved::Ops => {
            let (c_qq, c_pp, c_qp) = coefficients(n, m, cfg.estimator);
            let s_qq = tiled_sum(&qz, &qz, true, block_size, cfg.kernel, &consts)?;
            let s_pp = tiled_sum(&pz, &pz, true, block_size, cfg.kernel, &consts)?;
            let s_qp = tiled_sum(&qz, &pz, false, block_size, cfg.kernel, &consts)?;
            let mut value = c_qq * s_qq + c_pp * s_pp + c_qp * s_qp;
            if cfg.estimator == Estimator::VStatistic {
                value += consts.len() as f64 * (c_qq * n as f64 + c_pp * m as f64);
            }
            if cfg.estimator == Estimator::PairedUStatistic {
                let correction = paired_diagonal_correction(&qz, &pz, cfg.kernel, &consts)?;
                value += to_f64(&correction)?;
            }
            Ok(value)
        }
    }
}

/// Sum of the kernel over all pairs (`same_sample = false`) or all off-diagonal pairs
/// (`same_sample = true`, `x` and `y` the same tensor), tile by tile, in f64.
fn tiled_sum(
    x: &Tensor,
    y: &Tensor,
    same_sample: bool,
    block: usize,
    kernel: Kernel,
    consts: &[f64],
) -> Result<f64> {
    let (n, m) = (x.dim(0)?, y.dim(0)?);
    let mut total = 0.0;
    for i0 in (0..n).step_by(block) {
        let bi = block.min(n - i0);
        let x_tile = x.narrow(0, i0, bi)?;
        let j_start = if same_sample { i0 } else { 0 };
        for j0 in (j_start..m).step_by(block) {
            let bj = block.min(m - j0);
            let y_tile = y.narrow(0, j0, bj)?;
            let dist = squared_distances(&x_tile, &y_tile)?;
            let tile = if same_sample && i0 == j0 {
                // Diagonal tile: force the diagonal distances to 0 and drop k(0) = #scales.
                let off_diagonal = Tensor::eye(bi, x.dtype(), x.device())?.affine(-1.0, 1.0)?;
                let k = kernel_sum(&(dist * off_diagonal)?, kernel, consts)?;
                to_f64(&sum_matrix(&k)?)? - (bi * consts.len()) as f64
            } else {
                let k = kernel_sum(&dist, kernel, consts)?;
                let s = to_f64(&sum_matrix(&k)?)?;
                // An off-diagonal tile of a symmetric matrix stands for itself and its mirror.
                if same_sample { 2.0 * s } else { s }
            };
            total += tile;
        }
    }
    Ok(total)
}

fn to_f64(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?
        .to_device(&Device::Cpu)?
        .to_scalar::<f64>()?)
}
