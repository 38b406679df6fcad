//! The committed reproductions under `docs/results/` rebuilt from their run folders:
//! `results.json` and `results.md` made again from every run's `done.json` must equal
//! the committed files byte for byte, so a change to how the report is built that
//! changes what it writes fails here.

use std::fs;
use std::path::Path;

use super::report::{ModelRuns, Results, check};
use super::runner::{RunPaths, read_json};
use super::tests::parse;
use super::{checked_seeds, selected_models};
use crate::workspace::workspace_root;

/// Rebuilds `results.json` and `results.md` of the reproduction in `dir` (per-seed
/// layout) from its `done.json` files, with the arguments of the command it names.
fn rebuild(dir: &Path) -> (String, String) {
    let committed = read_json(&dir.join("results.json")).unwrap();
    let command = committed["command"].as_str().unwrap();
    let line: Vec<&str> = command
        .strip_prefix("cargo xtask reproduce ")
        .unwrap()
        .split_whitespace()
        .collect();
    let args = parse(&line).unwrap();
    let seeds = checked_seeds(&args.seeds).unwrap();
    let mut failures = Vec::new();
    let models = selected_models(&args)
        .unwrap()
        .into_iter()
        .map(|spec| {
            let runs = seeds
                .iter()
                .map(|&seed| {
                    let run = dir.join(RunPaths::new(spec.key, seed).run);
                    let summary = read_json(&wae_train::RunDir::new(run).done()).unwrap();
                    failures.extend(check(&spec, seed, &summary));
                    (seed, summary)
                })
                .collect();
            ModelRuns { spec, runs }
        })
        .collect();
    let results = Results {
        args: &args,
        seeds: &seeds,
        command: super::command_line(&args, &seeds),
        models,
        failures,
    };
    (
        serde_json::to_string_pretty(&results.to_json()).unwrap(),
        results.markdown(),
    )
}

#[test]
fn committed_reproductions_rebuild_byte_for_byte() {
    for name in ["fading-squares-cpu", "dsprites-cpu", "mnist-cpu-xeon"] {
        let dir = workspace_root().join("docs/results").join(name);
        let (json, md) = rebuild(&dir);
        let committed_json = fs::read_to_string(dir.join("results.json")).unwrap();
        let committed_md = fs::read_to_string(dir.join("results.md")).unwrap();
        assert!(
            json == committed_json,
            "{name}/results.json differs:\n{json}"
        );
        assert!(md == committed_md, "{name}/results.md differs:\n{md}");
    }
}
