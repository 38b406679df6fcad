//! Forward outputs equal the same networks in PyTorch (f64) for fixed weights
//! and inputs, in training and evaluation mode, to 1e-4 (relative for values
//! above 1). The expected numbers come from `xtask/reference/nets_reference.py`
//! and live in `tests/reference/torch_values.rs`.

mod common;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use common::*;
use wae_nets::{
    Decoder, DecoderConfig, Discriminator, DiscriminatorConfig, Encoder, EncoderConfig, EncoderKind,
};

/// Statistics of one output tensor.
pub struct RefStats {
    pub shape: &'static [usize],
    pub sum: f64,
    pub sum_sq: f64,
    pub probes: [f64; 8],
}

/// One network run.
pub struct RefCase {
    pub name: &'static str,
    pub train: bool,
    pub outputs: &'static [RefStats],
    /// First BatchNorm (by name) after the forward: (prefix, sum of running_mean, sum of running_var).
    pub running: Option<(&'static str, f64, f64)>,
}

#[allow(dead_code)]
mod reference {
    use super::{RefCase, RefStats};
    include!("reference/torch_values.rs");
}

fn close(got: f64, want: f64, scale: f64) -> bool {
    (got - want).abs() <= 1e-4 * scale.max(1.0)
}

fn check_stats(case: &str, got: &candle_core::Tensor, want: &RefStats) {
    assert_eq!(got.dims(), want.shape, "{case}: shape");
    let v = values(got);
    let n = v.len();
    let sum: f64 = v.iter().map(|&x| x as f64).sum();
    let sum_sq: f64 = v.iter().map(|&x| (x as f64) * (x as f64)).sum();
    assert!(
        close(sum, want.sum, (n as f64 * want.sum_sq).sqrt()),
        "{case}: sum {sum} vs torch {}",
        want.sum
    );
    assert!(
        close(sum_sq, want.sum_sq, want.sum_sq),
        "{case}: sum of squares {sum_sq} vs torch {}",
        want.sum_sq
    );
    for (j, &p) in want.probes.iter().enumerate() {
        let idx = j * (n - 1) / 7;
        let g = v[idx] as f64;
        assert!(
            close(g, p, p.abs()),
            "{case}: value [{idx}] {g} vs torch {p}"
        );
    }
}

fn check_running(case: &RefCase, varmap: &VarMap) {
    let Some((prefix, mean_sum, var_sum)) = case.running else {
        return;
    };
    let data = varmap.data().lock().unwrap();
    let rm: f64 = values(data[&format!("{prefix}.running_mean")].as_tensor())
        .iter()
        .map(|&x| x as f64)
        .sum();
    let rv: f64 = values(data[&format!("{prefix}.running_var")].as_tensor())
        .iter()
        .map(|&x| x as f64)
        .sum();
    assert!(
        close(rm, mean_sum, mean_sum.abs()),
        "{}: running_mean sum {rm} vs {mean_sum}",
        case.name
    );
    assert!(
        close(rv, var_sum, var_sum.abs()),
        "{}: running_var sum {rv} vs {var_sum}",
        case.name
    );
}

fn kind_from(name: &str) -> EncoderKind {
    match name {
        "encoder_deterministic" => EncoderKind::Deterministic,
        "encoder_gaussian" => EncoderKind::Gaussian,
        "encoder_implicit" => EncoderKind::Implicit,
        other => panic!("unknown kind {other}"),
    }
}

fn run_case(case: &RefCase) {
    let (arch_name, net) = case.name.split_once('/').unwrap();
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    if arch_name == "discriminator" {
        let prior = match net {
            "prior_None" => None,
            "prior_2.0" => Some(2.0),
            other => panic!("unknown discriminator case {other}"),
        };
        let cfg = DiscriminatorConfig {
            width_div: 16,
            prior_trick_variance: prior,
            ..Default::default()
        };
        let disc = Discriminator::new(&cfg, vb).unwrap();
        set_deterministic_weights(&varmap, "discriminator");
        let out = disc.forward(&code_input(3, 8)).unwrap();
        check_stats(case.name, &out, &case.outputs[0]);
        return;
    }
    let arch = arch_from_name(arch_name);
    let &(_, width_div, batch) = reference::REF_SETUPS
        .iter()
        .find(|(a, _, _)| *a == arch_name)
        .unwrap();
    let d_z = arch.paper_latent_dim();
    if net == "decoder" {
        let cfg = DecoderConfig {
            width_div,
            ..DecoderConfig::for_architecture(arch)
        };
        let dec = Decoder::new(&cfg, vb).unwrap();
        set_deterministic_weights(&varmap, "decoder");
        let logits = dec
            .forward_logits_t(&code_input(batch, d_z), case.train)
            .unwrap();
        check_stats(case.name, &logits, &case.outputs[0]);
        check_running(case, &varmap);
        // The activated output (a second forward would update BN again, so
        // compare the activation applied by forward_t in eval mode only).
        if !case.train {
            let images = dec.forward_t(&code_input(batch, d_z), false).unwrap();
            check_stats(case.name, &images, &case.outputs[1]);
        }
        return;
    }
    let kind = kind_from(net);
    let cfg = EncoderConfig {
        width_div,
        kind,
        ..EncoderConfig::for_architecture(arch)
    };
    let enc = Encoder::new(&cfg, vb).unwrap();
    set_deterministic_weights(&varmap, "encoder");
    let x = image_input(arch, batch);
    let out = match kind {
        EncoderKind::Implicit => enc
            .forward_with_noise_t(&x, &noise_input(batch, d_z), case.train)
            .unwrap(),
        _ => enc.forward_t(&x, case.train).unwrap(),
    };
    check_stats(case.name, &out.mean, &case.outputs[0]);
    match (&out.logvar, case.outputs.get(1)) {
        (Some(lv), Some(want)) => check_stats(case.name, lv, want),
        (None, None) => {}
        _ => panic!("{}: logvar presence differs from torch", case.name),
    }
    check_running(case, &varmap);
}

#[test]
fn every_case_matches_pytorch() {
    assert!(reference::REF_CASES.len() >= 40);
    for case in reference::REF_CASES {
        run_case(case);
    }
}

#[test]
fn decoder_train_mode_activation_matches_pytorch() {
    // forward_t in train mode = activation of the train-mode logits.
    for case in reference::REF_CASES
        .iter()
        .filter(|c| c.train && c.name.ends_with("/decoder"))
    {
        let arch_name = case.name.split('/').next().unwrap();
        let arch = arch_from_name(arch_name);
        let &(_, width_div, batch) = reference::REF_SETUPS
            .iter()
            .find(|(a, _, _)| *a == arch_name)
            .unwrap();
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let cfg = DecoderConfig {
            width_div,
            ..DecoderConfig::for_architecture(arch)
        };
        let dec = Decoder::new(&cfg, vb).unwrap();
        set_deterministic_weights(&varmap, "decoder");
        let images = dec
            .forward_t(&code_input(batch, arch.paper_latent_dim()), true)
            .unwrap();
        check_stats(case.name, &images, &case.outputs[1]);
    }
}
