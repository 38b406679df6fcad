//! The grid of a sweep: `--grid KEY=V1,V2,...` axes, their cartesian product, and each
//! point's config made by editing the base config's TOML (so any config key can be swept
//! and the config parser's own checks, unknown keys included, apply).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use toml::{Table, Value};
use wae_train::TrainConfig;

/// One `--grid KEY=V1,V2,...`: a dotted config key and its values as given (TOML literals:
/// integer, float, bool, or a string, quoted or bare).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridAxis {
    /// Dotted key into the config, e.g. `objective.lambda`.
    pub key: String,
    /// The values, in the order given.
    pub values: Vec<String>,
}

impl GridAxis {
    /// Parses `KEY=V1,V2,...`.
    pub fn parse(text: &str) -> Result<Self> {
        let Some((key, values)) = text.split_once('=') else {
            bail!("--grid {text}: expected KEY=V1,V2,... (e.g. objective.lambda=1,10,100)");
        };
        let key = key.trim();
        if key.is_empty() || key.split('.').any(|part| part.trim().is_empty()) {
            bail!("--grid {text}: `{key}` is not a dotted config key (e.g. objective.lambda)");
        }
        if key == "seed" {
            bail!("--grid {text}: the seed is not a grid key; give the seeds with --seeds 0,1,2");
        }
        let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
        if values.iter().any(String::is_empty) {
            bail!("--grid {text}: an empty value (values are separated by commas)");
        }
        let mut seen = BTreeSet::new();
        for v in &values {
            if !seen.insert(v) {
                bail!("--grid {text}: the value `{v}` is given twice");
            }
        }
        Ok(Self {
            key: key.to_string(),
            values,
        })
    }
}

/// Checks that no key is swept twice.
pub fn check_axes(axes: &[GridAxis]) -> Result<()> {
    for (i, a) in axes.iter().enumerate() {
        if axes[..i].iter().any(|b| b.key == a.key) {
            bail!("--grid: the key `{}` is given twice", a.key);
        }
    }
    Ok(())
}

/// One grid point: a value per axis, and its folder name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    /// Folder name, e.g. `lambda-10_latent_dim-8` (`base` for an empty grid).
    pub name: String,
    /// `(key, value)` per axis, in axis order.
    pub values: Vec<(String, String)>,
}

