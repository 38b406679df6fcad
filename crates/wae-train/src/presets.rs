//! Named configurations: the papers' runs and CPU-sized variants of each, as data.
//!
//! Every preset is a TOML file in `crates/wae-train/presets/`, in the format `wae train
//! --config` reads (only the keys that differ from the defaults), included in the crate
//! at build time: `wae train --preset NAME` loads `presets/NAME.toml`. Each file opens with
//! its provenance, which paper or code it follows and where it departs, and its
//! `description` is the one-line summary `wae train --list-presets` shows
//! ([`preset_summary`]); `presets/README.md` has what whole families share. [`PRESETS`]
//! lists the names in order, the one place besides the file that names a preset; the
//! table in `docs/training.md` is rendered from the files and a test fails when the two
//! disagree.
//!
//! | preset | what |
//! | --- | --- |
//! | `mnist-*` | the reference code's MNIST config (`tolstikhin/wae`), its VAE / beta-VAE twins, its other priors, SWAE and InfoVAE on the same networks |
//! | `celeba-*` | `tolstikhin/wae` `config_celebA` at commit 6351565 with the ICLR paper's sigma_z^2 and lambdas |
//! | `fading-squares-*`, `dsprites-wae-mmd-*`, `dsprites-*vae*` | Rubenstein et al.'s latent-space experiments (`paruby/Wasserstein-Auto-Encoders`) |
//! | `dsprites-wae-code-*` | the `tolstikhin/wae` code's dSprites config |
//! | `*-cpu` | the same sized for 2 CPU cores (each file says how) |
//! | `mnist-wae-mmd-smoke` | a seconds-long run on 512 images with tiny networks, for tests and a first try |

use std::path::Path;

use crate::config::TrainConfig;
use crate::schedule::Schedule;
use crate::{Error, Result};

#[cfg(test)]
mod rubenstein;

/// Declares [`PRESETS`] and the included file of each preset, from one list of names.
macro_rules! presets {
    ($($name:literal,)*) => {
        /// Every preset's name, in the order `wae train --list-presets` shows them.
        pub const PRESETS: &[&str] = &[$($name),*];

        /// The TOML text of each preset, in [`PRESETS`] order.
        const FILES: &[&str] = &[$(include_str!(concat!("../presets/", $name, ".toml"))),*];
    };
}

// A preset is its file in `presets/` and its name here.
presets! {
    "mnist-vae",
    "mnist-beta-vae",
    "mnist-wae-mmd",
    "mnist-wae-gan",
    "celeba-vae",
    "celeba-wae-mmd",
    "celeba-wae-gan",
    "mnist-swae",
    "mnist-info-vae",
    "mnist-wae-mmd-box",
    "mnist-wae-mmd-sphere",
    "mnist-vae-cpu",
    "mnist-beta-vae-cpu",
    "mnist-wae-mmd-cpu",
    "mnist-wae-gan-cpu",
    "mnist-swae-cpu",
    "mnist-wae-mmd-box-cpu",
    "mnist-wae-mmd-sphere-cpu",
    "mnist-info-vae-cpu",
    "celeba-vae-cpu",
    "celeba-wae-mmd-cpu",
    "celeba-wae-gan-cpu",
    "fading-squares-wae-mmd-random",
    "fading-squares-wae-mmd-det",
    "dsprites-wae-mmd-random",
    "dsprites-wae-mmd-det",
    "dsprites-vae",
    "dsprites-beta-vae-4",
    "dsprites-beta-vae-16",
    "dsprites-wae-code-mmd",
    "dsprites-wae-code-mmd-gauss",
    "fading-squares-wae-mmd-random-cpu",
    "fading-squares-wae-mmd-det-cpu",
    "dsprites-wae-mmd-random-cpu",
    "dsprites-wae-mmd-det-cpu",
    "dsprites-vae-cpu",
    "dsprites-beta-vae-4-cpu",
    "dsprites-beta-vae-16-cpu",
    "dsprites-wae-code-mmd-cpu",
    "dsprites-wae-code-mmd-gauss-cpu",
    "mnist-wae-mmd-smoke",
}

/// The TOML file of a preset, as included in the crate: its provenance in comments, then
/// the keys that differ from the defaults. `None` for an unknown name.
pub fn preset_toml(name: &str) -> Option<&'static str> {
    PRESETS.iter().position(|n| *n == name).map(|i| FILES[i])
}

