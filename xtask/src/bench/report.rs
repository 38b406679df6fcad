//! What `cargo xtask bench` reads back and writes out: one run of either side
//! ([`Measurement`]), the comparison rows of `bench.json` ([`Row`]) and their table, and
//! the per-op profile of `profile.json` ([`Profile`]).

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One timed run, ours or the peer's, as the report reads it back: the JSON line our
/// worker prints last, or the merged JSON lines of a PyTorch script. Other keys the
/// scripts print are ignored.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub(super) struct Measurement {
    /// Images (MMD: codes) per second.
    pub images_per_s: Option<f64>,
    /// Peak resident set size of the whole process, kB.
    pub peak_rss_kb: Option<f64>,
    /// Threads the run used.
    pub threads: Option<usize>,
    /// What ran (`wae (candle + wae-kernels)`, `pytorch`, ...).
    pub framework: Option<String>,
    /// The torch version (peer only).
    pub torch: Option<String>,
    /// The fastest step in milliseconds (the MMD scripts).
    pub best_ms: Option<f64>,
}

impl Measurement {
    fn images_per_s(&self) -> f64 {
        self.images_per_s.unwrap_or(f64::NAN)
    }

    fn peak_rss_kb(&self) -> f64 {
        self.peak_rss_kb.unwrap_or(f64::NAN)
    }
}

/// One row of `bench.json`: the best of the rounds on each side and their ratios.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(super) struct Row {
    pub name: String,
    pub width_div: Option<usize>,
    pub batch: usize,
    pub ours_images_per_s: Option<f64>,
    pub peer_images_per_s: Option<f64>,
    /// Best against best.
    pub ratio: Option<f64>,
    /// Each round's ratio, ours over the peer's run right after it (rounds where both
    /// sides measured): the two runs of a pair see the same machine speed, so their
    /// spread shows how far one round can be trusted.
    pub round_ratios: Vec<f64>,
    pub ours_peak_rss_mb: Option<f64>,
    pub peer_peak_rss_mb: Option<f64>,
    pub rss_ratio: Option<f64>,
    pub ours_runs_images_per_s: Vec<f64>,
    pub peer_runs_images_per_s: Vec<f64>,
    /// The peer's torch version.
    pub peer: Option<String>,
    pub peer_framework: Option<String>,
    /// Our worker's threads.
    pub threads: Option<usize>,
}

fn best(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.filter(|v| v.is_finite()).reduce(f64::max)
}

fn lowest(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.filter(|v| v.is_finite()).reduce(f64::min)
}

/// One row of bench.json.
pub(super) fn summarise(
    name: &str,
    wd: Option<usize>,
    batch: usize,
    ours: &[Measurement],
    theirs: &[Measurement],
) -> Row {
    let ours_ips = best(ours.iter().map(Measurement::images_per_s));
    let peer_ips = best(theirs.iter().map(Measurement::images_per_s));
    let ours_rss = lowest(ours.iter().map(Measurement::peak_rss_kb)).map(|kb| kb / 1024.0);
    let peer_rss = lowest(theirs.iter().map(Measurement::peak_rss_kb)).map(|kb| kb / 1024.0);
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let all =
        |runs: &[Measurement]| -> Vec<f64> { runs.iter().map(Measurement::images_per_s).collect() };
    let round_ratios = ours
        .iter()
        .zip(theirs)
        .filter_map(|(a, b)| ratio(Some(a.images_per_s()), Some(b.images_per_s())))
        .filter(|r| r.is_finite())
        .collect();
    Row {
        name: name.to_string(),
        width_div: wd,
        batch,
        ours_images_per_s: ours_ips,
        peer_images_per_s: peer_ips,
        ratio: ratio(ours_ips, peer_ips),
        round_ratios,
        ours_peak_rss_mb: ours_rss,
        peer_peak_rss_mb: peer_rss,
        rss_ratio: ratio(ours_rss, peer_rss),
        ours_runs_images_per_s: all(ours),
        peer_runs_images_per_s: all(theirs),
        peer: theirs.first().and_then(|r| r.torch.clone()),
        peer_framework: theirs.first().and_then(|r| r.framework.clone()),
        threads: ours.first().and_then(|r| r.threads),
    }
}

/// `median (lowest-highest)` of the per-round ratios, `-` when there are none.
fn spread(values: &[f64]) -> String {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return "-".to_string();
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    format!("{median:.2} ({:.2}-{:.2})", v[0], v[n - 1])
}

