//! Parameter counts at the paper's width equal those of the same networks
//! built in PyTorch (`xtask/reference/nets_reference.py`, pasted in
//! `tests/reference/torch_values.rs`).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use common::arch_from_name;
use wae_nets::{
    Decoder, DecoderConfig, Discriminator, DiscriminatorConfig, Encoder, EncoderConfig,
    EncoderKind, is_running_stat, parameter_count,
};

#[allow(dead_code)]
mod reference {
    pub struct RefStats {
        pub shape: &'static [usize],
        pub sum: f64,
        pub sum_sq: f64,
        pub probes: [f64; 8],
    }
    pub struct RefCase {
        pub name: &'static str,
        pub train: bool,
        pub outputs: &'static [RefStats],
        pub running: Option<(&'static str, f64, f64)>,
    }
    include!("reference/torch_values.rs");
}

/// A backend that records the shape of every variable and hands out zeros
/// (the full-width networks have up to 21M parameters; random init would
/// only slow the test down).
#[derive(Default, Clone)]
struct ShapeRecorder {
    shapes: Arc<Mutex<BTreeMap<String, Vec<usize>>>>,
}

impl SimpleBackend for ShapeRecorder {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let previous = self
            .shapes
            .lock()
            .unwrap()
            .insert(name.to_string(), s.dims().to_vec());
        assert!(previous.is_none(), "variable {name} created twice");
        Tensor::zeros(s, dtype, dev)
    }
    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("unexpected get_unchecked({name})")
    }
    fn contains_tensor(&self, name: &str) -> bool {
        self.shapes.lock().unwrap().contains_key(name)
    }
}

/// Trainable scalars created by `build` (running statistics excluded).
fn count_params(build: impl FnOnce(VarBuilder<'static>)) -> usize {
    let recorder = ShapeRecorder::default();
    let vb = VarBuilder::from_backend(Box::new(recorder.clone()), DType::F32, Device::Cpu);
    build(vb);
    let shapes = recorder.shapes.lock().unwrap();
    shapes
        .iter()
        .filter(|(name, _)| !is_running_stat(name))
        .map(|(_, dims)| dims.iter().product::<usize>())
        .sum()
}

#[test]
fn full_width_parameter_counts_equal_pytorch() {
    assert_eq!(reference::PARAM_COUNTS.len(), 20);
    for &(arch_name, net, torch_count) in reference::PARAM_COUNTS {
        let arch = arch_from_name(arch_name);
        let count = if net == "decoder" {
            let cfg = DecoderConfig::for_architecture(arch);
            count_params(|vb| {
                Decoder::new(&cfg, vb).unwrap();
            })
        } else {
            let kind = match net {
                "encoder_deterministic" => EncoderKind::Deterministic,
                "encoder_gaussian" => EncoderKind::Gaussian,
                "encoder_implicit" => EncoderKind::Implicit,
                other => panic!("unknown network {other}"),
            };
            let cfg = EncoderConfig {
                kind,
                ..EncoderConfig::for_architecture(arch)
            };
            count_params(|vb| {
                Encoder::new(&cfg, vb).unwrap();
            })
        };
        assert_eq!(count, torch_count, "{arch_name} {net}");
    }
    let mnist = count_params(|vb| {
        Discriminator::new(&DiscriminatorConfig::default(), vb).unwrap();
    });
    assert_eq!(mnist, reference::DISCRIMINATOR_MNIST_PARAMS);
    let celeba_cfg = DiscriminatorConfig {
        latent_dim: 64,
        hidden_units: 1024,
        ..Default::default()
    };
    let celeba = count_params(|vb| {
        Discriminator::new(&celeba_cfg, vb).unwrap();
    });
    assert_eq!(celeba, reference::DISCRIMINATOR_CELEBA_PARAMS);
}

#[test]
fn parameter_count_helper_skips_running_stats() {
    // Through a real VarMap at a small width: the helper counts what the
    // recorder counts, and the VarMap also holds the running statistics.
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let cfg = EncoderConfig {
        width_div: 16,
        ..Default::default()
    };
    Encoder::new(&cfg, vb).unwrap();
    let expected = count_params(|vb| {
        Encoder::new(&cfg, vb).unwrap();
    });
    assert_eq!(parameter_count(&varmap, "encoder."), expected);
    let all: usize = varmap
        .all_vars()
        .iter()
        .map(|v| v.as_tensor().elem_count())
        .sum();
    // 4 BatchNorms over 8, 16, 32, 64 channels: 2 * 120 running values.
    assert_eq!(all - expected, 2 * (8 + 16 + 32 + 64));
    assert_eq!(parameter_count(&varmap, "decoder."), 0);
}
