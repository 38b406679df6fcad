//! The legacy torch pickle reader and the `.pth` -> safetensors conversion.
//!
//! `tests/data/legacy_state_dict.pth` was written by
//! `torch.save(sd, f, _use_new_zipfile_serialization=False)` in
//! `tests/data/make_legacy_pth.py`, whose docstring gives the value formulas.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use wae_metrics::inception::{self, convert_pth, read_pth, read_pth_raw, verify_sha256};
use wae_metrics::{Error, InceptionConfig, InceptionV3};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
        .join(name)
}

const LEGACY_SHA256: &str = "39397056c2facda56d8e9780c28a646a2334e1e21066325331e083d76efaad61";

fn f32s(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn check_legacy_values(tensors: &std::collections::HashMap<String, Tensor>) {
    let conv = &tensors["block.conv.weight"];
    assert_eq!(conv.dims(), &[4, 3, 3, 3]);
    assert_eq!(conv.dtype(), DType::F32);
    for (k, v) in f32s(conv).iter().enumerate() {
        assert_eq!(*v, k as f32 / 100.0 - 0.5, "conv.weight[{k}]");
    }
    let bn_w = f32s(&tensors["block.bn.weight"]);
    let bn_b = f32s(&tensors["block.bn.bias"]);
    let mean = f32s(&tensors["block.bn.running_mean"]);
    let var = f32s(&tensors["block.bn.running_var"]);
    for k in 0..4 {
        assert_eq!(bn_w[k], 1.0 + k as f32 / 10.0);
        assert_eq!(bn_b[k], -(k as f32) / 10.0);
        assert_eq!(mean[k], k as f32 / 1000.0);
        assert_eq!(var[k], 2.0 + k as f32);
    }
    let tracked = &tensors["block.bn.num_batches_tracked"];
    assert_eq!(tracked.dtype(), DType::I64);
    assert_eq!(tracked.dims(), &[] as &[usize]);
    assert_eq!(tracked.to_scalar::<i64>().unwrap(), 7);
    // Non-contiguous (strides (1, 3)): the transpose of a (5, 3) arange.
    let fc = &tensors["fc.weight"];
    assert_eq!(fc.dims(), &[3, 5]);
    let fc = fc.to_vec2::<f32>().unwrap();
    for (i, row) in fc.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            assert_eq!(*v, (j * 3 + i) as f32, "fc.weight[{i}][{j}]");
        }
    }
    // Two views of one storage, the second at offset 4.
    assert_eq!(f32s(&tensors["shared.head"]), vec![100., 101., 102., 103.]);
    assert_eq!(
        f32s(&tensors["shared.tail"]),
        vec![104., 105., 106., 107., 108., 109.]
    );
    let double = &tensors["double"];
    assert_eq!(double.dtype(), DType::F64);
    let double = double.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    for (k, v) in double.iter().enumerate() {
        assert_eq!(*v, 1.0 / 3.0 + k as f64);
    }
}

#[test]
fn reads_a_legacy_torch_file() {
    let raw = read_pth_raw(&data("legacy_state_dict.pth")).unwrap();
    let names: Vec<&str> = raw.iter().map(|t| t.name.as_str()).collect();
    // The OrderedDict's order is kept.
    assert_eq!(
        names,
        [
            "block.conv.weight",
            "block.bn.weight",
            "block.bn.bias",
            "block.bn.running_mean",
            "block.bn.running_var",
            "block.bn.num_batches_tracked",
            "fc.weight",
            "shared.head",
            "shared.tail",
            "double"
        ]
    );
    check_legacy_values(&read_pth(&data("legacy_state_dict.pth")).unwrap());
}

#[test]
fn converts_to_safetensors_with_the_same_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("converted.safetensors");
    let written = convert_pth(&data("legacy_state_dict.pth"), &out).unwrap();
    assert_eq!(written, 10);
    let loaded = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    assert_eq!(loaded.len(), 10);
    check_legacy_values(&loaded);
    // No temporary file is left beside the output.
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1);
}

#[test]
fn checksums_are_verified() {
    let path = data("legacy_state_dict.pth");
    verify_sha256(&path, LEGACY_SHA256).unwrap();
    verify_sha256(&path, &LEGACY_SHA256.to_uppercase()).unwrap();
    let err = verify_sha256(&path, inception::FID_WEIGHTS_SHA256).unwrap_err();
    match err {
        Error::Checksum {
            expected, actual, ..
        } => {
            assert_eq!(expected, inception::FID_WEIGHTS_SHA256);
            assert_eq!(actual, LEGACY_SHA256);
        }
        other => panic!("expected a checksum error, got {other}"),
    }
}

#[test]
fn damaged_files_are_errors_not_panics() {
    let bytes = std::fs::read(data("legacy_state_dict.pth")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Every truncation point: never a panic, always an error.
    for cut in (0..bytes.len()).step_by(7) {
        let path = dir.path().join("cut.pth");
        std::fs::write(&path, &bytes[..cut]).unwrap();
        assert!(
            read_pth_raw(&path).is_err(),
            "truncated at {cut} was accepted"
        );
    }
    // Corrupted bytes in the pickle part: errors or (harmless) different values, no panic.
    for pos in (0..700).step_by(3) {
        let mut bad = bytes.clone();
        bad[pos] ^= 0x5a;
        let path = dir.path().join("bad.pth");
        std::fs::write(&path, &bad).unwrap();
        let _ = read_pth_raw(&path);
    }
    // A zip-format file is recognised and rejected with a clear message.
    let zip = dir.path().join("zip.pth");
    std::fs::write(&zip, b"PK\x03\x04rest").unwrap();
    let message = read_pth_raw(&zip).unwrap_err().to_string();
    assert!(message.contains("zip-format"), "{message}");
    // A missing file says how to get the weights.
    let missing = read_pth_raw(&dir.path().join("absent.pth")).unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("cargo xtask download inception")
    );
}

#[test]
fn load_reads_converted_safetensors() {
    // Formula weights written as safetensors (as `convert_pth` would), then
    // `InceptionV3::load` must give the same features as the in-memory network,
    // i.e. the PyTorch reference's first input.
    let dev = Device::Cpu;
    let tensors = wae_metrics::testing::inception_formula_weights(&dev).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("formula.safetensors");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let loaded = InceptionV3::load(&path, &dev).unwrap();
    let in_memory = InceptionV3::new(
        &InceptionConfig::default(),
        VarBuilder::from_tensors(tensors, DType::F32, &dev),
    )
    .unwrap();
    let values: Vec<f32> = (0..28 * 28u64)
        .map(|k| ((k * 7919 + 13) % 1009) as f32 / 1008.0)
        .collect();
    let x = Tensor::from_vec(values, (1, 1, 28, 28), &dev).unwrap();
    let a = f32s(&loaded.features(&x).unwrap());
    let b = f32s(&in_memory.features(&x).unwrap());
    assert_eq!(a, b);
    // A weights file without the Inception's keys is an error, not a panic.
    let wrong = InceptionV3::load(&data("legacy_state_dict.pth"), &dev);
    assert!(wrong.is_err());
}