/// The comparison table, as printed (a leading empty line, a header, a row per case).
pub(super) fn table(rows: &[Row]) -> String {
    let opt = |v: Option<f64>, prec: usize| match v {
        Some(x) => format!("{x:.prec$}"),
        None => "-".to_string(),
    };
    let mut out = String::from(
        "\n| name | width_div | batch | ours img/s | PyTorch img/s | ratio | round ratios, median (range) | ours peak RSS MB | PyTorch peak RSS MB | RSS ratio |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.name,
            opt(r.width_div.map(|w| w as f64), 0),
            r.batch,
            opt(r.ours_images_per_s, 1),
            opt(r.peer_images_per_s, 1),
            opt(r.ratio, 2),
            spread(&r.round_ratios),
            opt(r.ours_peak_rss_mb, 0),
            opt(r.peer_peak_rss_mb, 0),
            opt(r.rss_ratio, 2),
        ));
    }
    out
}

/// Kernel time of one op kind in one phase of the profiled step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct KernelTime {
    pub op: String,
    pub seconds: f64,
    pub calls: u64,
}

/// The forward or backward pass of the profiled step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Pass {
    pub seconds: f64,
    /// Time inside each wae-kernels op.
    pub kernels: Vec<KernelTime>,
    /// The rest of the pass: candle's own ops (and autograd, backward).
    pub other_seconds: f64,
}

/// The optimiser phase of the profiled step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct OptimizerTime {
    pub seconds: f64,
}

/// The fastest profiled step of one width: an element of `profile.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Profile {
    pub width_div: usize,
    pub batch: usize,
    pub threads: usize,
    pub loss: f32,
    pub step_seconds: f64,
    pub forward: Pass,
    pub backward: Pass,
    pub optimizer: OptimizerTime,
}

/// One width's profile: milliseconds per op kind in each phase.
///
/// What it measures: wall time of one training step (the fastest of three after
/// warm-up), split into the forward pass (noise draw, encoder, decoder, loss and MMD),
/// the backward pass (`loss.backward()`, all gradients) and the Adam update. Within the
/// two passes, the time inside each wae-kernels op (convolution, transposed
/// convolution, BatchNorm; their own counters) is listed; "other" is the rest of the
/// pass: candle's own ops (linear layers, ReLU, sigmoid, reconstruction loss, MMD) and,
/// in the backward pass, candle's autograd bookkeeping (gradient accumulation).
pub(super) fn profile_table(p: &Profile) -> String {
    let ms = |seconds: f64| seconds * 1e3;
    let step = ms(p.step_seconds);
    let mut out = format!(
        "\nprofile: width_div {} batch {} ({} threads), one step {step:.1} ms\n\
         | phase | op | ms | calls | share of step |\n\
         |---|---|---|---|---|\n",
        p.width_div, p.batch, p.threads,
    );
    for (phase, pass) in [("forward", &p.forward), ("backward", &p.backward)] {
        for r in &pass.kernels {
            let t = ms(r.seconds);
            out.push_str(&format!(
                "| {phase} | {} | {t:.1} | {} | {:.0}% |\n",
                r.op,
                r.calls,
                100.0 * t / step
            ));
        }
        let other = ms(pass.other_seconds);
        out.push_str(&format!(
            "| {phase} | other (candle ops{}) | {other:.1} | | {:.0}% |\n",
            if phase == "backward" {
                ", autograd"
            } else {
                ""
            },
            100.0 * other / step
        ));
        out.push_str(&format!(
            "| {phase} | **total** | {:.1} | | {:.0}% |\n",
            ms(pass.seconds),
            100.0 * ms(pass.seconds) / step
        ));
    }
    let opt = ms(p.optimizer.seconds);
    out.push_str(&format!(
        "| optimizer | Adam (wae-train) | {opt:.1} | | {:.0}% |\n",
        100.0 * opt / step
    ));
    out
}

/// Writes `value` as pretty JSON with a final newline, atomically. The keys of every
/// object come out sorted (through `serde_json::Value`, whose maps are ordered), as
/// `bench.json` and `profile.json` have always had them.
pub(super) fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let value = serde_json::to_value(value)?;
    let mut text = serde_json::to_vec_pretty(&value)?;
    text.push(b'\n');
    wae_io::write_atomic(path, &text).with_context(|| format!("writing {}", path.display()))
}

/// `model name, N cores` of this machine.
pub(super) fn machine_line() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("machine: {cpu}, {cores} cores available; our worker threads: rayon default ({cores})")
}