/// A preset's one-line summary: its file's `description`, less a leading `BASE: ` that
/// only repeats the name (`mnist-vae-cpu`'s `mnist-vae: VAE with the paper's MNIST
/// networks (CPU variant: ...)` gives `VAE with the paper's MNIST networks (CPU variant:
/// ...)`).
pub fn preset_summary(name: &str) -> Result<String> {
    let description = preset(name)?.description;
    Ok(match description.split_once(": ") {
        Some((base, rest)) if name.starts_with(base) => rest.to_string(),
        _ => description,
    })
}

/// Turns a full-size preset into its CPU variant: networks `width_div` times
/// narrower, `epochs` epochs, the manual schedule's milestones scaled to the
/// shorter run, and a smaller pretraining sample.
pub fn cpu_variant(mut cfg: TrainConfig, width_div: usize, epochs: u64) -> TrainConfig {
    let full_epochs = cfg.training.epochs;
    cfg.model = cfg.model.with_width_div(width_div);
    cfg.training.epochs = epochs;
    if let Schedule::Manual { milestones } = &mut cfg.optimizer.schedule {
        for m in milestones.iter_mut() {
            m.epoch = (m.epoch * epochs).div_ceil(full_epochs.max(1));
        }
    }
    cfg.pretrain.sample_size = cfg.pretrain.sample_size.min(200);
    cfg.pretrain.max_steps = cfg.pretrain.max_steps.min(50);
    cfg.description = format!(
        "{} (CPU variant: width / {width_div}, {epochs} epochs)",
        cfg.description
    );
    cfg
}

