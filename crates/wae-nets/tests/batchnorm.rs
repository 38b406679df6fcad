//! BatchNorm really keeps running statistics: they follow PyTorch's update
//! rule, change during training steps, live in the `VarMap`, get no
//! gradient, and evaluation mode uses them deterministically.

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use common::*;
use wae_nets::layers::BatchNorm;
use wae_nets::{
    Architecture, BatchNormConfig, Decoder, DecoderConfig, Encoder, EncoderConfig, trainable_vars,
};

fn snapshot(varmap: &VarMap, suffix: &str) -> Vec<(String, Vec<f32>)> {
    let data = varmap.data().lock().unwrap();
    let mut out: Vec<(String, Vec<f32>)> = data
        .iter()
        .filter(|(n, _)| n.ends_with(suffix))
        .map(|(n, v)| (n.clone(), values(v.as_tensor())))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn running_statistics_follow_the_pytorch_update_rule() {
    // (N, C, H, W) = (2, 3, 2, 2): per channel 8 values.
    let x = image_input(Architecture::MnistDcgan, 1)
        .flatten_all()
        .unwrap()
        .narrow(0, 0, 24)
        .unwrap()
        .reshape((2, 3, 2, 2))
        .unwrap();
    let xv = values(&x);
    for momentum in [0.1f64, 0.0, 1.0] {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let cfg = BatchNormConfig {
            momentum,
            ..Default::default()
        };
        let bn = BatchNorm::new(3, &cfg, vb.pp("bn")).unwrap();
        let y = bn.forward_t(&x, true).unwrap();
        let yv = values(&y);
        for c in 0..3 {
            let idx: Vec<usize> = (0..2)
                .flat_map(|n| (0..4).map(move |p| n * 12 + c * 4 + p))
                .collect();
            let vals: Vec<f64> = idx.iter().map(|&i| xv[i] as f64).collect();
            let mean = vals.iter().sum::<f64>() / 8.0;
            let biased = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 8.0;
            let unbiased = biased * 8.0 / 7.0;
            let rm = values(bn.running_mean())[c] as f64;
            let rv = values(bn.running_var())[c] as f64;
            assert!(
                (rm - momentum * mean).abs() < 1e-6,
                "momentum {momentum}: {rm}"
            );
            let want_rv = (1.0 - momentum) + momentum * unbiased;
            assert!(
                (rv - want_rv).abs() < 1e-6,
                "momentum {momentum}: {rv} vs {want_rv}"
            );
            // Training output normalised with the biased batch variance.
            for (&i, &v) in idx.iter().zip(&vals) {
                let want = (v - mean) / (biased + 1e-5).sqrt();
                assert!((yv[i] as f64 - want).abs() < 1e-4);
            }
        }
        // The VarMap sees the same numbers (shared storage).
        let data = varmap.data().lock().unwrap();
        assert_eq!(
            values(data["bn.running_mean"].as_tensor()),
            values(bn.running_mean())
        );
    }
}

#[test]
fn training_steps_update_running_stats_and_eval_mode_is_deterministic() {
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let enc = Encoder::new(
        &EncoderConfig {
            width_div: 16,
            ..Default::default()
        },
        vb.clone(),
    )
    .unwrap();
    let dec = Decoder::new(
        &DecoderConfig {
            width_div: 16,
            ..Default::default()
        },
        vb,
    )
    .unwrap();
    let x = image_input(Architecture::MnistDcgan, 6);

    let means_before = snapshot(&varmap, ".running_mean");
    let vars_before = snapshot(&varmap, ".running_var");
    assert_eq!(
        means_before.len(),
        4 + 2,
        "4 encoder + 2 decoder BatchNorms"
    );
    assert!(
        means_before
            .iter()
            .all(|(_, v)| v.iter().all(|&x| x == 0.0))
    );
    assert!(vars_before.iter().all(|(_, v)| v.iter().all(|&x| x == 1.0)));
    let fc_before = snapshot(&varmap, "encoder.fc.weight");

    // The optimiser gets only trainable variables.
    let params: Vec<_> = trainable_vars(&varmap, "")
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert!(params.len() < varmap.all_vars().len());
    let mut opt = AdamW::new(
        params,
        ParamsAdamW {
            lr: 1e-3,
            beta1: 0.5,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let mut losses = Vec::new();
    for _ in 0..3 {
        let z = enc.forward_t(&x, true).unwrap().mean;
        let x_hat = dec.forward_t(&z, true).unwrap();
        let loss = (&x - &x_hat).unwrap().sqr().unwrap().mean_all().unwrap();
        let grads = loss.backward().unwrap();
        // Running statistics are not part of the graph; everything else is.
        {
            let data = varmap.data().lock().unwrap();
            for (name, var) in data.iter() {
                let has_grad = grads.get(var.as_tensor()).is_some();
                assert_eq!(
                    has_grad,
                    !wae_nets::is_running_stat(name),
                    "gradient presence for {name}"
                );
            }
        }
        opt.step(&grads).unwrap();
        losses.push(loss.to_scalar::<f32>().unwrap());
    }
    assert!(losses.iter().all(|l| l.is_finite()));

    let means_after = snapshot(&varmap, ".running_mean");
    let vars_after = snapshot(&varmap, ".running_var");
    for ((name, before), (_, after)) in means_before.iter().zip(&means_after) {
        assert_ne!(before, after, "{name} did not change");
    }
    for ((name, before), (_, after)) in vars_before.iter().zip(&vars_after) {
        assert_ne!(before, after, "{name} did not change");
    }
    assert_ne!(
        fc_before,
        snapshot(&varmap, "encoder.fc.weight"),
        "optimiser step"
    );

    // Eval mode: repeatable bit for bit, leaves the statistics alone, and
    // differs from training mode (batch statistics).
    let eval1 = values(
        &dec.forward_t(&enc.forward_t(&x, false).unwrap().mean, false)
            .unwrap(),
    );
    let eval2 = values(
        &dec.forward_t(&enc.forward_t(&x, false).unwrap().mean, false)
            .unwrap(),
    );
    assert_eq!(eval1, eval2);
    assert_eq!(means_after, snapshot(&varmap, ".running_mean"));
    assert_eq!(vars_after, snapshot(&varmap, ".running_var"));
    let train_out = values(
        &dec.forward_t(&enc.forward_t(&x, true).unwrap().mean, true)
            .unwrap(),
    );
    let max_diff = eval1
        .iter()
        .zip(&train_out)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        max_diff > 1e-3,
        "eval and train outputs agree to {max_diff}"
    );

    // Eval mode really uses the running statistics: changing them changes the output.
    {
        let data = varmap.data().lock().unwrap();
        let rv = &data["encoder.bn3.running_var"];
        rv.set(&(rv.as_tensor() * 4.0).unwrap()).unwrap();
    }
    let eval3 = values(
        &dec.forward_t(&enc.forward_t(&x, false).unwrap().mean, false)
            .unwrap(),
    );
    assert_ne!(eval1, eval3);
}

#[test]
fn eval_output_of_one_sample_does_not_depend_on_the_rest_of_the_batch() {
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let cfg = EncoderConfig {
        width_div: 16,
        ..Default::default()
    };
    let enc = Encoder::new(&cfg, vb).unwrap();
    let x = image_input(Architecture::MnistDcgan, 4);
    enc.forward_t(&x, true).unwrap(); // move the statistics off their init
    let all = enc.forward_t(&x, false).unwrap().mean;
    let first = enc
        .forward_t(&x.narrow(0, 0, 1).unwrap(), false)
        .unwrap()
        .mean;
    let diff = (all.narrow(0, 0, 1).unwrap() - first)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-5, "{diff}");
    // In training mode it does (batch statistics).
    let all_t = enc.forward_t(&x, true).unwrap().mean;
    let first_t = enc
        .forward_t(
            &Tensor::cat(&[x.narrow(0, 0, 1).unwrap(), x.narrow(0, 3, 1).unwrap()], 0).unwrap(),
            true,
        )
        .unwrap()
        .mean;
    let diff_t = (all_t.narrow(0, 0, 1).unwrap() - first_t.narrow(0, 0, 1).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff_t > 1e-4, "{diff_t}");
}
