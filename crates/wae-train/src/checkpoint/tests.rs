//! Checkpoints written, damaged and read back.

use super::*;
use candle_core::{DType, Var};

fn state(step: u64) -> TrainState {
    TrainState {
        format: STATE_FORMAT,
        step,
        epoch: 0,
        batch_in_epoch: step,
        batches_per_epoch: 100,
        train_examples: 1000,
        seed: 1,
        rng: "derived".into(),
        schedule: ScheduleState::default(),
        pretrain_done: false,
        epoch_loss_sum: 0.25,
        epoch_loss_count: 3,
        elapsed_seconds: 1.5,
        files: BTreeMap::new(),
    }
}

fn tensors() -> HashMap<String, Tensor> {
    let dev = Device::Cpu;
    let mut m = HashMap::new();
    m.insert(
        "a.weight".to_string(),
        Tensor::new(&[[1f32, 2.0], [3.0, 4.5]], &dev).unwrap(),
    );
    m.insert(
        "a.bias".to_string(),
        Tensor::new(&[0.1f32, -0.2], &dev).unwrap(),
    );
    m
}

#[test]
fn round_trip_prune_and_latest() -> Result<()> {
    let tmp = tempfile::tempdir().map_err(io_err(Path::new("tmp")))?;
    let t = tensors();
    for step in [10, 20, 30] {
        save_checkpoint(
            tmp.path(),
            CheckpointData {
                state: state(step),
                config_text: "x = 1\n",
                model: &t,
                optimizer: &t,
            },
            2,
        )?;
    }
    let latest = latest_checkpoint_dir(tmp.path())?.expect("a checkpoint");
    assert!(latest.ends_with("step-00000030"));
    assert!(!tmp.path().join("checkpoints/step-00000010").exists());
    assert!(tmp.path().join("checkpoints/step-00000020").exists());
    let ck = load_checkpoint(&latest, &Device::Cpu)?;
    assert_eq!(ck.state.step, 30);
    assert_eq!(ck.state.epoch_loss_sum, 0.25);
    assert_eq!(ck.config_text, "x = 1\n");
    assert_eq!(
        ck.model["a.weight"].to_vec2::<f32>()?,
        vec![vec![1.0, 2.0], vec![3.0, 4.5]]
    );
    // restore into vars
    let w = Var::zeros((2, 2), DType::F32, &Device::Cpu)?;
    let b = Var::zeros(2, DType::F32, &Device::Cpu)?;
    let vars = vec![
        ("a.bias".to_string(), b.clone()),
        ("a.weight".to_string(), w.clone()),
    ];
    restore_vars(&vars, &ck.model, &latest.join(MODEL_FILE))?;
    assert_eq!(b.as_tensor().to_vec1::<f32>()?, vec![0.1, -0.2]);
    Ok(())
}

fn saved(tmp: &Path) -> PathBuf {
    let t = tensors();
    save_checkpoint(
        tmp,
        CheckpointData {
            state: state(5),
            config_text: "",
            model: &t,
            optimizer: &t,
        },
        1,
    )
    .unwrap()
}

#[test]
fn truncated_file_is_reported_with_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = saved(tmp.path());
    let model = dir.join(MODEL_FILE);
    let bytes = fs::read(&model).unwrap();
    fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_checkpoint(&dir, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn flipped_byte_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = saved(tmp.path());
    let path = dir.join(OPTIMIZER_FILE);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let err = load_checkpoint(&dir, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("optimizer.safetensors"), "{err}");
    assert!(err.contains("SHA-256"), "{err}");
}

#[test]
fn garbage_state_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = saved(tmp.path());
    fs::write(dir.join(STATE_FILE), "{ not json").unwrap();
    let err = load_checkpoint(&dir, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("state.json"), "{err}");
}

#[test]
fn shape_mismatch_names_variable_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = saved(tmp.path());
    let ck = load_checkpoint(&dir, &Device::Cpu).unwrap();
    let w = Var::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    let b = Var::zeros(2, DType::F32, &Device::Cpu).unwrap();
    let vars = vec![("a.bias".to_string(), b), ("a.weight".to_string(), w)];
    let err = restore_vars(&vars, &ck.model, &dir.join(MODEL_FILE))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a.weight") && err.contains("model.safetensors"),
        "{err}"
    );
}

