//! `wae train` end to end through the binary, on a tiny config.

mod common;

use common::{text, wae, wae_on_mnist};
use std::fs;
use std::path::{Path, PathBuf};

const TINY: &str = r#"
description = "cli test"
seed = 3
[data]
train_examples = 128
test_examples = 32
[model.encoder]
width_div = 32
[model.decoder]
width_div = 32
[training]
epochs = 1
batch_size = 16
log_every_steps = 1
checkpoint_every_steps = 2
eval_examples = 32
[pretrain]
enabled = false
"#;

fn lines(p: &Path) -> usize {
    fs::read_to_string(p).unwrap().lines().count()
}

/// A temporary folder holding the TINY config, and the run directory to train into.
fn tiny_run() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("tiny.toml");
    fs::write(&cfg, TINY).unwrap();
    let run = tmp.path().join("run");
    (tmp, cfg, run)
}

#[test]
fn train_stop_and_resume_through_the_cli() {
    let (_tmp, cfg, run) = tiny_run();
    let (cfg_s, run_s) = (cfg.to_str().unwrap(), run.to_str().unwrap());
    let o = wae_on_mnist(&[
        "train",
        "--config",
        cfg_s,
        "--out",
        run_s,
        "--max-steps",
        "3",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("steps: 3"), "{}", text(&o));
    assert_eq!(lines(&run.join("metrics.jsonl")), 3);
    let o = wae_on_mnist(&["train", "--resume", run_s, "--max-steps", "5"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(lines(&run.join("metrics.jsonl")), 5);
    // Training again into the same directory is refused.
    let o = wae_on_mnist(&["train", "--config", cfg_s, "--out", run_s]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--resume"), "{}", text(&o));
}

#[test]
fn bad_inputs_fail_with_clear_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("typo.toml");
    fs::write(&cfg, "[training]\nepochz = 3\n").unwrap();
    let o = wae(&["train", "--config", cfg.to_str().unwrap()]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("epochz") && t.contains("typo.toml"), "{t}");

    let o = wae(&["train", "--preset", "mnist-wea-mmd"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("mnist-wae-mmd-cpu"), "{}", text(&o));

    let good = tmp.path().join("tiny.toml");
    fs::write(&good, TINY).unwrap();
    let nowhere = tmp.path().join("nowhere");
    let o = wae(&[
        "train",
        "--config",
        good.to_str().unwrap(),
        "--out",
        tmp.path().join("r").to_str().unwrap(),
        "--data-dir",
        nowhere.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains(nowhere.to_str().unwrap()), "{}", text(&o));

    let o = wae(&[
        "train",
        "--resume",
        tmp.path().join("empty").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("no checkpoint"), "{}", text(&o));

    let o = wae(&["train"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--preset"), "{}", text(&o));
}

#[test]
fn list_presets() {
    let o = wae(&["train", "--list-presets"]);
    assert!(o.status.success());
    let t = text(&o);
    for name in [
        "mnist-vae",
        "mnist-wae-gan-cpu",
        "celeba-wae-mmd",
        "mnist-wae-mmd-smoke",
    ] {
        assert!(t.contains(name), "{t}");
    }
}

/// The trainer's end-of-run `eval.json` and `wae eval`'s are one schema: both read into
/// `wae_train::EvalReport` with the current schema version, `wae eval`'s with more fields.
#[test]
fn trainer_and_eval_write_one_eval_schema() {
    use wae_train::evaluate::{EvalReport, SCHEMA_VERSION};
    let (tmp, cfg, run) = tiny_run();
    let (cfg_s, run_s) = (cfg.to_str().unwrap(), run.to_str().unwrap());
    let o = wae_on_mnist(&["train", "--config", cfg_s, "--out", run_s]);
    assert!(o.status.success(), "{}", text(&o));
    let trained = EvalReport::read(&run.join("eval.json")).expect("the trainer's eval.json");
    let cli_json = tmp.path().join("cli-eval.json");
    let o = wae_on_mnist(&[
        "eval",
        run_s,
        "--n",
        "32",
        "--out",
        cli_json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let evaluated = EvalReport::read(&cli_json).expect("wae eval's eval.json");

    assert_eq!(trained.schema_version, SCHEMA_VERSION);
    assert_eq!(evaluated.schema_version, SCHEMA_VERSION);
    assert_eq!((trained.step, evaluated.step), (8, 8));
    assert_eq!((trained.examples, evaluated.examples), (32, 32));
    // The trainer computes the reconstruction error and MMDs only, and says so.
    assert!(trained.reconstruction_l1.is_none() && trained.prior_match.is_none());
    assert!(
        trained.skipped[0].reason.contains("wae eval"),
        "{:?}",
        trained.skipped
    );
    assert!(evaluated.reconstruction_l1.is_some() && evaluated.prior_match.is_some());
    // The same images and weights: the reconstruction errors agree to float rounding.
    let (a, b) = (trained.reconstruction_sq_l2, evaluated.reconstruction_sq_l2);
    assert!((a - b).abs() <= 1e-4 * a.abs(), "{a} vs {b}");
}
