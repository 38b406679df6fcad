//! What people do around a run, through the `wae` binary on the smoke preset: two
//! writers in one run directory, Ctrl-C / SIGTERM mid-epoch, an edited checkpoint,
//! resuming from a step folder or without `latest`, damaged metrics lines, and sizes
//! too large for memory.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::Device;
use common::{text, wae};
use serde_json::Value;
use wae_train::checkpoint::{MODEL_FILE, OPTIMIZER_FILE, latest_checkpoint_dir, load_checkpoint};
use wae_train::preset;

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wae"))
        .args(args)
        .env("WAE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wae")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The smoke preset (512 images, 16 steps per epoch) without pretraining, logging
/// every step, checkpoints at epoch ends only, for `epochs` epochs, on the tests' MNIST
/// (named in the config, so resumes and pictures find it too).
fn smoke_config(dir: &Path, epochs: u64) -> PathBuf {
    let mut cfg = preset("mnist-wae-mmd-smoke").expect("preset");
    cfg.data.dir = Some(wae_data::testing::mnist_dir());
    cfg.pretrain.enabled = false;
    cfg.training.epochs = epochs;
    cfg.training.log_every_steps = 1;
    cfg.training.checkpoint_every_steps = 0;
    cfg.training.keep_checkpoints = 5;
    cfg.training.eval_examples = 32;
    let path = dir.join(format!("smoke-{epochs}.toml"));
    fs::write(&path, cfg.to_toml_string().expect("toml")).expect("write config");
    path
}

fn metrics_lines(run: &Path) -> usize {
    fs::read_to_string(run.join("metrics.jsonl")).map_or(0, |t| t.lines().count())
}