#[test]
fn every_file_is_covered_by_the_manifest() {
    for (file, edit) in [
        (CONFIG_FILE, "seed = 7\n"),
        (STATE_FILE, "{}"),
        (MODEL_FILE, "x"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = saved(tmp.path());
        let manifest: Manifest =
            serde_json::from_str(&fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap()).unwrap();
        let covered: Vec<&str> = manifest.files.keys().map(String::as_str).collect();
        let mut all = CHECKPOINT_FILES.to_vec();
        all.sort_unstable();
        assert_eq!(covered, all);
        fs::write(dir.join(file), edit).unwrap();
        let err = load_checkpoint(&dir, &Device::Cpu).unwrap_err().to_string();
        assert!(err.contains(&dir.join(file).display().to_string()), "{err}");
        assert!(err.contains(MANIFEST_FILE), "{err}");
    }
}

#[test]
fn an_edit_of_the_same_length_is_refused_too() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tensors();
    let dir = save_checkpoint(
        tmp.path(),
        CheckpointData {
            state: state(5),
            config_text: "seed = 1\n",
            model: &t,
            optimizer: &t,
        },
        1,
    )
    .unwrap();
    fs::write(dir.join(CONFIG_FILE), "seed = 2\n").unwrap();
    let err = load_checkpoint(&dir, &Device::Cpu).unwrap_err().to_string();
    assert!(
        err.contains("config.toml") && err.contains("SHA-256"),
        "{err}"
    );
}

#[test]
fn a_checkpoint_without_manifest_is_still_read() {
    // Written before manifests existed: the tensor files are still verified
    // through state.json, config.toml and state.json are read as they are.
    let tmp = tempfile::tempdir().unwrap();
    let dir = saved(tmp.path());
    fs::remove_file(dir.join(MANIFEST_FILE)).unwrap();
    fs::write(dir.join(CONFIG_FILE), "seed = 7\n").unwrap();
    let ck = load_checkpoint(&dir, &Device::Cpu).unwrap();
    assert_eq!(ck.config_text, "seed = 7\n");
    let model = dir.join(MODEL_FILE);
    let bytes = fs::read(&model).unwrap();
    fs::write(&model, &bytes[..bytes.len() - 1]).unwrap();
    let err = load_checkpoint(&dir, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn partial_folders_are_removed_by_the_next_write() {
    let tmp = tempfile::tempdir().unwrap();
    let left = tmp
        .path()
        .join(CHECKPOINTS_DIR)
        .join("step-00000003.partial");
    fs::create_dir_all(&left).unwrap();
    fs::write(left.join(MODEL_FILE), b"half").unwrap();
    saved(tmp.path());
    assert!(!left.exists());
    let names: Vec<String> = fs::read_dir(tmp.path().join(CHECKPOINTS_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".partial")), "{names:?}");
}

fn three_checkpoints(run: &Path) {
    let t = tensors();
    for step in [2, 4, 6] {
        save_checkpoint(
            run,
            CheckpointData {
                state: state(step),
                config_text: "",
                model: &t,
                optimizer: &t,
            },
            5,
        )
        .unwrap();
    }
}

#[test]
fn missing_or_damaged_latest_lists_the_complete_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    three_checkpoints(tmp.path());
    // A crash mid-write leaves a .partial folder: not listed.
    fs::create_dir_all(tmp.path().join("checkpoints/step-00000008.partial")).unwrap();
    let latest = tmp.path().join(CHECKPOINTS_DIR).join(LATEST_FILE);
    assert!(
        resume_checkpoint_dir(tmp.path())
            .unwrap()
            .ends_with("step-00000006")
    );
    for damage in [None, Some("step-00000099\n"), Some("../../etc\n")] {
        match damage {
            None => fs::remove_file(&latest).unwrap(),
            Some(text) => fs::write(&latest, text).unwrap(),
        }
        let err = resume_checkpoint_dir(tmp.path()).unwrap_err().to_string();
        for step in ["step-00000002", "step-00000004", "step-00000006"] {
            assert!(err.contains(step), "{err}");
        }
        assert!(!err.contains("step-00000008"), "{err}");
        let newest = tmp.path().join("checkpoints/step-00000006");
        assert!(
            err.contains(&format!("wae train --resume {}", newest.display())),
            "{err}"
        );
    }
    // Without any checkpoint, the error says there is none.
    let empty = tempfile::tempdir().unwrap();
    let err = resume_checkpoint_dir(empty.path()).unwrap_err().to_string();
    assert!(err.contains("no checkpoint"), "{err}");
}

#[test]
fn rewind_points_latest_at_the_step_and_removes_newer_ones() {
    let tmp = tempfile::tempdir().unwrap();
    three_checkpoints(tmp.path());
    let four = tmp.path().join("checkpoints/step-00000004");
    assert_eq!(run_dir_of_checkpoint(&four).as_deref(), Some(tmp.path()));
    assert_eq!(run_dir_of_checkpoint(tmp.path()), None);
    let removed = rewind_to(tmp.path(), &four, 4).unwrap();
    assert_eq!(removed, vec![tmp.path().join("checkpoints/step-00000006")]);
    assert_eq!(latest_checkpoint_dir(tmp.path()).unwrap(), Some(four));
    let steps: Vec<u64> = complete_checkpoints(tmp.path())
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(steps, vec![2, 4]);
}