/// The cartesian product of the axes, the first axis outermost; an empty grid is the one
/// point `base`. Folder names use each key's last part (the whole key where two axes
/// share it) and the value, with characters other than `A-Za-z0-9.+-` replaced by `_`.
pub fn points(axes: &[GridAxis]) -> Result<Vec<Point>> {
    check_axes(axes)?;
    let labels: Vec<String> = axes
        .iter()
        .map(|a| {
            let last = a.key.rsplit('.').next().unwrap_or(&a.key);
            let shared = axes
                .iter()
                .filter(|b| b.key.rsplit('.').next() == Some(last))
                .count()
                > 1;
            if shared {
                a.key.replace('.', "-")
            } else {
                last.to_string()
            }
        })
        .collect();
    let mut combos: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for axis in axes {
        combos = combos
            .into_iter()
            .flat_map(|prefix| {
                axis.values.iter().map(move |v| {
                    let mut c = prefix.clone();
                    c.push((axis.key.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    let mut names = BTreeSet::new();
    let mut out = Vec::with_capacity(combos.len());
    for values in combos {
        let name = if values.is_empty() {
            "base".to_string()
        } else {
            values
                .iter()
                .zip(&labels)
                .map(|((_, v), label)| format!("{label}-{}", sanitize(v)))
                .collect::<Vec<_>>()
                .join("_")
        };
        if !names.insert(name.clone()) {
            bail!(
                "--grid: two points get the folder name `{name}`; give values that differ in \
                 letters or digits"
            );
        }
        out.push(Point { name, values });
    }
    Ok(out)
}

fn sanitize(value: &str) -> String {
    value
        .trim_matches('"')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A grid value as a TOML value: a TOML literal where it is one (`10`, `1e-3`, `true`,
/// `"text"`), otherwise the text as a string (`wae_mmd`).
fn literal(raw: &str) -> Value {
    toml::from_str::<Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a bool",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

/// Sets `key` (dotted) to `raw` in `table`, the TOML of a config. The value takes the type
/// the key holds in the base config where it is there (an integer becomes a float for a
/// float key; a number for a string key is that string); a value of the wrong type is an
/// error naming the key and the value. Keys the base config does not show (unset optional
/// ones, or typos) are inserted and left to the config parser to accept or refuse.
fn set_key(table: &mut Table, key: &str, raw: &str) -> Result<()> {
    let parts: Vec<&str> = key.split('.').collect();
    let (last, parents) = parts.split_last().expect("a key has a part");
    let mut here = table;
    for (i, part) in parents.iter().enumerate() {
        let entry = here
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        match entry {
            Value::Table(t) => here = t,
            other => bail!(
                "grid key `{key}`: `{}` is {}, not a table of keys",
                parts[..=i].join("."),
                type_name(other)
            ),
        }
    }
    let given = literal(raw);
    let value = match (here.get(*last), given) {
        (None, v) => v,
        (Some(Value::Float(_)), Value::Integer(i)) => Value::Float(i as f64),
        (Some(Value::String(_)), Value::String(s)) => Value::String(s),
        (Some(Value::String(_)), _) => Value::String(raw.to_string()),
        (Some(old), v) if std::mem::discriminant(old) == std::mem::discriminant(&v) => v,
        (Some(old @ (Value::Array(_) | Value::Table(_))), _) => bail!(
            "grid key `{key}` holds {} in the config; only single values can be swept",
            type_name(old)
        ),
        (Some(old), v) => bail!(
            "grid value `{raw}` of `{key}` is {}, but `{key}` holds {} (e.g. {old})",
            type_name(&v),
            type_name(old)
        ),
    };
    here.insert(last.to_string(), value);
    Ok(())
}

/// The keys of the table at the parent of `key` in `table` (what a typo could have meant).
fn sibling_keys(table: &Table, key: &str) -> Vec<String> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut here = table;
    let mut prefix = String::new();
    for part in &parts[..parts.len() - 1] {
        match here.get(*part) {
            Some(Value::Table(t)) => {
                here = t;
                prefix.push_str(part);
                prefix.push('.');
            }
            _ => break,
        }
    }
    here.keys().map(|k| format!("{prefix}{k}")).collect()
}

/// The base config with `values` applied, parsed back and checked. An unknown key is an
/// error that names it and the keys beside it; a refused value names the key and value.
pub fn apply(base: &TrainConfig, values: &[(String, String)]) -> Result<TrainConfig> {
    let base_table: Table = toml::from_str(&base.to_toml_string()?)?;
    let mut table = base_table.clone();
    for (key, raw) in values {
        set_key(&mut table, key, raw)?;
    }
    let text = toml::to_string(&table)?;
    match TrainConfig::from_toml_str(&text, Path::new("the grid point")) {
        Ok(cfg) => Ok(cfg),
        Err(e) => {
            let message = e.to_string();
            for (key, raw) in values {
                if key
                    .split('.')
                    .any(|part| message.contains(&format!("unknown field `{part}`")))
                {
                    bail!(
                        "unknown grid key `{key}`; the config has {}\n({message})",
                        sibling_keys(&base_table, key).join(", ")
                    );
                }
                // The value alone on the base config: is it the one refused?
                if values.len() > 1 {
                    let one = [(key.clone(), raw.clone())];
                    apply(base, &one)?;
                }
            }
            let shown: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
            bail!("grid value(s) {} refused: {message}", shown.join(" "))
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The MMD weight of a WAE-MMD config.
    pub(in crate::sweep) fn wae_mmd_lambda(cfg: &TrainConfig) -> f64 {
        match &cfg.objective {
            wae_objectives::ObjectiveConfig::WaeMmd(w) => w.lambda,
            other => panic!("not WAE-MMD: {other:?}"),
        }
    }

    fn axis(text: &str) -> GridAxis {
        GridAxis::parse(text).unwrap()
    }

    fn smoke() -> TrainConfig {
        wae_train::preset("mnist-wae-mmd-smoke").unwrap()
    }

    #[test]
    fn grid_axes_parse_and_refuse_bad_text() {
        assert_eq!(
            axis("objective.lambda=1, 10,100"),
            GridAxis {
                key: "objective.lambda".into(),
                values: vec!["1".into(), "10".into(), "100".into()]
            }
        );
        for bad in [
            "objective.lambda",
            "=1,2",
            "a..b=1",
            "x=1,,2",
            "x=1,1",
            "seed=1,2",
        ] {
            assert!(GridAxis::parse(bad).is_err(), "{bad}");
        }
        let err = GridAxis::parse("seed=0,1").unwrap_err().to_string();
        assert!(err.contains("--seeds"), "{err}");
        let twice = [axis("a.b=1"), axis("a.b=2")];
        assert!(check_axes(&twice).is_err());
    }

    #[test]
    fn the_grid_is_the_cartesian_product_first_axis_outermost() {
        let p = points(&[
            axis("objective.lambda=1,10"),
            axis("model.encoder.latent_dim=8,16,32"),
        ])
        .unwrap();
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "lambda-1_latent_dim-8",
                "lambda-1_latent_dim-16",
                "lambda-1_latent_dim-32",
                "lambda-10_latent_dim-8",
                "lambda-10_latent_dim-16",
                "lambda-10_latent_dim-32"
            ]
        );
        assert_eq!(
            p[4].values,
            vec![
                ("objective.lambda".to_string(), "10".to_string()),
                ("model.encoder.latent_dim".to_string(), "16".to_string())
            ]
        );
        let shared = points(&[
            axis("model.encoder.latent_dim=4"),
            axis("model.decoder.latent_dim=4"),
        ])
        .unwrap();
        assert_eq!(
            shared[0].name,
            "model-encoder-latent_dim-4_model-decoder-latent_dim-4"
        );
        assert_eq!(points(&[]).unwrap()[0].name, "base");
        assert!(
            points(&[axis("description=a b,a_b")]).is_err(),
            "same folder"
        );
    }

    #[test]
    fn values_are_applied_with_the_keys_type() {
        let cfg = apply(
            &smoke(),
            &[
                ("objective.lambda".into(), "3".into()),
                ("training.batch_size".into(), "16".into()),
                ("pretrain.enabled".into(), "false".into()),
                ("description".into(), "42".into()),
            ],
        )
        .unwrap();
        assert_eq!(wae_mmd_lambda(&cfg), 3.0);
        assert_eq!(cfg.training.batch_size, 16);
        assert!(!cfg.pretrain.enabled);
        assert_eq!(cfg.description, "42");
        // An optional key the preset leaves unset.
        let unset = apply(
            &TrainConfig::default(),
            &[("data.train_examples".into(), "100".into())],
        )
        .unwrap();
        assert_eq!(unset.data.train_examples, Some(100));
    }

    #[test]
    fn a_typo_in_a_key_is_refused_by_name_with_the_valid_keys() {
        let err = apply(&smoke(), &[("objective.lamda".into(), "1".into())])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown grid key `objective.lamda`") && err.contains("objective.lambda"),
            "{err}"
        );
        let err = apply(&smoke(), &[("trainig.epochs".into(), "2".into())])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`trainig.epochs`") && err.contains("training"),
            "{err}"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_names_the_key_and_the_value() {
        let err = apply(&smoke(), &[("objective.lambda".into(), "ten".into())])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`ten`") && err.contains("`objective.lambda`"),
            "{err}"
        );
        let err = apply(&smoke(), &[("training.batch_size".into(), "0.5".into())])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`0.5`") && err.contains("training.batch_size"),
            "{err}"
        );
        // A value the parser refuses (an unknown kind) names key and value too.
        let err = apply(
            &smoke(),
            &[
                ("objective.lambda".into(), "1".into()),
                ("objective.kind".into(), "wae_mdm".into()),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("objective.kind=wae_mdm"), "{err}");
    }
}