/// Waits until the run has logged `n` steps (the child still running).
fn wait_for_steps(child: &mut Child, run: &Path, n: usize) {
    let started = Instant::now();
    while metrics_lines(run) < n {
        if let Some(status) = child.try_wait().expect("poll child") {
            panic!("wae exited ({status}) before logging {n} steps");
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no {n} steps in 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn send(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args(["-s", signal, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -s {signal} failed");
}

/// Steps of every line of the run's metrics log.
fn logged_steps(run: &Path) -> Vec<u64> {
    fs::read_to_string(run.join("metrics.jsonl"))
        .expect("metrics")
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json line")["step"]
                .as_u64()
                .expect("step")
        })
        .collect()
}

fn metrics_without_time(run: &Path) -> Vec<serde_json::Map<String, Value>> {
    wae_train::metrics::read_metrics(&run.join("metrics.jsonl"))
        .expect("metrics")
        .into_iter()
        .map(|mut m| {
            m.remove("seconds");
            m
        })
        .collect()
}

fn tensors(dir: &Path, file: &str) -> Vec<(String, Vec<u8>)> {
    let ck = load_checkpoint(dir, &Device::Cpu).expect("checkpoint");
    let set = if file == MODEL_FILE {
        ck.model
    } else {
        ck.optimizer
    };
    let mut out: Vec<(String, Vec<u8>)> = set
        .into_iter()
        .map(|(k, t)| {
            let bytes = match t.dtype() {
                candle_core::DType::F32 => t
                    .flatten_all()
                    .and_then(|t| t.to_vec1::<f32>())
                    .expect("f32")
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
                _ => t
                    .flatten_all()
                    .and_then(|t| t.to_vec1::<i64>())
                    .expect("i64")
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            };
            (k, bytes)
        })
        .collect();
    out.sort();
    out
}

/// Bit-identical weights, optimiser state and losses at the newest checkpoints.
fn assert_same_run(a: &Path, b: &Path) {
    let da = latest_checkpoint_dir(a).unwrap().unwrap();
    let db = latest_checkpoint_dir(b).unwrap().unwrap();
    assert_eq!(da.file_name(), db.file_name());
    for file in [MODEL_FILE, OPTIMIZER_FILE] {
        assert!(tensors(&da, file) == tensors(&db, file), "{file} differs");
    }
    assert_eq!(metrics_without_time(a), metrics_without_time(b));
}

/// Starts a long run, sends `signal` once 5 steps are logged (mid-epoch), and checks
/// the exit code, the checkpoint at the interrupt step, the message, and that
/// resuming gives what an uninterrupted run gives.
fn interrupt_and_resume(signal: &str, code: i32, name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let config = smoke_config(tmp.path(), 100);
    let run = tmp.path().join("interrupted");
    let mut child = spawn(&["train", "--config", s(&config), "--out", s(&run)]);
    wait_for_steps(&mut child, &run, 5);
    send(&child, signal);
    let o = child.wait_with_output().expect("wait");
    let t = text(&o);
    assert_eq!(o.status.code(), Some(code), "{t}");
    let at = logged_steps(&run).len() as u64;
    assert_eq!(logged_steps(&run), (1..=at).collect::<Vec<_>>());
    let ck = latest_checkpoint_dir(&run).unwrap().unwrap();
    assert!(
        ck.ends_with(format!("step-{at:08}")),
        "{}: {t}",
        ck.display()
    );
    assert!(
        t.contains(&format!("stopped by {name} after step {at}")),
        "{t}"
    );
    assert!(
        t.contains(&format!("wae train --resume {}", run.display())),
        "{t}"
    );

    let total = at + 4;
    let max = total.to_string();
    let o = wae(&["train", "--resume", s(&run), "--max-steps", &max]);
    assert!(o.status.success(), "{}", text(&o));
    let straight = tmp.path().join("straight");
    let o = wae(&[
        "train",
        "--config",
        s(&config),
        "--out",
        s(&straight),
        "--max-steps",
        &max,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_same_run(&straight, &run);
}

#[test]
fn sigint_mid_epoch_saves_and_resumes_bit_identically() {
    interrupt_and_resume("INT", 130, "SIGINT (Ctrl-C)");
}

#[test]
fn sigterm_mid_epoch_saves_and_resumes_bit_identically() {
    interrupt_and_resume("TERM", 143, "SIGTERM");
}

#[test]
fn a_second_writer_is_refused_with_the_pid_and_the_first_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let config = smoke_config(tmp.path(), 100);
    let run = tmp.path().join("run");
    let mut first = spawn(&["train", "--config", s(&config), "--out", s(&run)]);
    // Past the first epoch's checkpoint, so that readers find one.
    wait_for_steps(&mut first, &run, 18);
    let pid = first.id().to_string();
    let refused = |args: &[&str]| {
        let o = wae(args);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {t}");
        assert!(
            t.contains(&format!("process {pid}")) && t.contains(s(&run)) && t.contains("in use"),
            "{args:?}: {t}"
        );
    };
    // A second launch into the same directory, --resume while it trains, and a
    // picture or evaluation written into the run directory.
    refused(&["train", "--config", s(&config), "--out", s(&run)]);
    refused(&["train", "--resume", s(&run)]);
    refused(&["sample", s(&run), "--n", "4"]);
    refused(&["eval", s(&run), "--n", "16"]);
    // A reader writing elsewhere needs no lock.
    let elsewhere = tmp.path().join("peek.png");
    let o = wae(&["sample", s(&run), "--n", "4", "--out", s(&elsewhere)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(elsewhere.is_file());
    // The first run was not disturbed: stopped now, its log has every step once
    // and its checkpoint is at the last one.
    send(&first, "TERM");
    let o = first.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(143), "{}", text(&o));
    let steps = logged_steps(&run);
    let at = steps.len() as u64;
    assert_eq!(steps, (1..=at).collect::<Vec<_>>());
    let ck = latest_checkpoint_dir(&run).unwrap().unwrap();
    assert!(ck.ends_with(format!("step-{at:08}")), "{}", ck.display());
    // Once it has exited, the lock is free again.
    let max = (at + 2).to_string();
    let o = wae(&["train", "--resume", s(&run), "--max-steps", &max]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(logged_steps(&run).len() as u64, at + 2);
}

/// A finished 2-epoch run (checkpoints at steps 16 and 32).
fn two_epochs(dir: &Path) -> (PathBuf, PathBuf) {
    let config = smoke_config(dir, 2);
    let run = dir.join("run");
    let o = wae(&["train", "--config", s(&config), "--out", s(&run)]);
    assert!(o.status.success(), "{}", text(&o));
    (config, run)
}

#[test]
fn an_edited_checkpoint_config_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, run) = two_epochs(tmp.path());
    let ck = latest_checkpoint_dir(&run).unwrap().unwrap();
    let path = ck.join("config.toml");
    let config = fs::read_to_string(&path).unwrap();
    let edited = config.replace("lambda = 10.0", "lambda = 100.0");
    assert_ne!(config, edited, "the smoke preset has lambda = 10.0");
    fs::write(&path, edited).unwrap();
    for args in [
        vec!["train", "--resume", s(&run), "--epochs", "3"],
        vec!["sample", s(&run), "--n", "4"],
    ] {
        let o = wae(&args);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{t}");
        assert!(
            t.contains(s(&path)) && t.contains("manifest.json"),
            "{args:?}: {t}"
        );
    }
    // The run's own config.toml was not overwritten by the edited one.
    let top = fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(top.contains("lambda = 10.0"), "{top}");
}

#[test]
fn resume_from_a_step_folder_and_without_latest() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, run) = two_epochs(tmp.path());
    let sixteen = run.join("checkpoints").join("step-00000016");
    let thirty_two = run.join("checkpoints").join("step-00000032");
    assert!(sixteen.is_dir() && thirty_two.is_dir());

    // `latest` deleted: the error lists the complete checkpoints and the command.
    let latest = run.join("checkpoints").join("latest");
    fs::remove_file(&latest).unwrap();
    let o = wae(&["train", "--resume", s(&run), "--epochs", "3"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains(s(&sixteen))
            && t.contains(s(&thirty_two))
            && t.contains(&format!("wae train --resume {}", thirty_two.display())),
        "{t}"
    );
    // The picture commands list them too.
    let png = tmp.path().join("x.png");
    let o = wae(&["sample", s(&run), "--n", "4", "--out", s(&png)]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains(s(&sixteen)) && t.contains(s(&thirty_two)), "{t}");
    // Damaged: the same.
    fs::write(&latest, "step-00000099\n").unwrap();
    let t = text(&wae(&["train", "--resume", s(&run)]));
    assert!(
        t.contains(&format!("wae train --resume {}", thirty_two.display())),
        "{t}"
    );

    // From the step-16 folder, with a damaged metrics line: the newer checkpoint is
    // removed after a warning naming it, the damaged line is reported.
    let mut log = fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    log.push_str("{\"step\": 33, \"tot\n");
    fs::write(run.join("metrics.jsonl"), log).unwrap();
    let o = wae(&["train", "--resume", s(&sixteen), "--max-steps", "20"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("removing the newer checkpoints") && t.contains(s(&thirty_two)),
        "{t}"
    );
    assert!(
        t.contains("1 damaged line(s)") && t.contains("line 33 (after step 32)"),
        "{t}"
    );
    assert!(t.contains("steps: 20"), "{t}");
    assert!(!thirty_two.exists());
    assert_eq!(logged_steps(&run), (1..=20).collect::<Vec<_>>());
    let ck = latest_checkpoint_dir(&run).unwrap().unwrap();
    assert!(ck.ends_with("step-00000020"), "{}", ck.display());
}

#[test]
fn oversized_values_are_errors_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    for units in ["1000000000000", "18446744073709551615"] {
        let config = tmp.path().join(format!("big-{units}.toml"));
        fs::write(
            &config,
            format!(
                "[objective]\nkind = \"wae_gan\"\n[model.discriminator]\nhidden_units = {units}\n"
            ),
        )
        .unwrap();
        let out = tmp.path().join(format!("run-{units}"));
        let o = wae(&["train", "--config", s(&config), "--out", s(&out)]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{t}");
        assert!(t.contains(&format!("hidden_units = {units}")), "{t}");
        assert!(!out.exists(), "nothing is made for a refused config");
    }
    let (_, run) = two_epochs(tmp.path());
    let png = tmp.path().join("x.png");
    for (args, names) in [
        (vec!["sample", "--n", "100000000"], "--n 100000000"),
        (vec!["sample", "--scale", "100000"], "--scale 100000"),
        (
            vec!["sample", "--n", "4", "--columns", "100000000000"],
            "--columns 100000000000",
        ),
        (vec!["reconstruct", "--scale", "1000"], "--scale 1000"),
        (vec!["interpolate", "--grid", "100000"], "--grid 100000"),
        (vec!["traverse", "--steps", "10000000"], "--steps 10000000"),
    ] {
        let mut full = vec![args[0], s(&run)];
        full.extend(&args[1..]);
        full.extend(["--out", s(&png)]);
        let o = wae(&full);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{full:?}: {t}");
        assert!(t.contains(names), "{full:?}: {t}");
    }
    assert!(!png.exists());
}
