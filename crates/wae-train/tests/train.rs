//! End-to-end training on a slice of MNIST with tiny networks: exact resumption
//! and every bad-input case, each with the message a user would see.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::Device;
use serde_json::Value;
use wae_objectives::{ObjectiveConfig, WaeGanConfig};
use wae_train::checkpoint::{MODEL_FILE, OPTIMIZER_FILE, latest_checkpoint_dir, load_checkpoint};
use wae_train::metrics::{METRICS_FILE, read_metrics};
use wae_train::{Error, ResumeOverrides, TrainConfig, TrainOptions, preset, resume, train};

/// The smoke preset made smaller still (width / 32, 256 images, batches of 16:
/// 16 steps per epoch) so that every test runs in seconds.
fn smoke() -> TrainConfig {
    let mut cfg = preset("mnist-wae-mmd-smoke").expect("preset");
    cfg.model = cfg.model.with_width_div(32);
    cfg.data.train_examples = Some(256);
    cfg.data.test_examples = Some(64);
    cfg.training.batch_size = 16;
    cfg.training.checkpoint_every_steps = 5;
    cfg.training.eval_examples = 64;
    cfg.pretrain.sample_size = 32;
    cfg.pretrain.max_steps = 3;
    cfg
}

fn opts(dir: &Path, max_steps: u64) -> TrainOptions {
    TrainOptions {
        run_dir: dir.to_path_buf(),
        device: Device::Cpu,
        data_dir: Some(wae_data::testing::mnist_dir()),
        max_steps: Some(max_steps),
        progress: false,
        stop: None,
    }
}

fn tensor_bytes(dir: &Path, file: &str) -> HashMap<String, Vec<u8>> {
    let ck = load_checkpoint(dir, &Device::Cpu).expect("checkpoint");
    let set = if file == MODEL_FILE {
        ck.model
    } else {
        ck.optimizer
    };
    set.into_iter()
        .map(|(k, t)| {
            let bytes = match t.dtype() {
                candle_core::DType::F32 => t
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                _ => t
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<i64>()
                    .unwrap()
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            };
            (k, bytes)
        })
        .collect()
}

fn metrics_without_time(run: &Path) -> Vec<serde_json::Map<String, Value>> {
    read_metrics(&run.join(METRICS_FILE))
        .expect("metrics")
        .into_iter()
        .map(|mut m| {
            m.remove("seconds");
            m
        })
        .collect()
}

/// Trains `total` steps straight on a one-thread rayon pool, then `first` + the rest with
/// a resume on rayon's default (multi-threaded) pool, and asserts bit-identical weights,
/// optimiser state and losses. The `wae-kernels` CPU kernels sum in a fixed order
/// whatever the thread count or scheduling (see its `determinism` test), so resuming
/// is exact, and so is changing the thread count.
fn straight_vs_resumed(cfg: &TrainConfig, first: u64, total: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight");
    let split = tmp.path().join("split");
    let a = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("thread pool")
        .install(|| train(cfg, &opts(&straight, total)))
        .expect("straight run");
    assert_eq!(a.steps, total);
    let b1 = train(cfg, &opts(&split, first)).expect("first half");
    assert_eq!(b1.steps, first);
    let b2 = resume(&opts(&split, total), &ResumeOverrides::default()).expect("resumed half");
    assert_eq!(b2.steps, total);

    let da = latest_checkpoint_dir(&straight).unwrap().unwrap();
    let db = latest_checkpoint_dir(&split).unwrap().unwrap();
    assert!(da.ends_with(format!("step-{total:08}")));
    let (wa, wb) = (tensor_bytes(&da, MODEL_FILE), tensor_bytes(&db, MODEL_FILE));
    assert_eq!(wa.len(), wb.len());
    for (k, v) in &wa {
        assert!(wb[k] == *v, "weights of {k} differ after resuming");
    }
    let (oa, ob) = (
        tensor_bytes(&da, OPTIMIZER_FILE),
        tensor_bytes(&db, OPTIMIZER_FILE),
    );
    assert_eq!(oa, ob, "optimiser state differs after resuming");
    let (ma, mb) = (
        metrics_without_time(&straight),
        metrics_without_time(&split),
    );
    assert_eq!(ma.len() as u64, total, "one metrics line per step");
    assert_eq!(ma, mb, "losses differ after resuming");
    assert_eq!(a.last_losses, b2.last_losses);
    // The run did train: the loss of the last step is below the first one's.
    let first_total = ma[0]["total"].as_f64().unwrap();
    let last_total = ma[ma.len() - 1]["total"].as_f64().unwrap();
    assert!(last_total < first_total, "{first_total} -> {last_total}");
    assert!(a.eval.is_some());
}

