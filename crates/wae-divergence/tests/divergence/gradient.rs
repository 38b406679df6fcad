//! Gradients of `mmd` against central finite differences (f64), and fused vs candle-ops.

use candle_core::{DType, Device, Tensor, Var};
use wae_divergence::{Estimator, Kernel, MmdConfig, MmdImplementation, mmd_with};

use crate::{P, Q, scalar};

fn configs() -> Vec<MmdConfig> {
    let mut out = Vec::new();
    for kernel in [Kernel::InverseMultiquadratic, Kernel::Rbf] {
        for estimator in [Estimator::UStatistic, Estimator::VStatistic] {
            out.push(MmdConfig {
                kernel,
                estimator,
                scales: vec![0.05, 0.5, 3.0],
                prior_variance: 0.7,
            });
        }
    }
    out
}

fn value(
    q: &[f64],
    p: &[f64],
    n: usize,
    m: usize,
    d: usize,
    cfg: &MmdConfig,
    implementation: MmdImplementation,
) -> f64 {
    let qz = Tensor::from_slice(q, (n, d), &Device::Cpu).expect("qz");
    let pz = Tensor::from_slice(p, (m, d), &Device::Cpu).expect("pz");
    scalar(&mmd_with(&qz, &pz, cfg, implementation).expect("mmd"))
}

/// Autograd gradients with respect to both samples (both are variables).
fn autograd(
    q: &[f64],
    p: &[f64],
    n: usize,
    m: usize,
    d: usize,
    cfg: &MmdConfig,
    implementation: MmdImplementation,
) -> (Vec<f64>, Vec<f64>) {
    let qz =
        Var::from_tensor(&Tensor::from_slice(q, (n, d), &Device::Cpu).expect("qz")).expect("var");
    let pz =
        Var::from_tensor(&Tensor::from_slice(p, (m, d), &Device::Cpu).expect("pz")).expect("var");
    let loss = mmd_with(qz.as_tensor(), pz.as_tensor(), cfg, implementation).expect("mmd");
    let grads = loss.backward().expect("backward");
    let flat = |v: &Var| {
        grads
            .get(v.as_tensor())
            .expect("gradient")
            .flatten_all()
            .and_then(|t| t.to_vec1::<f64>())
            .expect("to_vec")
    };
    (flat(&qz), flat(&pz))
}

fn finite_differences(
    q: &[f64],
    p: &[f64],
    n: usize,
    m: usize,
    d: usize,
    cfg: &MmdConfig,
    wrt_q: bool,
) -> Vec<f64> {
    let h = 1e-5;
    let len = if wrt_q { q.len() } else { p.len() };
    (0..len)
        .map(|k| {
            let (mut qp, mut pp) = (q.to_vec(), p.to_vec());
            let (mut qm, mut pm) = (q.to_vec(), p.to_vec());
            if wrt_q {
                qp[k] += h;
                qm[k] -= h;
            } else {
                pp[k] += h;
                pm[k] -= h;
            }
            let plus = value(&qp, &pp, n, m, d, cfg, MmdImplementation::CandleOps);
            let minus = value(&qm, &pm, n, m, d, cfg, MmdImplementation::CandleOps);
            (plus - minus) / (2.0 * h)
        })
        .collect()
}

fn assert_close(actual: &[f64], expected: &[f64], tol: f64, what: &str) {
    assert_eq!(actual.len(), expected.len());
    let scale = expected.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    assert!(
        scale > 1e-6,
        "{what}: gradient is identically ~0, the check would be vacuous"
    );
    for (k, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tol * scale,
            "{what}[{k}]: autograd {a} vs finite differences {e} (scale {scale})"
        );
    }
}

#[test]
fn mmd_gradients_match_finite_differences() {
    let (n, m, d) = (6, 5, 3);
    let q = Q.values(n, d);
    let p = P.values(m, d);
    for cfg in configs() {
        let fd_q = finite_differences(&q, &p, n, m, d, &cfg, true);
        let fd_p = finite_differences(&q, &p, n, m, d, &cfg, false);
        for implementation in [MmdImplementation::Fused, MmdImplementation::CandleOps] {
            let (g_q, g_p) = autograd(&q, &p, n, m, d, &cfg, implementation);
            let what = format!("{:?} {:?} {implementation:?}", cfg.kernel, cfg.estimator);
            assert_close(&g_q, &fd_q, 1e-6, &format!("d/dqz {what}"));
            assert_close(&g_p, &fd_p, 1e-6, &format!("d/dpz {what}"));
        }
    }
}

