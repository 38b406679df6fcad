//! The commands that use a trained model, driven through the `wae` binary on
//! tiny runs trained here (3 steps of width/32 networks on 128 MNIST images):
//! every output exists, decodes and has the size its layout implies; the
//! pictures hold what they claim (test images, codes and labels); eval.json
//! has finite numbers; bad inputs give errors that name the problem.

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use common::{text, wae};
use serde_json::Value;
use wae_train::checkpoint::{CheckpointData, latest_checkpoint_dir, load_checkpoint};
use wae_train::{TrainConfig, preset};

/// Pixels of a 28x28 image at the default scale 2.
const CELL: u32 = 56;

fn ok(args: &[&str]) -> String {
    let o = wae(args);
    assert!(o.status.success(), "wae {args:?} failed:\n{}", text(&o));
    text(&o)
}

fn fails(args: &[&str]) -> String {
    let o = wae(args);
    assert!(
        !o.status.success(),
        "wae {args:?} should fail:\n{}",
        text(&o)
    );
    text(&o)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A grid of `columns x rows` cells of 56 pixels with 1-pixel borders.
fn grid_size(columns: u32, rows: u32) -> (u32, u32) {
    (columns * CELL + columns + 1, rows * CELL + rows + 1)
}

fn png_size(path: &Path) -> (u32, u32) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (img.width(), img.height())
}

/// A preset cut to 128 training images and width/32 networks, with PyTorch's
/// default init (larger than the paper's N(0, 0.01)) so that 3 steps already
/// give codes and samples that differ from image to image. The MNIST directory is
/// the tests' (`wae_data::testing`), in the config, so every command on the runs finds it.
fn tiny(mut cfg: TrainConfig) -> TrainConfig {
    cfg.data.dir = Some(wae_data::testing::mnist_dir());
    cfg.model = cfg.model.with_width_div(32);
    cfg.model.encoder.init = wae_nets::WeightInit::Default;
    cfg.model.decoder.init = wae_nets::WeightInit::Default;
    cfg.data.train_examples = Some(128);
    cfg.data.test_examples = Some(64);
    cfg.training.epochs = 1;
    cfg.training.batch_size = 16;
    cfg.training.log_every_steps = 1;
    cfg.training.eval_examples = 0;
    cfg.pretrain.enabled = false;
    cfg
}

/// Trains `cfg` for 3 steps through `wae train` into `dir`.
fn train(dir: &Path, name: &str, cfg: &TrainConfig) -> PathBuf {
    let config = dir.join(format!("{name}.toml"));
    fs::write(&config, cfg.to_toml_string().expect("toml")).expect("write config");
    let run = dir.join(name);
    ok(&[
        "train",
        "--config",
        s(&config),
        "--out",
        s(&run),
        "--max-steps",
        "3",
    ]);
    run
}

struct Runs {
    dir: PathBuf,
    /// WAE-MMD, deterministic encoder.
    mmd: PathBuf,
    /// VAE, Gaussian encoder.
    vae: PathBuf,
}

/// The runs every test reads, trained once per test process under
/// `target/tmp` (a fresh directory per process).
fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
        remove_stale_dirs(root);
        let dir = root.join(format!("wae-cli-commands-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("test dir");
        let mmd = train(&dir, "mmd", &tiny(preset("mnist-wae-mmd").expect("preset")));
        let vae = train(&dir, "vae", &tiny(preset("mnist-vae").expect("preset")));
        Runs { dir, mmd, vae }
    })
}

/// Removes the directories of earlier test processes (older than an hour, so
/// that a concurrent run keeps its own).
fn remove_stale_dirs(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 3600);
        if old
            && entry
                .file_name()
                .to_string_lossy()
                .starts_with("wae-cli-commands-")
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// A fresh output directory for one test.
fn out_dir(test: &str) -> PathBuf {
    let d = runs().dir.join("out").join(test);
    fs::create_dir_all(&d).expect("out dir");
    d
}

/// The first `n` test images of the tiny runs, as 0..=255 grey values.
fn test_pixels(n: usize) -> Vec<Vec<u8>> {
    let cfg = tiny(preset("mnist-wae-mmd").expect("preset"));
    let (_, test) = wae_train::load_data(&cfg, None).expect("data");
    let x = test
        .batch(&(0..n).collect::<Vec<_>>(), &Device::Cpu)
        .expect("batch");
    x.flatten_from(1)
        .and_then(|t| t.to_vec2::<f32>())
        .expect("pixels")
        .into_iter()
        .map(|img| img.iter().map(|v| (v * 255.0).round() as u8).collect())
        .collect()
}