/// The 1, 5 and 15 minute load averages, or `?`.
pub(super) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(json: &str) -> Measurement {
        serde_json::from_str(json).unwrap()
    }

    /// `bench.json` and the printed table keep the format they had when the rows were
    /// `json!` maps: sorted keys, nulls for what one side lacks, `-` in the table.
    #[test]
    fn rows_keep_the_bench_json_schema_and_the_table() -> Result<()> {
        // Our worker's line and a peer's (ints where Python prints them, extra keys).
        let ours = [
            run(
                r#"{"framework":"wae","images_per_s":101.25,"peak_rss_kb":204800.0,"threads":2,"loss":0.5}"#,
            ),
            run(r#"{"images_per_s":120.5,"peak_rss_kb":200000.0,"threads":2}"#),
            run(r#"{"peak_rss_kb":1.0}"#),
        ];
        let theirs = [
            run(
                r#"{"framework":"pytorch","images_per_s":90.0,"peak_rss_kb":300000,"threads":2,"torch":"2.1","channels_last":false}"#,
            ),
            run(r#"{"images_per_s":95.5,"peak_rss_kb":310000,"torch":"2.1"}"#),
        ];
        let rows = [
            summarise("train_step", Some(4), 100, &ours[..2], &theirs),
            summarise("mmd_imq_d8", None, 100, &ours[2..], &[]),
        ];
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("bench.json");
        write_json(&path, &rows)?;
        let expected = r#"[
  {
    "batch": 100,
    "name": "train_step",
    "ours_images_per_s": 120.5,
    "ours_peak_rss_mb": 195.3125,
    "ours_runs_images_per_s": [
      101.25,
      120.5
    ],
    "peer": "2.1",
    "peer_framework": "pytorch",
    "peer_images_per_s": 95.5,
    "peer_peak_rss_mb": 292.96875,
    "peer_runs_images_per_s": [
      90.0,
      95.5
    ],
    "ratio": 1.2617801047120418,
    "round_ratios": [
      1.125,
      1.2617801047120418
    ],
    "rss_ratio": 0.6666666666666666,
    "threads": 2,
    "width_div": 4
  },
  {
    "batch": 100,
    "name": "mmd_imq_d8",
    "ours_images_per_s": null,
    "ours_peak_rss_mb": 0.0009765625,
    "ours_runs_images_per_s": [
      null
    ],
    "peer": null,
    "peer_framework": null,
    "peer_images_per_s": null,
    "peer_peak_rss_mb": null,
    "peer_runs_images_per_s": [],
    "ratio": null,
    "round_ratios": [],
    "rss_ratio": null,
    "threads": null,
    "width_div": null
  }
]
"#;
        assert_eq!(std::fs::read_to_string(&path)?, expected);
        assert_eq!(
            table(&rows),
            "\n| name | width_div | batch | ours img/s | PyTorch img/s | ratio | round ratios, median (range) | ours peak RSS MB | PyTorch peak RSS MB | RSS ratio |\n\
             |---|---|---|---|---|---|---|---|---|---|\n\
             | train_step | 4 | 100 | 120.5 | 95.5 | 1.26 | 1.19 (1.12-1.26) | 195 | 293 | 0.67 |\n\
             | mmd_imq_d8 | - | 100 | - | - | - | - | 0 | - | - |\n"
        );
        // Odd counts take the middle value; NaN rounds are left out.
        assert_eq!(spread(&[1.3, f64::NAN, 1.1, 1.2]), "1.20 (1.10-1.30)");
        assert_eq!(spread(&[]), "-");
        Ok(())
    }

    #[test]
    fn a_profile_reads_back_and_prints_per_phase() -> Result<()> {
        let line = r#"{"width_div":4,"batch":100,"threads":2,"loss":0.25,"step_seconds":0.1,
            "forward":{"seconds":0.04,"kernels":[{"op":"conv2d","seconds":0.01,"calls":3}],"other_seconds":0.03},
            "backward":{"seconds":0.05,"kernels":[{"op":"conv_transpose2d","seconds":0.02,"calls":4}],"other_seconds":0.03},
            "optimizer":{"seconds":0.01}}"#;
        let profile: Profile = serde_json::from_str(line)?;
        assert_eq!(
            profile_table(&profile),
            "\nprofile: width_div 4 batch 100 (2 threads), one step 100.0 ms\n\
             | phase | op | ms | calls | share of step |\n\
             |---|---|---|---|---|\n\
             | forward | conv2d | 10.0 | 3 | 10% |\n\
             | forward | other (candle ops) | 30.0 | | 30% |\n\
             | forward | **total** | 40.0 | | 40% |\n\
             | backward | conv_transpose2d | 20.0 | 4 | 20% |\n\
             | backward | other (candle ops, autograd) | 30.0 | | 30% |\n\
             | backward | **total** | 50.0 | | 50% |\n\
             | optimizer | Adam (wae-train) | 10.0 | | 10% |\n"
        );
        // profile.json is the same record, keys sorted.
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("profile.json");
        write_json(&path, &[&profile])?;
        let back: Vec<Profile> = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        assert_eq!(back, [profile]);
        Ok(())
    }
}