#[test]
fn paired_estimator_gradients_match_finite_differences() {
    let (n, d) = (6, 3);
    let q = Q.values(n, d);
    let p = P.values(n, d);
    for kernel in [Kernel::InverseMultiquadratic, Kernel::Rbf] {
        let cfg = MmdConfig {
            kernel,
            estimator: Estimator::PairedUStatistic,
            scales: vec![0.05, 0.5, 3.0],
            prior_variance: 0.7,
        };
        let fd_q = finite_differences(&q, &p, n, n, d, &cfg, true);
        let fd_p = finite_differences(&q, &p, n, n, d, &cfg, false);
        for implementation in [MmdImplementation::Fused, MmdImplementation::CandleOps] {
            let (g_q, g_p) = autograd(&q, &p, n, n, d, &cfg, implementation);
            let what = format!("{kernel:?} paired {implementation:?}");
            assert_close(&g_q, &fd_q, 1e-6, &format!("d/dqz {what}"));
            assert_close(&g_p, &fd_p, 1e-6, &format!("d/dpz {what}"));
        }
    }
}

#[test]
fn gradient_only_wrt_codes_when_prior_is_constant() {
    // The usual use: only the codes track gradients. The fused op must then skip the prior side.
    let (n, m, d) = (9, 7, 4);
    let q = Q.values(n, d);
    let p = P.values(m, d);
    let cfg = MmdConfig::default();
    let fd_q = finite_differences(&q, &p, n, m, d, &cfg, true);
    let qz =
        Var::from_tensor(&Tensor::from_slice(&q, (n, d), &Device::Cpu).expect("qz")).expect("var");
    let pz = Tensor::from_slice(&p, (m, d), &Device::Cpu).expect("pz");
    let loss = mmd_with(qz.as_tensor(), &pz, &cfg, MmdImplementation::Fused).expect("mmd");
    let grads = loss.backward().expect("backward");
    assert!(
        grads.get(&pz).is_none(),
        "no gradient for a constant prior sample"
    );
    let g = grads
        .get(qz.as_tensor())
        .expect("grad")
        .flatten_all()
        .and_then(|t| t.to_vec1::<f64>())
        .expect("vec");
    assert_close(&g, &fd_q, 1e-6, "d/dqz default config");
}

#[test]
fn gradient_with_duplicate_codes_is_finite_and_matches() {
    // Two identical codes: distance 0 on an off-diagonal pair (the clamp at 0 and k'(0) path).
    let (n, m, d) = (5, 4, 3);
    let mut q = Q.values(n, d);
    let first: Vec<f64> = q[..d].to_vec();
    q[d..2 * d].copy_from_slice(&first);
    let p = P.values(m, d);
    for cfg in configs() {
        let fd_q = finite_differences(&q, &p, n, m, d, &cfg, true);
        for implementation in [MmdImplementation::Fused, MmdImplementation::CandleOps] {
            let (g_q, _) = autograd(&q, &p, n, m, d, &cfg, implementation);
            assert!(g_q.iter().all(|v| v.is_finite()));
            assert_close(
                &g_q,
                &fd_q,
                1e-6,
                &format!(
                    "duplicates {:?} {:?} {implementation:?}",
                    cfg.kernel, cfg.estimator
                ),
            );
        }
    }
}

#[test]
fn fused_and_candle_ops_agree_in_f32() {
    let (n, m, d) = (33, 41, 8);
    for cfg in configs() {
        let mut results = Vec::new();
        for implementation in [MmdImplementation::Fused, MmdImplementation::CandleOps] {
            let qz = Var::from_tensor(&Q.tensor(n, d, DType::F32)).expect("var");
            let pz = P.tensor(m, d, DType::F32);
            let loss = mmd_with(qz.as_tensor(), &pz, &cfg, implementation).expect("mmd");
            let grads = loss.backward().expect("backward");
            let g = grads
                .get(qz.as_tensor())
                .expect("grad")
                .to_dtype(DType::F64)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f64>())
                .expect("vec");
            results.push((scalar(&loss), g));
        }
        let ((v_fused, g_fused), (v_ops, g_ops)) = (&results[0], &results[1]);
        assert!(
            (v_fused - v_ops).abs() <= 1e-5 * v_ops.abs().max(1e-3),
            "value {v_fused} vs {v_ops}"
        );
        assert_close(
            g_fused,
            g_ops,
            1e-4,
            &format!("f32 fused vs ops {:?} {:?}", cfg.kernel, cfg.estimator),
        );
    }
}