/// Whether grid cell (col, row) of `png` (scale 2, border 1) shows `pixels` (28x28).
fn cell_shows(png: &Path, col: u32, row: u32, pixels: &[u8]) -> bool {
    let img = image::open(png).expect("png").to_rgb8();
    let (x0, y0) = (1 + col * (CELL + 1), 1 + row * (CELL + 1));
    (0..28u32).all(|y| {
        (0..28u32).all(|x| {
            let want = pixels[(y * 28 + x) as usize];
            [(0, 0), (1, 1)]
                .iter()
                .all(|(dx, dy)| img.get_pixel(x0 + 2 * x + dx, y0 + 2 * y + dy).0 == [want; 3])
        })
    })
}

#[test]
fn sample_grid_size_and_seed() {
    let out = out_dir("sample");
    let a = out.join("a.png");
    let b = out.join("b.png");
    let c = out.join("c.png");
    let run = s(&runs().mmd);
    ok(&["sample", run, "--n", "12", "--columns", "4", "--out", s(&a)]);
    ok(&["sample", run, "--n", "12", "--columns", "4", "--out", s(&b)]);
    ok(&[
        "sample",
        run,
        "--n",
        "12",
        "--columns",
        "4",
        "--seed",
        "1",
        "--out",
        s(&c),
    ]);
    assert_eq!(png_size(&a), grid_size(4, 3));
    let pixels = |p: &Path| image::open(p).expect("png").to_rgb8().into_raw();
    assert!(pixels(&a) == pixels(&b), "same seed, same picture");
    assert!(pixels(&a) != pixels(&c), "another seed, another picture");
    // Default: a square grid in the run directory, scale 3 on request.
    let text = ok(&["sample", s(&runs().mmd), "--n", "9", "--scale", "3"]);
    let default = runs().mmd.join("samples.png");
    assert!(text.contains("samples.png"), "{text}");
    assert_eq!(png_size(&default), (3 * 84 + 4, 3 * 84 + 4));
}

#[test]
fn reconstruct_alternates_images_and_reconstructions() {
    let out = out_dir("reconstruct").join("rec.png");
    // 10 asked, rows of 4: 8 images in 2 row pairs.
    let text = ok(&[
        "reconstruct",
        s(&runs().mmd),
        "--n",
        "10",
        "--columns",
        "4",
        "--out",
        s(&out),
    ]);
    assert!(text.contains("8 test images"), "{text}");
    assert_eq!(png_size(&out), grid_size(4, 4));
    let pixels = test_pixels(8);
    // Row 0 holds images 0..4, row 2 images 4..8; rows 1 and 3 are not the images.
    assert!(cell_shows(&out, 0, 0, &pixels[0]));
    assert!(cell_shows(&out, 3, 0, &pixels[3]));
    assert!(cell_shows(&out, 1, 2, &pixels[5]));
    assert!(!cell_shows(&out, 0, 1, &pixels[0]));
}

#[test]
fn interpolate_rows_and_grid() {
    let out = out_dir("interpolate");
    let rows = out.join("rows.png");
    let run = s(&runs().mmd);
    ok(&[
        "interpolate",
        run,
        "--pairs",
        "3",
        "--steps",
        "5",
        "--out",
        s(&rows),
    ]);
    assert_eq!(png_size(&rows), grid_size(7, 3));
    let sph = out.join("sph.png");
    ok(&[
        "interpolate",
        run,
        "--pairs",
        "2",
        "--steps",
        "4",
        "--spherical",
        "--out",
        s(&sph),
    ]);
    assert_eq!(png_size(&sph), grid_size(6, 2));
    let grid = out.join("grid.png");
    ok(&[
        "interpolate",
        s(&runs().vae),
        "--grid",
        "4",
        "--out",
        s(&grid),
    ]);
    assert_eq!(png_size(&grid), grid_size(6, 6));
    let err = fails(&["interpolate", run, "--steps", "1"]);
    assert!(err.contains("--steps must be at least 2"), "{err}");
}

