//! Saving a `VarMap` to safetensors and loading it into freshly built
//! networks gives identical tensors (bit for bit, running statistics
//! included) and identical outputs.

mod common;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use common::*;
use wae_nets::{
    Architecture, Decoder, DecoderConfig, Discriminator, DiscriminatorConfig, Encoder,
    EncoderConfig, EncoderKind, Error,
};

struct Nets {
    varmap: VarMap,
    enc: Encoder,
    dec: Decoder,
    disc: Discriminator,
}

fn build(arch: Architecture, width_div: usize) -> Nets {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let enc = Encoder::new(
        &EncoderConfig {
            width_div,
            kind: EncoderKind::Gaussian,
            ..EncoderConfig::for_architecture(arch)
        },
        vb.clone(),
    )
    .unwrap();
    let dec = Decoder::new(
        &DecoderConfig {
            width_div,
            ..DecoderConfig::for_architecture(arch)
        },
        vb.clone(),
    )
    .unwrap();
    let disc = Discriminator::new(
        &DiscriminatorConfig {
            latent_dim: arch.paper_latent_dim(),
            width_div: 16,
            ..Default::default()
        },
        vb,
    )
    .unwrap();
    Nets {
        varmap,
        enc,
        dec,
        disc,
    }
}

fn all_tensors(varmap: &VarMap) -> Vec<(String, Vec<usize>, Vec<u32>)> {
    let data = varmap.data().lock().unwrap();
    let mut out: Vec<_> = data
        .iter()
        .map(|(n, v)| {
            let bits = values(v.as_tensor()).iter().map(|x| x.to_bits()).collect();
            (n.clone(), v.dims().to_vec(), bits)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn outputs(nets: &Nets, arch: Architecture, train: bool) -> Vec<Vec<u32>> {
    let x = image_input(arch, 3);
    let q = nets.enc.forward_t(&x, train).unwrap();
    let images = nets.dec.forward_t(&q.mean, train).unwrap();
    let logits = nets.disc.forward(&q.mean).unwrap();
    [&q.mean, q.logvar.as_ref().unwrap(), &images, &logits]
        .iter()
        .map(|t| values(t).iter().map(|x| x.to_bits()).collect())
        .collect()
}

#[test]
fn safetensors_round_trip_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    for (arch, width_div) in [
        (Architecture::MnistDcgan, 16),
        (Architecture::Mlp, 16),
        (Architecture::FadingSquares, 100),
    ] {
        let original = build(arch, width_div);
        // Train-mode passes move the running statistics away from their init.
        outputs(&original, arch, true);
        outputs(&original, arch, true);
        let path = dir.path().join(format!("{arch:?}.safetensors"));
        original.varmap.save(&path).unwrap();

        let mut fresh = build(arch, width_div);
        assert_ne!(all_tensors(&fresh.varmap), all_tensors(&original.varmap));
        fresh.varmap.load(&path).unwrap();
        let saved = all_tensors(&original.varmap);
        assert_eq!(all_tensors(&fresh.varmap), saved, "{arch:?} tensors");
        if arch != Architecture::FadingSquares {
            assert!(saved.iter().any(|(n, _, _)| n == "encoder.bn0.running_var"));
        }
        // The networks built before loading see the loaded values.
        assert_eq!(
            outputs(&fresh, arch, false),
            outputs(&original, arch, false),
            "{arch:?} eval outputs"
        );
        assert_eq!(
            outputs(&fresh, arch, true),
            outputs(&original, arch, true),
            "{arch:?} train outputs"
        );
    }
}

#[test]
fn loading_into_a_differently_shaped_network_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mnist.safetensors");
    build(Architecture::MnistDcgan, 16)
        .varmap
        .save(&path)
        .unwrap();
    let mut wider = build(Architecture::MnistDcgan, 8);
    assert!(wider.varmap.load(&path).is_err());
    // And a network built from a checkpoint file directly needs matching shapes too.
    let vb =
        unsafe { VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, &Device::Cpu).unwrap() };
    let err = Encoder::new(
        &EncoderConfig {
            width_div: 8,
            kind: EncoderKind::Gaussian,
            ..Default::default()
        },
        vb.clone(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Candle(_)), "{err}");
    // With the right config it loads, and eval mode runs on the stored statistics.
    let enc = Encoder::new(
        &EncoderConfig {
            width_div: 16,
            kind: EncoderKind::Gaussian,
            ..Default::default()
        },
        vb,
    )
    .unwrap();
    let q = enc
        .forward_t(&image_input(Architecture::MnistDcgan, 2), false)
        .unwrap();
    assert_eq!(q.mean.dims(), &[2, 8]);
}
