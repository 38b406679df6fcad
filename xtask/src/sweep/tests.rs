use super::*;
use clap::Parser;

/// `cargo xtask sweep ...` parsed on its own.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: SweepArgs,
}

fn parse(line: &[&str]) -> SweepArgs {
    Cli::try_parse_from(std::iter::once("sweep").chain(line.iter().copied()))
        .unwrap_or_else(|e| panic!("{line:?}: {e}"))
        .args
}

fn spec(grid: &[&str], seeds: &[u64]) -> SweepSpec {
    SweepSpec {
        base: "preset mnist-wae-mmd-smoke".into(),
        seeds: seeds.to_vec(),
        max_steps: None,
        eval_n: 256,
        device: "cpu".into(),
        base_config: wae_train::preset("mnist-wae-mmd-smoke")
            .unwrap()
            .to_toml_string()
            .unwrap(),
        grid: grid.iter().map(|g| GridAxis::parse(g).unwrap()).collect(),
    }
}

#[test]
fn the_command_line_parses_grids_with_commas_and_seed_lists() {
    let args = parse(&[
        "--preset",
        "mnist-wae-mmd-cpu",
        "--grid",
        "objective.lambda=1,10,100",
        "--grid",
        "model.encoder.latent_dim=8,16",
        "--seeds",
        "0,1,2",
        "--executor",
        "slurm",
        "--gres",
        "gpu:1",
    ]);
    assert_eq!(
        args.grid,
        ["objective.lambda=1,10,100", "model.encoder.latent_dim=8,16"]
    );
    assert_eq!(args.seeds, [0, 1, 2]);
    assert_eq!(args.executor, Executor::Slurm);
    assert_eq!(args.slurm.gres.as_deref(), Some("gpu:1"));
    assert_eq!(args.slurm.cpus_per_task, 2, "default");
    assert!(
        Cli::try_parse_from(["sweep", "--collect", "x", "--preset", "p"]).is_err(),
        "--collect takes no grid"
    );
}

#[test]
fn tasks_are_points_times_seeds_with_their_folders() {
    let t = tasks(&spec(&["objective.lambda=1,10"], &[0, 1])).unwrap();
    assert_eq!(t.len(), 4);
    assert_eq!(
        t.iter()
            .map(|t| (t.point.name.as_str(), t.seed))
            .collect::<Vec<_>>(),
        [
            ("lambda-1", 0),
            ("lambda-1", 1),
            ("lambda-10", 0),
            ("lambda-10", 1)
        ]
    );
    assert_eq!(t[3].index, 3);
    assert_eq!(t[3].paths.run, Path::new("lambda-10").join("seed-1"));
    assert_eq!(
        t[3].tsv_line(),
        "3\tlambda-10\t1\tconfigs/lambda-10-seed-1.toml\tlambda-10/seed-1\t\
         configs/lambda-10-seed-1.done.json\n"
    );
    let base = wae_train::preset("mnist-wae-mmd-smoke").unwrap();
    let cfg = task_config(&base, &t[3]).unwrap();
    assert_eq!((grid::tests::wae_mmd_lambda(&cfg), cfg.seed), (10.0, 1));
    assert!(
        cfg.description.contains("objective.lambda=10"),
        "{}",
        cfg.description
    );
}

#[test]
fn a_folder_of_another_grid_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = spec(&["objective.lambda=1,10"], &[0, 1]);
    claim_folder(dir.path(), &first).unwrap();
    claim_folder(dir.path(), &first).unwrap(); // the same sweep again
    let err = claim_folder(dir.path(), &spec(&["objective.lambda=1,100"], &[0, 1]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("another sweep")
            && err.contains("objective.lambda=1,10 there")
            && err.contains("objective.lambda=1,100 now"),
        "{err}"
    );
    let err = claim_folder(dir.path(), &spec(&["objective.lambda=1,10"], &[0]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("the seeds"), "{err}");
    // Nothing half-written: the folder holds sweep.toml and no temporary file.
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["sweep.toml"]);
}

#[test]
fn a_typo_in_a_grid_key_fails_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let args = parse(&[
        "--preset",
        "mnist-wae-mmd-smoke",
        "--grid",
        "objective.lamda=1,10",
        "--out",
        out.to_str().unwrap(),
        "--wae-bin",
        "/nonexistent/wae",
    ]);
    let err = run(&args).unwrap_err().to_string();
    assert!(
        err.contains("unknown grid key `objective.lamda`") && err.contains("objective.lambda"),
        "{err}"
    );
    assert!(!out.exists());
}