#[test]
fn ten_plus_ten_steps_equal_twenty_straight_wae_mmd() {
    // 256 images / batch 16 = 16 steps per epoch: step 20 is in the second epoch.
    let mut cfg = smoke();
    cfg.training.epochs = 2;
    straight_vs_resumed(&cfg, 10, 20);
}

#[test]
fn resume_is_exact_for_wae_gan_with_its_discriminator() {
    let mut cfg = smoke();
    cfg.objective = ObjectiveConfig::WaeGan(WaeGanConfig::default());
    cfg.pretrain.enabled = false;
    cfg.training.checkpoint_every_steps = 3;
    straight_vs_resumed(&cfg, 3, 6);
}

#[test]
fn unknown_config_key_names_key_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.toml");
    fs::write(
        &path,
        "seed = 1\n[optimizer.autoencoder]\nlr = 1e-3\nbeta_1 = 0.5\n",
    )
    .unwrap();
    let err = TrainConfig::from_toml_file(&path).unwrap_err().to_string();
    assert!(err.contains("beta_1"), "{err}");
    assert!(err.contains("bad.toml"), "{err}");
}

#[test]
fn missing_data_says_where_it_looked() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = opts(&tmp.path().join("run"), 2);
    let missing = tmp.path().join("no-mnist-here");
    o.data_dir = Some(missing.clone());
    let err = train(&smoke(), &o).unwrap_err();
    assert!(matches!(err, Error::Data(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
    // The run folder this call made is gone again, not left holding only its lock.
    assert!(!tmp.path().join("run").exists());
    // A folder that existed before stays, with whatever it held.
    let mine = tmp.path().join("mine");
    fs::create_dir_all(&mine).unwrap();
    fs::write(mine.join("notes.txt"), "keep").unwrap();
    let mut o = opts(&mine, 2);
    o.data_dir = Some(missing);
    train(&smoke(), &o).unwrap_err();
    assert_eq!(fs::read_to_string(mine.join("notes.txt")).unwrap(), "keep");
}

fn run_to(dir: &Path, steps: u64) -> PathBuf {
    let mut cfg = smoke();
    cfg.pretrain.enabled = false;
    cfg.training.checkpoint_every_steps = 2;
    train(&cfg, &opts(dir, steps)).expect("run");
    latest_checkpoint_dir(dir).unwrap().unwrap()
}

#[test]
fn truncated_checkpoint_is_reported_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let ck = run_to(&run, 2);
    let model = ck.join(MODEL_FILE);
    let bytes = fs::read(&model).unwrap();
    fs::write(&model, &bytes[..bytes.len() - 100]).unwrap();
    let err = resume(&opts(&run, 4), &ResumeOverrides::default()).unwrap_err();
    assert!(matches!(err, Error::CorruptCheckpoint { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&model.display().to_string()), "{msg}");
}

#[test]
fn corrupt_checkpoint_is_reported_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let ck = run_to(&run, 2);
    let optim = ck.join(OPTIMIZER_FILE);
    let mut bytes = fs::read(&optim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(&optim, &bytes).unwrap();
    let msg = resume(&opts(&run, 4), &ResumeOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("optimizer.safetensors") && msg.contains("damaged"),
        "{msg}"
    );
    // A latest pointer naming nothing is also a clear error.
    fs::write(run.join("checkpoints/latest"), "step-99999999\n").unwrap();
    let msg = resume(&opts(&run, 4), &ResumeOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("latest") && msg.contains("does not exist"),
        "{msg}"
    );
}

#[test]
fn mismatched_architecture_on_resume_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let ck = run_to(&run, 2);
    // 1. A different config given with --resume.
    let mut other = smoke();
    other.pretrain.enabled = false;
    other.model = other.model.with_width_div(8);
    let err = resume(
        &opts(&run, 4),
        &ResumeOverrides {
            config: Some(other),
            ..ResumeOverrides::default()
        },
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::CheckpointMismatch { .. }), "{err:?}");
    assert!(
        msg.contains("model") && msg.contains("config.toml"),
        "{msg}"
    );
    // 2. The checkpoint's own config edited to another width: refused by name, since
    // the manifest covers it.
    let cfg_path = ck.join("config.toml");
    let text = fs::read_to_string(&cfg_path).unwrap();
    let edited = text.replace("width_div = 32", "width_div = 8");
    assert_ne!(text, edited);
    fs::write(&cfg_path, &edited).unwrap();
    let err = resume(&opts(&run, 4), &ResumeOverrides::default()).unwrap_err();
    assert!(matches!(err, Error::CorruptCheckpoint { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&cfg_path.display().to_string()), "{msg}");
    // A checkpoint of an older version (no manifest) edited the same way: the weights
    // do not fit the edited width.
    let manifest = ck.join(wae_train::checkpoint::MANIFEST_FILE);
    let kept_manifest = fs::read(&manifest).unwrap();
    fs::remove_file(&manifest).unwrap();
    let msg = resume(&opts(&run, 4), &ResumeOverrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("model.safetensors") && msg.contains("shape"),
        "{msg}"
    );
    // 3. A different seed.
    fs::write(&cfg_path, text).unwrap();
    fs::write(&manifest, kept_manifest).unwrap();
    let msg = resume(
        &opts(&run, 4),
        &ResumeOverrides {
            seed: Some(12345),
            ..ResumeOverrides::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("seed"), "{msg}");
}

#[test]
fn nan_loss_stops_with_step_and_part_and_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut cfg = smoke();
    cfg.pretrain.enabled = false;
    cfg.training.checkpoint_every_steps = 1;
    // A learning rate of 1e30 blows the weights up within a few steps.
    cfg.optimizer.autoencoder.lr = 1e30;
    let err = train(&cfg, &opts(&run, 16)).unwrap_err();
    let Error::NonFinite { step, part, .. } = &err else {
        panic!("expected a divergence error, got {err:?}");
    };
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("step {step}")) && msg.contains(part.as_str()),
        "{msg}"
    );
    // The newest checkpoint is the last good step and loads with finite weights.
    let ck = latest_checkpoint_dir(&run).unwrap().unwrap();
    assert!(msg.contains(&ck.display().to_string()), "{msg}");
    let loaded = load_checkpoint(&ck, &Device::Cpu).unwrap();
    assert_eq!(loaded.state.step, *step);
    for (name, t) in loaded.model {
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{name} not finite");
    }
}