#[test]
fn traverse_one_row_per_dimension() {
    let out = out_dir("traverse");
    let all = out.join("all.png");
    let run = s(&runs().mmd);
    ok(&["traverse", run, "--steps", "5", "--out", s(&all)]);
    assert_eq!(png_size(&all), grid_size(5, 8), "d_z = 8 rows");
    let some = out.join("some.png");
    ok(&[
        "traverse",
        run,
        "--dim",
        "0,2",
        "--from-image",
        "3",
        "--out",
        s(&some),
    ]);
    assert_eq!(png_size(&some), grid_size(11, 2));
    let err = fails(&["traverse", run, "--dim", "8"]);
    assert!(err.contains("d_z = 8"), "{err}");
}

fn read_safetensors(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).expect("safetensors")
}

#[test]
fn encode_writes_codes_and_labels() {
    let out = out_dir("encode");
    let mmd = out.join("codes.safetensors");
    ok(&[
        "encode",
        s(&runs().mmd),
        "--split",
        "test",
        "--out",
        s(&mmd),
    ]);
    let t = read_safetensors(&mmd);
    assert_eq!(t["codes"].dims(), &[64, 8]);
    assert_eq!(t["codes"].dtype(), DType::F32);
    assert!(!t.contains_key("logvar"), "deterministic encoder");
    let cfg = tiny(preset("mnist-wae-mmd").expect("preset"));
    let (_, test) = wae_train::load_data(&cfg, None).expect("data");
    assert_eq!(t["labels"].to_vec1::<u8>().unwrap(), test.labels().to_vec());
    let codes = t["codes"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(codes.iter().all(|v| v.is_finite()));
    // Gaussian encoder: log-variances too; --n limits the count.
    let vae = out.join("vae.safetensors");
    ok(&["encode", s(&runs().vae), "--n", "20", "--out", s(&vae)]);
    let t = read_safetensors(&vae);
    assert_eq!(t["codes"].dims(), &[20, 8]);
    assert_eq!(t["logvar"].dims(), &[20, 8]);
    assert_eq!(
        t["indices"].to_vec1::<u32>().unwrap(),
        (0..20).collect::<Vec<u32>>()
    );
}

#[test]
fn latent_plot_two_panels() {
    let out = out_dir("latent").join("latent.png");
    let text = ok(&["latent-plot", s(&runs().vae), "--n", "64", "--out", s(&out)]);
    assert!(
        text.contains("PCA of the 64 test codes (d_z = 8)"),
        "{text}"
    );
    // Two cells of the wider (legend) panel's size.
    assert_eq!(png_size(&out), (2 * 484, 420));
    // The codes are drawn in label colours inside the left plot area, and the
    // legend has one swatch per digit among the 64 images.
    let img = image::open(&out).unwrap().to_rgb8();
    let in_palette = |p: &image::Rgb<u8>| wae_viz::PALETTE.contains(&p.0);
    let drawn = img
        .enumerate_pixels()
        .filter(|(x, y, p)| (73..427).contains(x) && (27..383).contains(y) && in_palette(p))
        .count();
    assert!(drawn > 0, "no coloured code drawn");
    let legend: std::collections::BTreeSet<[u8; 3]> = img
        .enumerate_pixels()
        .filter(|(x, _, p)| (438..448).contains(x) && in_palette(p))
        .map(|(_, _, p)| p.0)
        .collect();
    let cfg = tiny(preset("mnist-vae").expect("preset"));
    let (_, test) = wae_train::load_data(&cfg, None).expect("data");
    let digits: std::collections::BTreeSet<u8> = test.labels().iter().copied().collect();
    assert_eq!(
        legend.len(),
        digits.len(),
        "legend colours vs digits {digits:?}"
    );
}

fn finite_numbers(v: &Value, path: &str, count: &mut usize) {
    match v {
        Value::Number(n) => {
            let x = n.as_f64().expect("number");
            assert!(x.is_finite(), "{path} = {x}");
            *count += 1;
        }
        Value::Object(m) => m
            .iter()
            .for_each(|(k, v)| finite_numbers(v, &format!("{path}.{k}"), count)),
        Value::Array(a) => a.iter().for_each(|v| finite_numbers(v, path, count)),
        Value::Null => panic!("{path} is null (a NaN?)"),
        _ => {}
    }
}

#[test]
fn eval_writes_finite_numbers_and_says_what_it_skipped() {
    let out = out_dir("eval");
    let json = out.join("eval.json");
    let text = ok(&["eval", s(&runs().mmd), "--n", "40", "--out", s(&json)]);
    assert!(text.contains("MMD^2(test codes, prior)"), "{text}");
    assert!(text.contains("skipped classifier"), "{text}");
    let v: Value = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    let mut count = 0;
    finite_numbers(&v, "eval", &mut count);
    // schema_version, step, examples, seed, 3 reconstruction errors, 2 MMDs, 3
    // sharpnesses, and the prior match's 7 (points, statistic, p-value, permutations, 2
    // dimensions, d_z).
    assert_eq!(count, 19, "{v:#}");
    assert_eq!(v["schema_version"], wae_train::evaluate::SCHEMA_VERSION);
    assert_eq!(v["examples"], 40);
    assert_eq!(v["step"], 3);
    assert_eq!(v["skipped"].as_array().unwrap().len(), 2);
    assert!(v["sharpness_test_images"].as_f64().unwrap() > 0.01);
    // The one eval.json schema, which the trainer's end-of-run evaluation also writes.
    let report: wae_train::EvalReport = serde_json::from_value(v).expect("EvalReport keys");
    assert!(report.reconstruction_sq_l2 > 0.0);

    // With an (untrained, 2-step) MNIST classifier: FID and precision/recall.
    let cfg = tiny(preset("mnist-wae-mmd").expect("preset"));
    let (train, _) = wae_train::load_data(&cfg, None).expect("data");
    let (net, _) = wae_metrics::mnist_classifier::train_mnist_classifier(
        &train,
        None,
        &Default::default(),
        &wae_metrics::mnist_classifier::MnistTrainConfig {
            max_steps: Some(2),
            batch_size: 32,
            ..Default::default()
        },
        &Device::Cpu,
    )
    .expect("classifier");
    let weights = out.join("classifier.safetensors");
    net.save(&weights).expect("save classifier");
    let json2 = out.join("eval2.json");
    ok(&[
        "eval",
        s(&runs().vae),
        "--n",
        "40",
        "--classifier",
        s(&weights),
        "--out",
        s(&json2),
    ]);
    let v: Value = serde_json::from_str(&fs::read_to_string(&json2).unwrap()).unwrap();
    finite_numbers(&v, "eval2", &mut count);
    let c = &v["classifier"];
    assert!(c["fid"].as_f64().unwrap() >= 0.0);
    for k in ["precision", "recall"] {
        let x = c[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&x), "{k} = {x}");
    }
    assert_eq!(c["feature_dim"], 128);
    assert_eq!(v["skipped"].as_array().unwrap().len(), 1);
    assert!(
        v.get("gmm_sampler").is_none(),
        "no mixture unless asked for"
    );

    // The post-hoc mixture sampler scored beside the prior: the prior's numbers unchanged.
    let json3 = out.join("eval3.json");
    let text = ok(&[
        "eval",
        s(&runs().vae),
        "--n",
        "40",
        "--classifier",
        s(&weights),
        "--sampler",
        "gmm:2",
        "--fit-images",
        "100",
        "--out",
        s(&json3),
    ]);
    assert!(text.contains("FID (classifier), mixture samples"), "{text}");
    let g: Value = serde_json::from_str(&fs::read_to_string(&json3).unwrap()).unwrap();
    finite_numbers(&g, "eval3", &mut count);
    assert_eq!(g["classifier"], v["classifier"]);
    let m = &g["gmm_sampler"];
    assert_eq!(m["components"], 2);
    assert_eq!(m["fit_images"], 100);
    assert!(m["classifier"]["fid"].as_f64().unwrap() >= 0.0);
    assert_ne!(
        m["classifier"]["fid"], c["fid"],
        "the mixture's samples differ"
    );
    let bad = common::wae(&["eval", s(&runs().vae), "--sampler", "gmm:x"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("gmm:K"));
}

#[test]
fn plot_has_one_panel_per_logged_number() {
    let out = out_dir("plot").join("losses.png");
    ok(&["plot", s(&runs().mmd), "--out", s(&out)]);
    let first = fs::read_to_string(runs().mmd.join("metrics.jsonl")).unwrap();
    let record: serde_json::Map<String, Value> =
        serde_json::from_str(first.lines().next().unwrap()).unwrap();
    let curves = record
        .keys()
        .filter(|k| !["step", "epoch", "seconds"].contains(&k.as_str()))
        .count() as u32;
    assert!(curves >= 3, "{record:?}");
    let rows = curves.div_ceil(2);
    assert_eq!(
        png_size(&out),
        (2 * 480 + 3 * 4, rows * 300 + (rows + 1) * 4)
    );
    let only = out.with_file_name("two.png");
    ok(&[
        "plot",
        s(&runs().mmd),
        "--only",
        "total,penalty",
        "--columns",
        "1",
        "--out",
        s(&only),
    ]);
    assert_eq!(png_size(&only), (480 + 8, 2 * 300 + 3 * 4));
    let err = fails(&["plot", s(&runs().mmd), "--only", "nonsense"]);
    assert!(
        err.contains("`nonsense` is not in") && err.contains("total"),
        "{err}"
    );
}

#[test]
fn errors_name_the_problem() {
    let out = out_dir("errors");
    let missing = out.join("no-such-run");
    for cmd in [
        "sample",
        "reconstruct",
        "interpolate",
        "traverse",
        "encode",
        "latent-plot",
        "eval",
        "plot",
    ] {
        let err = fails(&[cmd, s(&missing)]);
        assert!(err.contains("does not exist"), "{cmd}: {err}");
    }
    // A file, an empty directory.
    let file = out.join("weights.safetensors");
    fs::write(&file, b"not a run").unwrap();
    let err = fails(&["sample", s(&file)]);
    assert!(err.contains("is a file, not a run directory"), "{err}");
    let empty = out.join("empty");
    fs::create_dir_all(&empty).unwrap();
    let err = fails(&["interpolate", s(&empty)]);
    assert!(err.contains("holds no checkpoint"), "{err}");
    let err = fails(&["plot", s(&empty)]);
    assert!(err.contains("no metrics.jsonl"), "{err}");

    // A checkpoint of another kind of model: a decoder only.
    let ck = load_checkpoint(
        &latest_checkpoint_dir(&runs().mmd).unwrap().unwrap(),
        &Device::Cpu,
    )
    .unwrap();
    let decoder_only: HashMap<String, Tensor> = ck
        .model
        .into_iter()
        .filter(|(k, _)| k.starts_with("decoder."))
        .collect();
    let other = out.join("decoder-only");
    wae_train::checkpoint::save_checkpoint(
        &other,
        CheckpointData {
            state: ck.state,
            config_text: &ck.config_text,
            model: &decoder_only,
            optimizer: &HashMap::new(),
        },
        1,
    )
    .unwrap();
    for cmd in ["interpolate", "latent-plot", "encode"] {
        let err = fails(&[cmd, s(&other)]);
        assert!(
            err.contains("needs an encoder") && err.contains("another kind of model"),
            "{cmd}: {err}"
        );
    }

    // Outputs that cannot be written: below a regular file, or a directory.
    let below = file.join("samples.png");
    let err = fails(&["sample", s(&runs().mmd), "--out", s(&below)]);
    assert!(err.contains("cannot be written"), "{err}");
    let err = fails(&["encode", s(&runs().mmd), "--out", s(&out)]);
    assert!(err.contains("is a directory"), "{err}");
    // A checkpoint directory works as RUN; outputs then default to the run directory.
    let step_dir = latest_checkpoint_dir(&runs().vae).unwrap().unwrap();
    let text = ok(&["sample", s(&step_dir), "--n", "4"]);
    assert!(text.contains(s(&runs().vae.join("samples.png"))), "{text}");
}

#[test]
fn every_command_has_help_with_an_example() {
    for cmd in [
        "sample",
        "reconstruct",
        "interpolate",
        "traverse",
        "encode",
        "latent-plot",
        "eval",
        "plot",
    ] {
        let o = wae(&[cmd, "--help"]);
        let t = text(&o);
        assert!(o.status.success(), "{cmd}: {t}");
        assert!(
            t.contains("Examples:") && t.contains(&format!("wae {cmd} runs/")),
            "{cmd}: {t}"
        );
    }
}

#[test]
fn sample_from_a_mixture_fitted_to_the_training_codes() {
    let out = out_dir("gmm");
    let png = out.join("gmm.png");
    let text = ok(&[
        "sample",
        s(&runs().mmd),
        "--sampler",
        "gmm:2",
        "--n",
        "9",
        "--fit-images",
        "300", // the fixture run trains on 128 images: all of them
        "--out",
        s(&png),
    ]);
    assert!(
        text.contains("fitted a 2-component Gaussian mixture to 128 training codes"),
        "{text}"
    );
    assert!(png.is_file());
    let bad = common::wae(&["sample", s(&runs().mmd), "--sampler", "gmm:0"]);
    assert!(
        !bad.status.success() && common::text(&bad).contains("gmm:K"),
        "{}",
        common::text(&bad)
    );
}
