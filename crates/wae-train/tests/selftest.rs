//! `wae selftest` on the CPU: the fast kernels against candle's ops and the f64 truth, at
//! a small width and batch. One test in its own binary: the self-test flips the
//! process-wide fast-kernel switches.

use candle_core::Device;
use wae_train::selftest::{MODEL_PRESETS, SelftestOptions, selftest};

#[test]
fn the_fast_cpu_kernels_pass_the_self_test() {
    let opts = SelftestOptions {
        batch: 8,
        width_div: 16,
        seed: 3,
    };
    let mut parts = Vec::new();
    let report = selftest(&Device::Cpu, &opts, |p| parts.push(p.to_string())).unwrap();
    assert_eq!(report.device.name, "cpu");
    assert!(report.failures().is_empty(), "{:#?}", report.failures());
    // Every model family ran, with its loss, gradients and step compared.
    for name in MODEL_PRESETS {
        let group = format!("step {name}");
        let whats: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| c.group == group)
            .map(|c| c.what.as_str())
            .collect();
        assert!(whats.contains(&"loss total"), "{name}: {whats:?}");
        assert!(
            whats.iter().any(|w| w.starts_with("grad encoder.")),
            "{name}"
        );
        assert!(
            whats.iter().any(|w| w.starts_with("grad decoder.")),
            "{name}"
        );
        assert!(
            whats.iter().any(|w| w.starts_with("weights after")),
            "{name}"
        );
    }
    assert_eq!(parts.len(), 1 + MODEL_PRESETS.len());
    // The device side really ran the fast kernels: a convolution's errors differ from
    // candle's ops' (the two sides would be identical if the switch did nothing).
    let conv = report
        .checks
        .iter()
        .find(|c| c.group.starts_with("conv2d") && c.what == "grad weight")
        .unwrap();
    assert!(conv.error != conv.reference_error, "{conv:?}");
    // The switches are back on the fast kernels.
    assert!(!wae_kernels::force_fallback());
}