#[test]
fn a_finished_run_directory_is_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    run_to(&run, 2);
    let msg = train(&smoke(), &opts(&run, 2)).unwrap_err().to_string();
    assert!(msg.contains("--resume"), "{msg}");
}

#[test]
fn celeba_trains_from_a_cache_with_tanh_pixels() {
    use wae_data::celeba::{CELEBA_PIXELS, CacheWriter};
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("celeba64.bin");
    let mut writer = CacheWriter::create(&cache, 40, 8, 123, "test images").unwrap();
    for i in 0..40usize {
        let px: Vec<u8> = (0..CELEBA_PIXELS)
            .map(|p| ((p * 7 + i * 13) % 256) as u8)
            .collect();
        writer.write(i, &px).unwrap();
    }
    writer.finish().unwrap();
    let mut cfg = preset("celeba-wae-mmd-cpu").unwrap();
    cfg.model = cfg.model.with_width_div(32);
    cfg.pretrain.enabled = false;
    cfg.training.batch_size = 8;
    cfg.training.eval_examples = 8;
    let mut o = opts(&tmp.path().join("run"), 2);
    o.data_dir = Some(tmp.path().to_path_buf());
    let s = train(&cfg, &o).expect("celeba run");
    assert_eq!(s.steps, 2);
    let e = s.eval.expect("eval");
    // Reported in [0, 1] pixel units: at most 1 per pixel value.
    assert!(e.reconstruction_mse_per_pixel > 0.0 && e.reconstruction_mse_per_pixel <= 1.0);
    // Without a cache the error says where it looked.
    let mut o = opts(&tmp.path().join("run2"), 2);
    o.data_dir = Some(tmp.path().join("nothing-here"));
    let msg = train(&cfg, &o).unwrap_err().to_string();
    assert!(msg.contains("nothing-here"), "{msg}");
}

/// Asserts that two run directories end with bit-identical weights, optimiser state
/// and logged losses (the wall-clock `seconds` aside).
fn assert_same_run(a: &Path, b: &Path) {
    let da = latest_checkpoint_dir(a).unwrap().unwrap();
    let db = latest_checkpoint_dir(b).unwrap().unwrap();
    assert_eq!(da.file_name(), db.file_name());
    for file in [MODEL_FILE, OPTIMIZER_FILE] {
        assert!(
            tensor_bytes(&da, file) == tensor_bytes(&db, file),
            "{file} differs"
        );
    }
    assert_eq!(metrics_without_time(a), metrics_without_time(b));
}