/// Writes a finished run (done.json, eval.json) of `task` under `out`.
fn fake_run(out: &Path, task: &Task, reconstruction: f64, mmd: f64) {
    let dir = out.join(&task.paths.run);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("done.json"), "{}").unwrap();
    let eval = wae_train::evaluate::EvalReport {
        step: 16,
        examples: 256,
        mmd_codes_vs_prior: mmd,
        ..crate::reproduce::report::tests::eval(reconstruction)
    };
    eval.save(&dir.join("eval.json")).unwrap();
}

#[test]
fn collect_reports_what_finished_and_names_the_missing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(&["objective.lambda=1,10,100"], &[0, 1]);
    claim_folder(dir.path(), &spec).unwrap();
    let t = tasks(&spec).unwrap();
    fake_run(dir.path(), &t[0], 10.0, 0.5); // lambda 1: both seeds
    fake_run(dir.path(), &t[1], 12.0, 0.7);
    fake_run(dir.path(), &t[2], 14.0, 0.1); // lambda 10: seed 0 only
    // lambda 100 seed 0 trained but not evaluated: not finished.
    fs::create_dir_all(dir.path().join(&t[4].paths.run)).unwrap();
    let report = collect(dir.path()).unwrap();
    assert_eq!(report.total, 6);
    assert_eq!(
        report.missing,
        ["lambda-10 seed 1", "lambda-100 seed 0", "lambda-100 seed 1"]
    );
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("sweep.json")).unwrap()).unwrap();
    let p = &json["points"];
    assert_eq!(p[0]["metrics"]["reconstruction_sq_l2"]["mean"], 11.0);
    assert_eq!(p[0]["metrics"]["reconstruction_sq_l2"]["n"], 2);
    assert!(
        (p[0]["metrics"]["reconstruction_sq_l2"]["sd"]
            .as_f64()
            .unwrap()
            - 2f64.sqrt())
        .abs()
            < 1e-12
    );
    assert_eq!(p[1]["metrics"]["mmd_codes_vs_prior"]["n"], 1);
    assert!(p[2]["metrics"].as_object().unwrap().is_empty(), "{json}");
    assert_eq!(p[0]["runs"]["1"]["step"], 16.0);
    assert_eq!(p[0]["pareto"], true);
    assert_eq!(
        p[1]["pareto"], true,
        "lower MMD, higher error: on the front"
    );
    assert_eq!(p[2]["pareto"], false, "no numbers");
    assert_eq!(json["runs_missing"].as_array().unwrap().len(), 3);
    let md = fs::read_to_string(dir.path().join("sweep.md")).unwrap();
    assert!(md.contains("3 of 6 runs not finished"), "{md}");
    assert!(
        md.contains("| lambda-1 | 1 | 11.0 ± 1.414 (n = 2) |"),
        "{md}"
    );
    assert!(dir.path().join("pareto.png").is_file());
}

/// The `wae` binary for the Slurm test: WAE_BIN, or the dev build in the target folder.
fn wae_for_tests() -> PathBuf {
    if let Some(p) = std::env::var_os("WAE_BIN") {
        return PathBuf::from(p);
    }
    let exe = crate::workspace::target_dir()
        .join("debug")
        .join(format!("wae{}", std::env::consts::EXE_SUFFIX));
    if exe.is_file() {
        exe
    } else {
        build_wae(DeviceChoice::Cpu, false).expect("building wae")
    }
}

/// The array task of `job` that is running, and its run folder, once it is mid-training.
fn running_task_mid_training(out: &Path, job: &str) -> Option<(String, PathBuf)> {
    let tsv = fs::read_to_string(out.join("tasks.tsv")).unwrap();
    let lines: Vec<&str> = tsv.lines().collect();
    for line in slurm::queued(job).unwrap() {
        let mut parts = line.split_whitespace();
        let (id, state) = (parts.next()?, parts.next()?);
        if state != "RUNNING" {
            continue;
        }
        let index: usize = id.rsplit('_').next()?.parse().ok()?;
        let run = out.join(lines[index].split('\t').nth(4)?);
        // Mid-training: past step 50 of 320 (metrics.jsonl has a line every 10 steps).
        let metrics = fs::read_to_string(run.join("metrics.jsonl")).unwrap_or_default();
        let step = metrics
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["step"].as_u64())
            .max()
            .unwrap_or(0);
        if (50..250).contains(&step) && !run.join("eval.json").exists() {
            return Some((id.to_string(), run));
        }
    }
    None
}

