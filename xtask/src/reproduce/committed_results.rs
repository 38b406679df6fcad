//! The committed reproductions under `docs/results/` rebuilt from their run folders:
//! `results.json` and `results.md` made again from every run's `done.json` must equal
//! the committed files byte for byte, so a change to how the report is built that
//! changes what it writes fails here.

use std::fs;
use std::path::Path;

use super::report::{ModelRuns, Results, check};
use super::runner::{RunPaths, json_text, read_json};
use super::summary::RunSummary;
use super::tests::parse;
use super::{checked_seeds, selected_models};
use crate::workspace::workspace_root;

/// Rebuilds `results.json` and `results.md` of the reproduction in `dir` (per-seed
/// layout) from its `done.json` files, with the arguments of the command it names.
fn rebuild(dir: &Path) -> (String, String) {
    let committed: Committed = read_json(&dir.join("results.json")).unwrap();
    let line: Vec<&str> = committed
        .command
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
                    let done = wae_train::RunDir::new(run).done();
                    let summary: RunSummary = read_json(&done).unwrap();
                    // Read and written back, a done.json is the same file.
                    assert!(
                        json_text(&summary).unwrap() == fs::read_to_string(&done).unwrap(),
                        "{}",
                        done.display()
                    );
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
    (results.json().unwrap(), results.markdown())
}

/// What the test reads of a committed `results.json`: the command that made it.
#[derive(serde::Deserialize)]
struct Committed {
    command: String,
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