/// The configuration of a preset, by name (see [`PRESETS`]).
pub fn preset(name: &str) -> Result<TrainConfig> {
    let text = preset_toml(name).ok_or_else(|| Error::UnknownPreset {
        name: name.to_string(),
        known: PRESETS.join(", "),
    })?;
    TrainConfig::from_toml_str(
        text,
        &Path::new("crates/wae-train/presets").join(format!("{name}.toml")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Milestone;
    use wae_objectives::{Likelihood, ObjectiveConfig, PriorConfig};

    #[test]
    fn every_preset_is_valid_and_round_trips() {
        for name in PRESETS {
            let cfg = preset(name).unwrap();
            cfg.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            let text = cfg.to_toml_string().unwrap();
            let back = TrainConfig::from_toml_str(&text, Path::new(name)).unwrap();
            assert_eq!(back, cfg, "{name}");
        }
    }

    /// Every preset's config, in preset order, as one TOML document (a table per name).
    fn all_presets_toml() -> String {
        let mut all = toml::Table::new();
        for name in PRESETS {
            let value = toml::Table::try_from(preset(name).unwrap()).unwrap();
            all.insert((*name).to_string(), toml::Value::Table(value));
        }
        toml::to_string(&all).unwrap()
    }

    /// The presets give exactly the configs of the committed snapshot,
    /// `tests/data/presets-snapshot.toml` (written when the presets moved from Rust
    /// builders to TOML files). A deliberate change of a preset rewrites it with
    /// `WAE_UPDATE_PRESET_SNAPSHOT=1 cargo test -p wae-train --lib presets`.
    #[test]
    fn presets_match_the_snapshot() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/presets-snapshot.toml");
        let now = all_presets_toml();
        if std::env::var_os("WAE_UPDATE_PRESET_SNAPSHOT").is_some_and(|v| v == "1") {
            std::fs::write(&path, &now).unwrap();
        }
        let snapshot = std::fs::read_to_string(&path).unwrap();
        if now != snapshot {
            let first = now
                .lines()
                .zip(snapshot.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(now.lines().count().min(snapshot.lines().count()));
            panic!(
                "the presets differ from {} from line {}: now {:?}, snapshot {:?}",
                path.display(),
                first + 1,
                now.lines().nth(first),
                snapshot.lines().nth(first)
            );
        }
    }

    #[test]
    fn swae_and_info_vae_presets_keep_their_documented_values() {
        let swae = preset("mnist-swae").unwrap();
        let ObjectiveConfig::Swae(w) = &swae.objective else {
            panic!("{:?}", swae.objective)
        };
        assert_eq!((w.lambda, w.projections, w.power), (10.0, 50, 2.0));
        assert_eq!(
            (w.cost, w.cost_scale),
            (wae_objectives::CostKind::SquaredL2, 0.05)
        );
        // The WAE-MMD MNIST setup otherwise.
        let mmd = preset("mnist-wae-mmd").unwrap();
        assert_eq!(swae.model, mmd.model);
        assert_eq!(swae.optimizer, mmd.optimizer);
        assert_eq!(swae.pretrain, mmd.pretrain);

        let info = preset("mnist-info-vae").unwrap();
        let ObjectiveConfig::InfoVae(v) = &info.objective else {
            panic!("{:?}", info.objective)
        };
        assert_eq!((v.alpha, v.lambda, v.mmd_weight()), (0.0, 100.0, 99.0));
        assert_eq!(v.likelihood, Likelihood::Bernoulli);
        let vae = preset("mnist-vae").unwrap();
        assert_eq!(info.model, vae.model);
        assert_eq!(info.optimizer, vae.optimizer);
        assert!(!info.pretrain.enabled);
        assert_eq!(preset("mnist-info-vae-cpu").unwrap().training.epochs, 2);
    }

    #[test]
    fn paper_numbers() {
        let c = preset("mnist-wae-mmd").unwrap();
        assert_eq!(c.training.batch_size, 100);
        assert_eq!(c.training.epochs, 100);
        assert_eq!(c.model.latent_dim(), 8);
        assert_eq!(c.optimizer.autoencoder.beta1, 0.5);
        assert_eq!(c.optimizer.discriminator.lr, 5e-4);
        match c.objective {
            ObjectiveConfig::WaeMmd(w) => assert_eq!(w.lambda, 10.0),
            other => panic!("{other:?}"),
        }
        let c = preset("celeba-wae-gan").unwrap();
        assert_eq!(c.model.latent_dim(), 64);
        assert_eq!(c.model.prior, PriorConfig::Normal { variance: 2.0 });
        let cpu = preset("mnist-wae-mmd-cpu").unwrap();
        assert_eq!(cpu.model.encoder.width_div, 4);
        assert_eq!(cpu.training.epochs, 2);
        // milestones 30, 50 of 100 epochs -> both 1 of 2
        assert_eq!(
            cpu.optimizer.schedule,
            Schedule::Manual {
                milestones: vec![
                    Milestone {
                        epoch: 1,
                        divide_by: 2.0
                    },
                    Milestone {
                        epoch: 1,
                        divide_by: 5.0
                    }
                ]
            }
        );
    }

    #[test]
    fn unknown_preset_lists_the_known_ones() {
        let err = preset("mnist-wea").unwrap_err().to_string();
        assert!(
            err.contains("mnist-wea") && err.contains("mnist-wae-mmd"),
            "{err}"
        );
        assert!(preset("mnist-wae-mmd-smoke-cpu").is_err());
    }

    /// The files in `presets/` are exactly the presets, and each opens with its name and
    /// its provenance (a comment block saying what it follows).
    #[test]
    fn every_file_is_a_preset_with_its_provenance() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("presets");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".toml").map(str::to_string)
            })
            .collect();
        files.sort();
        let mut names: Vec<String> = PRESETS.iter().map(|n| n.to_string()).collect();
        names.sort();
        assert_eq!(files, names, "presets/*.toml and PRESETS");
        for name in PRESETS {
            let text = preset_toml(name).unwrap();
            let header: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
            assert_eq!(
                header.first(),
                Some(&format!("# {name}").as_str()),
                "{name}"
            );
            let provenance = header.join("\n");
            assert!(
                provenance.contains("Follows:")
                    || provenance.contains(".toml sized for")
                    || provenance.contains(".toml for")
                    || provenance.contains("seconds-long"),
                "{name}: no provenance in its header"
            );
        }
    }

    /// Each preset's `description` opens with the preset it is (or is sized from) and a
    /// colon, which its summary beside the name leaves out; the summary is one line.
    #[test]
    fn every_summary_is_its_description_without_the_name() {
        for name in PRESETS {
            let description = preset(name).unwrap().description;
            let summary = preset_summary(name).unwrap();
            assert!(
                !summary.is_empty() && !summary.contains('\n'),
                "{name}: {summary:?}"
            );
            assert!(
                summary.len() < description.len() && description.ends_with(&summary),
                "{name}: its description `{description}` does not open with `BASE: `"
            );
        }
        assert_eq!(
            preset_summary("mnist-vae-cpu").unwrap(),
            "VAE with the paper's MNIST networks (CPU variant: width / 4, 2 epochs)"
        );
        assert!(preset_summary("mnist-wea").is_err());
    }

    /// `1234567` as `1,234,567`.
    fn thousands(n: u64) -> String {
        let digits = n.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    }

    /// `kind` of a serialised enum table, then its other scalar keys named in `keys`.
    fn kind_with(value: &toml::Value, keys: &[&str]) -> String {
        let table = value.as_table().unwrap();
        let tag = table
            .get("kind")
            .or_else(|| table.get("type"))
            .and_then(toml::Value::as_str)
            .unwrap_or("?")
            .replace('_', " ");
        let mut parts = vec![tag];
        for key in keys {
            match table.get(*key) {
                Some(toml::Value::Float(x)) if *key == "logvar_l1" && *x == 0.0 => {}
                Some(toml::Value::Float(x)) => parts.push(format!("{} {x}", key.replace('_', " "))),
                Some(toml::Value::Boolean(b)) => {
                    parts.push(format!("{} {b}", key.replace('_', " ")))
                }
                _ => {}
            }
        }
        parts.join(", ")
    }

    /// The preset table of `docs/training.md`, rendered from the presets.
    fn docs_table() -> String {
        let mut out = String::from(
            "| preset | data | objective | encoder | prior | d_z | width | length | what |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        );
        for name in PRESETS {
            let cfg = preset(name).unwrap();
            let what = preset_summary(name).unwrap();
            let value = toml::Value::try_from(&cfg).unwrap();
            let data = match (cfg.data.train_examples, cfg.data.test_examples) {
                (Some(train), Some(test)) => format!(
                    "{} ({} / {})",
                    value["data"]["dataset"].as_str().unwrap(),
                    thousands(train as u64),
                    thousands(test as u64)
                ),
                (Some(train), None) => format!(
                    "{} ({} train)",
                    value["data"]["dataset"].as_str().unwrap(),
                    thousands(train as u64)
                ),
                _ => value["data"]["dataset"].as_str().unwrap().to_string(),
            }
            .replace('_', " ");
            let objective = kind_with(
                &value["objective"],
                &["lambda", "beta", "alpha", "logvar_l1"],
            );
            let encoder = value["model"]["encoder"]["kind"]
                .as_str()
                .unwrap()
                .replace('_', " ");
            let prior = kind_with(
                &value["model"]["prior"],
                &["variance", "half_width", "squash"],
            );
            let width = match cfg.model.encoder.width_div {
                1 => "full".to_string(),
                d => format!("1/{d}"),
            };
            let length = match cfg.training.max_steps {
                Some(steps) => format!("{} steps", thousands(steps)),
                None => format!(
                    "{} epoch{}",
                    cfg.training.epochs,
                    if cfg.training.epochs == 1 { "" } else { "s" }
                ),
            };
            out.push_str(&format!(
                "| `{name}` | {data} | {objective} | {encoder} | {prior} | {} | {width} | {length}, batch {} | {what} |\n",
                cfg.model.latent_dim(),
                cfg.training.batch_size
            ));
        }
        out
    }

    const TABLE_START: &str = "<!-- presets table: rendered from crates/wae-train/presets by a test; \
                               WAE_UPDATE_DOCS=1 cargo test -p wae-train --lib presets rewrites it -->\n";
    const TABLE_END: &str = "<!-- end of the presets table -->";

    /// The table in `docs/training.md` lists every preset, in order, with what its config
    /// holds: a preset added, renamed or changed without the docs fails here.
    #[test]
    fn docs_table_matches_the_presets() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/training.md");
        let docs = std::fs::read_to_string(&path).unwrap();
        let start = docs
            .find(TABLE_START)
            .expect("the presets table's start marker")
            + TABLE_START.len();
        let end = start
            + docs[start..]
                .find(TABLE_END)
                .expect("the presets table's end marker");
        let table = docs_table();
        if std::env::var_os("WAE_UPDATE_DOCS").is_some_and(|v| v == "1") {
            let updated = format!("{}{table}{}", &docs[..start], &docs[end..]);
            std::fs::write(&path, updated).unwrap();
            return;
        }
        let in_docs = &docs[start..end];
        if in_docs != table {
            let diff: Vec<String> = table
                .lines()
                .filter(|l| !in_docs.lines().any(|d| d == *l))
                .map(|l| format!("  presets: {l}"))
                .chain(
                    in_docs
                        .lines()
                        .filter(|d| !table.lines().any(|l| l == *d))
                        .map(|d| format!("  docs:    {d}")),
                )
                .collect();
            panic!(
                "the presets table in {} disagrees with the presets (rewrite it with \
                 WAE_UPDATE_DOCS=1 cargo test -p wae-train --lib presets):\n{}",
                path.display(),
                diff.join("\n")
            );
        }
    }
}
