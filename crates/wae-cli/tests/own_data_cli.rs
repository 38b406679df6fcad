//! `wae init` on a folder of images, then `wae train`, `wae eval` and the pictures on
//! it (issue 18); and the errors a user meets first.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::text;

/// `wae ARGS` with the image cache under `cache`.
fn wae_in(cache: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wae"))
        .args(args)
        .env("WAE_LOG", "warn")
        .env("WAE_CACHE_DIR", cache)
        .output()
        .expect("run wae")
}

#[test]
fn init_train_eval_and_pictures_on_a_folder_of_images() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("photos");
    for class in ["cats", "dogs"] {
        fs::create_dir_all(dir.join(class)).unwrap();
    }
    // 240 colour images of 40x48 (cropped to 40x40, resized to 32x32), two classes.
    for i in 0..240u32 {
        let class = if i % 2 == 0 { "cats" } else { "dogs" };
        let img = image::RgbImage::from_fn(48, 40, |x, y| {
            image::Rgb([
                (x * 5 + i) as u8,
                (y * 6) as u8,
                if i % 2 == 0 { 40 } else { 220 },
            ])
        });
        img.save(dir.join(class).join(format!("{i:03}.png")))
            .unwrap();
    }
    let cache = tmp.path().join("cache");
    let dir_s = dir.to_str().unwrap();
    let data = format!("images:{dir_s}");
    let o = wae_in(
        &cache,
        &[
            "init",
            "--data",
            &data,
            "--model",
            "wae-mmd",
            "--size",
            "32",
            "--width-div",
            "16",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let toml = String::from_utf8(o.stdout).unwrap();
    assert!(
        toml.contains("dataset = \"images\"") && toml.contains("# The data."),
        "{toml}"
    );
    assert!(
        toml.contains("[model.encoder.architecture.dcgan]"),
        "{toml}"
    );
    let config = tmp.path().join("my.toml");
    fs::write(&config, &toml).unwrap();

    let run = tmp.path().join("runs/my");
    let run_s = run.to_str().unwrap();
    let o = wae_in(
        &cache,
        &[
            "train",
            "--config",
            config.to_str().unwrap(),
            "--out",
            run_s,
            "--max-steps",
            "3",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("decoding 240 images"), "{}", text(&o));
    let o = wae_in(&cache, &["eval", run_s, "--n", "24"]);
    assert!(o.status.success(), "{}", text(&o));
    let eval: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("eval.json")).unwrap()).unwrap();
    assert_eq!(eval["examples"], 24, "{eval}");
    let pm = &eval["prior_match"];
    let p = pm["p_value"].as_f64().unwrap();
    assert!(p > 0.0 && p <= 1.0 && pm["permutations"] == 200, "{pm}");
    assert!(pm["intrinsic_dimension"].as_f64().unwrap() > 0.0, "{pm}");
    assert!(
        text(&o).contains("intrinsic dimension of the codes"),
        "{}",
        text(&o)
    );
    for cmd in ["sample", "reconstruct", "latent-plot"] {
        let o = wae_in(&cache, &[cmd, run_s]);
        assert!(o.status.success(), "{cmd}: {}", text(&o));
    }
    for png in ["samples.png", "reconstructions.png", "latent.png"] {
        assert!(run.join(png).is_file(), "{png} missing");
    }
    // A second run reads the cache instead of decoding again.
    let o = wae_in(
        &cache,
        &[
            "train",
            "--config",
            config.to_str().unwrap(),
            "--out",
            tmp.path().join("runs/b").to_str().unwrap(),
            "--max-steps",
            "1",
        ],
    );
    assert!(
        o.status.success() && !text(&o).contains("decoding"),
        "{}",
        text(&o)
    );

    // A corrupt file stops training, naming it; --skip-bad-images trains without it.
    fs::write(dir.join("cats/999.png"), b"garbage").unwrap();
    let o = wae_in(
        &cache,
        &[
            "train",
            "--config",
            config.to_str().unwrap(),
            "--out",
            tmp.path().join("runs/c").to_str().unwrap(),
            "--max-steps",
            "1",
        ],
    );
    assert!(
        !o.status.success()
            && text(&o).contains("999.png")
            && text(&o).contains("--skip-bad-images"),
        "{}",
        text(&o)
    );
    let o = wae_in(
        &cache,
        &[
            "train",
            "--config",
            config.to_str().unwrap(),
            "--out",
            tmp.path().join("runs/c").to_str().unwrap(),
            "--max-steps",
            "1",
            "--skip-bad-images",
        ],
    );
    assert!(
        o.status.success() && text(&o).contains("1 image(s) left out"),
        "{}",
        text(&o)
    );
}