#[test]
fn gradient_flows_through_a_model() {
    // The penalty's gradient reaches parameters upstream of the codes (here z = x W).
    let (n, m, d_in, d) = (12, 10, 5, 3);
    let x = Q.tensor(n, d_in, DType::F64);
    let w = Var::from_tensor(&P.tensor(d_in, d, DType::F64)).expect("var");
    let z = x.matmul(w.as_tensor()).expect("matmul");
    let pz = P.tensor(m, d, DType::F64).affine(0.5, 0.0).expect("pz");
    let loss = mmd_with(&z, &pz, &MmdConfig::default(), MmdImplementation::Fused).expect("mmd");
    let grads = loss.backward().expect("backward");
    let g = grads
        .get(w.as_tensor())
        .expect("grad of W")
        .flatten_all()
        .and_then(|t| t.to_vec1::<f64>())
        .expect("vec");
    // Finite differences on W.
    let base: Vec<f64> = P.values(d_in, d);
    let h = 1e-5;
    for k in 0..base.len() {
        let eval = |delta: f64| {
            let mut wv = base.clone();
            wv[k] += delta;
            let w = Tensor::from_vec(wv, (d_in, d), &Device::Cpu).expect("w");
            scalar(
                &mmd_with(
                    &x.matmul(&w).expect("z"),
                    &pz,
                    &MmdConfig::default(),
                    MmdImplementation::CandleOps,
                )
                .expect("mmd"),
            )
        };
        let fd = (eval(h) - eval(-h)) / (2.0 * h);
        assert!(
            (g[k] - fd).abs() <= 1e-6 * fd.abs().max(1e-2),
            "dW[{k}]: {} vs {fd}",
            g[k]
        );
    }
}

/// `dMMD/dqz` by direct double loops (independent of both implementations).
fn direct_gradient(
    q: &[f64],
    p: &[f64],
    n: usize,
    m: usize,
    d: usize,
    cfg: &MmdConfig,
) -> Vec<f64> {
    let consts = cfg.kernel_constants(d);
    let k_prime = |dist: f64| -> f64 {
        consts
            .iter()
            .map(|&c| match cfg.kernel {
                Kernel::InverseMultiquadratic => -c / ((c + dist) * (c + dist)),
                Kernel::Rbf => -(-dist / c).exp() / c,
            })
            .sum()
    };
    let (nf, mf) = (n as f64, m as f64);
    let c_qq = match cfg.estimator {
        Estimator::UStatistic => 1.0 / (nf * (nf - 1.0)),
        Estimator::VStatistic => 1.0 / (nf * nf),
        Estimator::PairedUStatistic => panic!("direct_gradient covers the U and V statistics"),
    };
    let c_qp = -2.0 / (nf * mf);
    let mut grad = vec![0.0; n * d];
    for a in 0..n {
        let qa = &q[a * d..(a + 1) * d];
        for (others, coef, skip) in [(q, 4.0 * c_qq, Some(a)), (p, 2.0 * c_qp, None)] {
            for (j, other) in others.chunks_exact(d).enumerate() {
                if skip == Some(j) {
                    continue;
                }
                let dist: f64 = qa.iter().zip(other).map(|(x, y)| (x - y) * (x - y)).sum();
                let w = coef * k_prime(dist);
                for k in 0..d {
                    grad[a * d + k] += w * (qa[k] - other[k]);
                }
            }
        }
    }
    grad
}

#[test]
fn fused_gradient_over_several_row_blocks_matches_direct_sums() {
    // 1100 x 1000 pairs exceed one GEMM block (2^20 dot products), so the gradient is
    // assembled from several row blocks.
    let (n, m, d) = (1100, 1000, 2);
    let q = Q.values(n, d);
    let p = P.values(m, d);
    for cfg in [
        MmdConfig::default(),
        MmdConfig {
            kernel: Kernel::Rbf,
            estimator: Estimator::VStatistic,
            ..MmdConfig::default()
        },
    ] {
        let expected = direct_gradient(&q, &p, n, m, d, &cfg);
        // MMD is symmetric in its two samples, so dMMD/dpz is the same sum with the roles swapped.
        let expected_p = direct_gradient(&p, &q, m, n, d, &cfg);
        let qz = Var::from_tensor(&Tensor::from_slice(&q, (n, d), &Device::Cpu).expect("qz"))
            .expect("var");
        let pz = Var::from_tensor(&Tensor::from_slice(&p, (m, d), &Device::Cpu).expect("pz"))
            .expect("var");
        let loss = mmd_with(
            qz.as_tensor(),
            pz.as_tensor(),
            &cfg,
            MmdImplementation::Fused,
        )
        .expect("mmd");
        let grads = loss.backward().expect("backward");
        let flat = |v: &Var| {
            grads
                .get(v.as_tensor())
                .expect("grad")
                .flatten_all()
                .and_then(|t| t.to_vec1::<f64>())
                .expect("vec")
        };
        let g = flat(&qz);
        assert_close(
            &flat(&pz),
            &expected_p,
            1e-9,
            &format!("d/dpz {:?} {:?} n = {n}", cfg.kernel, cfg.estimator),
        );
        assert_close(
            &g,
            &expected,
            1e-9,
            &format!("{:?} {:?} n = {n}", cfg.kernel, cfg.estimator),
        );
    }
}