/// Opt-in (WAE_SLURM_TESTS=1, with `scripts/slurm-local.sh start` running): a 2 x 2 sweep
/// run locally and as a Slurm job array with one array task requeued while it trains;
/// every run's eval numbers are the same.
#[test]
fn slurm_sweep_with_a_requeued_task_equals_the_local_one() {
    if std::env::var("WAE_SLURM_TESTS").as_deref() != Ok("1") {
        eprintln!(
            "skipped: set WAE_SLURM_TESTS=1 with a Slurm running (scripts/slurm-local.sh start) \
             to run the Slurm sweep test"
        );
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    // The smoke preset for 20 epochs (320 steps): long enough to requeue a task mid-run.
    let mut base = wae_train::preset("mnist-wae-mmd-smoke").unwrap();
    base.training.epochs = 20;
    base.training.log_every_steps = 10;
    base.training.checkpoint_every_steps = 40;
    let config = dir.path().join("base.toml");
    fs::write(&config, base.to_toml_string().unwrap()).unwrap();
    let wae = wae_for_tests();
    let mnist = wae_data::testing::mnist_dir();
    let line = |out: &Path, extra: &[&str]| {
        let mut l = vec![
            "--config",
            config.to_str().unwrap(),
            "--grid",
            "objective.lambda=1,10",
            "--seeds",
            "0,1",
            "--eval-n",
            "256",
            "--wae-bin",
            wae.to_str().unwrap(),
            "--data-dir",
            mnist.to_str().unwrap(),
        ];
        l.extend(["--out", out.to_str().unwrap()]);
        l.extend(extra.iter().copied());
        parse(&l)
    };
    let local_out = dir.path().join("local");
    // 2 at once with 1 thread each, as the Slurm tasks with --cpus-per-task 1.
    run(&line(&local_out, &["--jobs", "2"])).unwrap();
    let local_took = started.elapsed();

    let slurm_out = dir.path().join("slurm");
    run(&line(
        &slurm_out,
        &[
            "--executor",
            "slurm",
            "--no-wait",
            "--cpus-per-task",
            "1",
            "--mem",
            "1G",
            "--time",
            "00:15:00",
            "--poll-seconds",
            "1",
        ],
    ))
    .unwrap();
    let slurm_out = slurm_out.canonicalize().unwrap();
    let jobs = fs::read_to_string(slurm_out.join("slurm").join("jobs.txt")).unwrap();
    let job = jobs.split('\t').next().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(300);
    let (requeued, requeued_run) = loop {
        if let Some(found) = running_task_mid_training(&slurm_out, &job) {
            break found;
        }
        assert!(Instant::now() < deadline, "no task of job {job} ran");
        std::thread::sleep(Duration::from_millis(200));
    };
    let status = Command::new("scontrol")
        .args(["requeue", &requeued])
        .status()
        .unwrap();
    assert!(status.success(), "scontrol requeue {requeued}");
    eprintln!("requeued {requeued} ({})", requeued_run.display());
    slurm::wait(&job, Duration::from_secs(1)).unwrap();
    let report = collect(&slurm_out).unwrap();
    assert!(report.missing.is_empty(), "{:?}", report.missing);

    // The requeued task trained in two parts: it was stopped and resumed.
    let index = requeued.rsplit('_').next().unwrap();
    let log =
        fs::read_to_string(slurm_out.join("slurm").join(format!("{job}_{index}.out"))).unwrap();
    assert!(log.contains("train --resume"), "{log}");

    let numbers = |out: &Path| {
        let json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
        json["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["point"].clone(), p["runs"].clone()))
            .collect::<Vec<_>>()
    };
    let local = numbers(&local_out);
    assert_eq!(local.len(), 2);
    assert_eq!(local, numbers(&slurm_out), "Slurm and local runs differ");
    eprintln!(
        "Slurm sweep test: {:.0} s in all (local executor {:.0} s); requeued {requeued}, \
         its eval numbers equal the local run's",
        started.elapsed().as_secs_f64(),
        local_took.as_secs_f64()
    );
}

/// The committed sweep under `docs/results/` rebuilt from its run folders: `sweep.json`
/// and `sweep.md` made again from its `sweep.toml` and every run's `eval.json` equal the
/// committed files byte for byte.
#[test]
fn the_committed_sweep_rebuilds_byte_for_byte() {
    let dir = workspace_root().join("docs/results/mnist-wae-mmd-cpu-lambda");
    let spec: SweepSpec =
        toml::from_str(&fs::read_to_string(dir.join("sweep.toml")).unwrap()).expect("sweep.toml");
    let report = Report::collect(&dir, &tasks(&spec).unwrap()).unwrap();
    let json = report.json(&spec).unwrap();
    assert!(
        json == fs::read_to_string(dir.join("sweep.json")).unwrap(),
        "sweep.json differs:\n{json}"
    );
    let md = report.markdown(&spec);
    assert!(
        md == fs::read_to_string(dir.join("sweep.md")).unwrap(),
        "sweep.md differs:\n{md}"
    );
}