#[test]
fn init_errors_and_shape_mismatches_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let o = common::wae(&["init", "--data", "images:/no/such/folder"]);
    assert!(
        !o.status.success() && text(&o).contains("not a folder"),
        "{}",
        text(&o)
    );
    let o = common::wae(&["init", "--data", "pictures:x"]);
    assert!(
        !o.status.success() && text(&o).contains("unknown kind"),
        "{}",
        text(&o)
    );
    let o = common::wae(&["init", "--data", "hub:user/faces"]);
    assert!(
        !o.status.success() && text(&o).contains("--files"),
        "{}",
        text(&o)
    );
    let o = common::wae(&[
        "init",
        "--data",
        "hub:user/faces",
        "--files",
        "data/a.parquet,data/b.parquet",
        "--size",
        "32",
    ]);
    let t = text(&o);
    assert!(
        o.status.success()
            && t.contains("repo = \"user/faces\"")
            && t.contains("\"data/b.parquet\""),
        "{t}"
    );
    let o = common::wae(&["init", "--preset", "mnist-wae-mmd"]);
    assert!(
        o.status.success() && text(&o).contains("dataset = \"mnist\""),
        "{}",
        text(&o)
    );
    // A config whose nets do not fit the data names both shapes and the fix.
    let config = tmp.path().join("bad.toml");
    fs::write(
        &config,
        "[data]\ndataset = \"images\"\npath = \"x\"\nsize = 48\nchannels = 3\n",
    )
    .unwrap();
    let o = common::wae(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--out",
        tmp.path().join("r").to_str().unwrap(),
    ]);
    let t = text(&o);
    assert!(
        !o.status.success()
            && t.contains("3x48x48")
            && t.contains("fc = { channels = 3, side = 48 }"),
        "{t}"
    );
}

/// Writes `n` 64x64 RGB PNGs of seeded noise into `dir` (two threads).
fn noise_folder(dir: &Path, n: usize) {
    fs::create_dir_all(dir).unwrap();
    std::thread::scope(|s| {
        for part in 0..2usize {
            s.spawn(move || {
                let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ part as u64;
                for i in (part..n).step_by(2) {
                    let img = image::RgbImage::from_fn(64, 64, |_, _| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
                    });
                    img.save(dir.join(format!("{i:06}.png"))).unwrap();
                }
            });
        }
    });
}

/// The peak resident memory `wae train` printed.
fn peak_mib(out: &str) -> f64 {
    out.lines()
        .find_map(|l| l.strip_prefix("peak resident memory: "))
        .and_then(|v| v.trim_end_matches(" MiB").parse().ok())
        .unwrap_or_else(|| panic!("no peak memory line in:\n{out}"))
}

/// Issue 18: one training epoch over 100,000 64x64 RGB images (1.2 GB of pixels) needs
/// about the memory of one over 10,000, because the pixels stay in the memory-mapped
/// cache. Heavy: writes ~1.3 GB of PNGs and their cache under the temp directory.
/// Run with `WAE_HEAVY_TESTS=1 cargo test --release -p wae-cli --test own_data_cli -- --nocapture`.
#[test]
fn peak_memory_of_an_epoch_does_not_grow_with_the_folder() {
    if !wae_io::heavy_tests("peak_memory_of_an_epoch_does_not_grow_with_the_folder") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let mut peaks = Vec::new();
    for n in [10_000usize, 100_000] {
        let dir = tmp.path().join(format!("noise-{n}"));
        noise_folder(&dir, n);
        let data = format!("images:{}", dir.display());
        let o = wae_in(
            &cache,
            &[
                "init",
                "--data",
                &data,
                "--net",
                "fc",
                "--size",
                "64",
                "--width-div",
                "16",
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        let config = tmp.path().join(format!("noise-{n}.toml"));
        // The same number of test images scored at the end of both runs (the
        // evaluation's own memory grows with it), so the runs differ only in the data.
        let toml: String = String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                if l.starts_with("eval_examples = ") {
                    "eval_examples = 1000"
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(toml.contains("eval_examples = 1000"), "{toml}");
        fs::write(&config, toml).unwrap();
        let mut run_peaks = Vec::new();
        for round in ["decode", "cached"] {
            let out = tmp.path().join(format!("run-{n}-{round}"));
            let o = wae_in(
                &cache,
                &[
                    "train",
                    "--config",
                    config.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                    "--epochs",
                    "1",
                ],
            );
            assert!(o.status.success(), "{}", text(&o));
            let t = text(&o);
            let steps = t
                .lines()
                .find(|l| l.starts_with("steps:"))
                .unwrap_or("?")
                .to_string();
            run_peaks.push(peak_mib(&t));
            eprintln!(
                "{n} images, {round}: {steps}, peak resident memory {:.0} MiB",
                run_peaks[run_peaks.len() - 1]
            );
        }
        peaks.push(run_peaks);
        fs::remove_dir_all(&dir).unwrap();
    }
    let ratio = peaks[1][1] / peaks[0][1];
    eprintln!(
        "peak ratio 100k / 10k (training from the cache): {ratio:.3}; with the decode: {:.3}",
        peaks[1][0] / peaks[0][0]
    );
    assert!(ratio <= 1.2, "peaks {peaks:?}");
}