#[test]
fn a_stop_request_saves_the_step_it_stopped_at_and_resumes_exactly() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut cfg = smoke();
    cfg.pretrain.enabled = false;
    cfg.training.epochs = 20;
    // Checkpoints only at epoch ends (every 16 steps): the one at the stop is the stop's.
    cfg.training.checkpoint_every_steps = 0;
    let tmp = tempfile::tempdir().unwrap();
    let stopped = tmp.path().join("stopped");
    let stop = Arc::new(AtomicUsize::new(0));
    let mut o = opts(&stopped, 300);
    o.stop = Some(Arc::clone(&stop));
    // Ask for the stop once 5 steps are logged (mid-epoch), as a signal handler would.
    let metrics = stopped.join(METRICS_FILE);
    let watcher = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            for _ in 0..60_000 {
                let lines = fs::read_to_string(&metrics).map_or(0, |t| t.lines().count());
                if lines >= 5 {
                    stop.store(15, Ordering::SeqCst);
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let s = train(&cfg, &o).expect("stopped run");
    watcher.join().unwrap();
    assert_eq!(s.stopped_by, Some(15));
    let at = s.steps;
    assert!((5..300).contains(&at), "stopped at {at}");
    assert!(s.eval.is_none(), "no evaluation when stopped");
    assert!(
        s.checkpoint.ends_with(format!("step-{at:08}")),
        "{}",
        s.checkpoint.display()
    );
    assert_eq!(metrics_without_time(&stopped).len() as u64, at);
    // Resumed to `at + 5` it equals a run that went there straight.
    let total = at + 5;
    let r = resume(&opts(&stopped, total), &ResumeOverrides::default()).expect("resume");
    assert_eq!((r.steps, r.stopped_by), (total, None));
    let straight = tmp.path().join("straight");
    train(&cfg, &opts(&straight, total)).expect("straight run");
    assert_same_run(&straight, &stopped);
}

#[test]
fn resume_from_a_step_folder_drops_the_newer_checkpoints_and_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    run_to(&run, 6);
    let four = run.join("checkpoints").join("step-00000004");
    assert!(four.is_dir() && run.join("checkpoints/step-00000006").is_dir());
    let s = resume(&opts(&four, 8), &ResumeOverrides::default()).expect("resume from step 4");
    assert_eq!(s.steps, 8);
    assert_eq!(s.run_dir, run);
    let straight = tmp.path().join("straight");
    run_to(&straight, 8);
    assert_same_run(&straight, &run);
}

#[test]
fn a_second_writer_is_refused_with_the_holders_pid() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    run_to(&run, 2);
    let lock = wae_train::RunLock::acquire(&run, "wae train").unwrap();
    for err in [
        resume(&opts(&run, 4), &ResumeOverrides::default()).unwrap_err(),
        train(&smoke(), &opts(&tmp.path().join("run"), 4)).unwrap_err(),
    ] {
        assert!(matches!(err, Error::RunDirInUse { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(&std::process::id().to_string()) && msg.contains(run.to_str().unwrap()),
            "{msg}"
        );
    }
    // Nothing was touched: the run still resumes once the lock is gone.
    drop(lock);
    let s = resume(&opts(&run, 4), &ResumeOverrides::default()).unwrap();
    assert_eq!(s.steps, 4);
}

#[test]
fn a_stop_during_pretraining_saves_nothing_and_a_new_start_runs_as_if_uninterrupted() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    let cfg = smoke();
    assert!(cfg.pretrain.enabled);
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    // The request is there before the first pretraining step.
    let mut o = opts(&run, 6);
    o.stop = Some(Arc::new(AtomicUsize::new(15)));
    let s = train(&cfg, &o).expect("stopped run");
    assert_eq!((s.stopped_by, s.steps), (Some(15), 0));
    assert_eq!(s.checkpoint, run, "no checkpoint to name");
    assert!(!run.join("checkpoints").exists(), "nothing saved");
    assert!(resume(&opts(&run, 6), &ResumeOverrides::default()).is_err());
    // Started again, it is the run that was never stopped.
    train(&cfg, &opts(&run, 6)).expect("new start");
    let straight = tmp.path().join("straight");
    train(&cfg, &opts(&straight, 6)).expect("straight run");
    assert_same_run(&straight, &run);
}
