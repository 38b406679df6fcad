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
    /// GFLOP of the products of one training step (our step workers).
    pub product_gflop_per_step: Option<f64>,
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

/// `v` with `prec` decimals, `-` when there is none: a table cell.
fn opt(v: Option<f64>, prec: usize) -> String {
    match v {
        Some(x) => format!("{x:.prec$}"),
        None => "-".to_string(),
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

/// The name of the f32 GEMM row, whose rate [`gemm_peak_gflops`] reads.
pub(super) const GEMM_ROW: &str = "sgemm_f32";

/// The best f32 GEMM rate of a run in GFLOP/s: the faster side of the `sgemm_f32` row
/// (`batch` = n, an "image" = one n x n by n x n product of 2 n^3 FLOP), or `None`
/// without that row.
pub(super) fn gemm_peak_gflops(rows: &[Row]) -> Option<f64> {
    let row = rows.iter().find(|r| r.name == GEMM_ROW)?;
    let flop = 2.0 * (row.batch as f64).powi(3);
    best(
        [row.ours_images_per_s, row.peer_images_per_s]
            .into_iter()
            .flatten(),
    )
    .map(|products_per_s| products_per_s * flop / 1e9)
}

/// One row of `roofline.json`: a training row's products against the machine's GEMM rate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(super) struct RooflineRow {
    pub name: String,
    pub width_div: Option<usize>,
    pub batch: usize,
    /// GFLOP of products per image (forward and gradients; both sides run the same
    /// network, so the same count).
    pub gflop_per_image: f64,
    /// Products done per second at each side's best images/s.
    pub ours_gflops: Option<f64>,
    pub peer_gflops: Option<f64>,
    /// The run's best f32 GEMM rate ([`gemm_peak_gflops`]).
    pub gemm_gflops: f64,
    /// `ours_gflops / gemm_gflops`, `peer_gflops / gemm_gflops`.
    pub ours_share: Option<f64>,
    pub peer_share: Option<f64>,
    /// The share of the GEMM rate a step 1.5x the peer's would have to reach:
    /// `1.5 * peer_share`. A step cannot beat the rate its products reach alone on their
    /// own shapes (0.8-0.95 of the square product's on the MNIST networks, by
    /// `wae-kernels`' `gemm_rate` example), and everything else in it (BatchNorm, im2col,
    /// the loss, Adam: memory-bound work) only lowers the share.
    pub share_for_1_5x: Option<f64>,
}

/// The roofline rows: every row whose own runs counted their products
/// (`product_gflop_per_step`), set against `gemm_gflops`.
pub(super) fn roofline(
    rows: &[Row],
    ours: &[&[Measurement]],
    gemm_gflops: f64,
) -> Vec<RooflineRow> {
    rows.iter()
        .zip(ours)
        .filter_map(|(row, runs)| {
            let per_step = runs.iter().find_map(|m| m.product_gflop_per_step)?;
            let gflop_per_image = per_step / row.batch.max(1) as f64;
            let rate = |ips: Option<f64>| ips.map(|v| v * gflop_per_image);
            let share = |r: Option<f64>| r.map(|v| v / gemm_gflops);
            let (ours_gflops, peer_gflops) =
                (rate(row.ours_images_per_s), rate(row.peer_images_per_s));
            Some(RooflineRow {
                name: row.name.clone(),
                width_div: row.width_div,
                batch: row.batch,
                gflop_per_image,
                ours_gflops,
                peer_gflops,
                gemm_gflops,
                ours_share: share(ours_gflops),
                peer_share: share(peer_gflops),
                share_for_1_5x: share(peer_gflops).map(|s| 1.5 * s),
            })
        })
        .collect()
}

/// The roofline table, as printed.
pub(super) fn roofline_table(rows: &[RooflineRow]) -> String {
    let pct = |v: Option<f64>| match v {
        Some(x) => format!("{:.0}%", 100.0 * x),
        None => "-".to_string(),
    };
    let mut out = format!(
        "\nproducts against the best f32 GEMM rate of this run ({:.0} GFLOP/s):\n\
         | name | width_div | batch | GFLOP / image | ours GFLOP/s | PyTorch GFLOP/s | ours, share of GEMM rate | PyTorch, share | 1.5x PyTorch needs |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        rows.first().map_or(f64::NAN, |r| r.gemm_gflops)
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {:.3} | {} | {} | {} | {} | {} |\n",
            r.name,
            opt(r.width_div.map(|w| w as f64), 0),
            r.batch,
            r.gflop_per_image,
            opt(r.ours_gflops, 0),
            opt(r.peer_gflops, 0),
            pct(r.ours_share),
            pct(r.peer_share),
            pct(r.share_for_1_5x),
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
/// convolution, BatchNorm, linear; their own counters) is listed; "other" is the rest of
/// the pass: candle's own ops (ReLU, sigmoid, reconstruction loss, MMD) and, in the
/// backward pass, candle's autograd bookkeeping (gradient accumulation).
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

    /// The roofline takes the GEMM rate from the faster side of the `sgemm_f32` row and
    /// sets each training row's products (from our runs' count) against it.
    #[test]
    fn roofline_rows_set_the_products_against_the_gemm_rate() -> Result<()> {
        let step_ours = [
            run(r#"{"images_per_s":400.0,"product_gflop_per_step":30.0}"#),
            run(r#"{"images_per_s":500.0,"product_gflop_per_step":30.0}"#),
        ];
        let step_peer = [run(r#"{"images_per_s":250.0}"#)];
        // 2 * 1000^3 FLOP a product: 100 and 150 products/s are 200 and 300 GFLOP/s.
        let gemm_ours = [run(r#"{"images_per_s":100.0}"#)];
        let gemm_peer = [run(r#"{"images_per_s":150.0}"#)];
        let mmd = [run(r#"{"images_per_s":9.0}"#)];
        let rows = [
            summarise("train_step", Some(4), 100, &step_ours, &step_peer),
            summarise("mmd_imq_d8", None, 100, &mmd, &[]),
            summarise(GEMM_ROW, None, 1000, &gemm_ours, &gemm_peer),
        ];
        let gemm = gemm_peak_gflops(&rows).context("no GEMM rate")?;
        assert!((gemm - 300.0).abs() < 1e-9, "{gemm}");
        assert_eq!(gemm_peak_gflops(&rows[..2]), None);
        let ours: Vec<&[Measurement]> = vec![&step_ours, &mmd, &gemm_ours];
        let roof = roofline(&rows, &ours, gemm);
        // Only the row whose runs counted products; 0.3 GFLOP an image at the best
        // images/s of each side: 150 and 75 GFLOP/s, half and a quarter of 300.
        assert_eq!(roof.len(), 1);
        let r = &roof[0];
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
        assert!((r.gflop_per_image - 0.3).abs() < 1e-12);
        assert!(
            close(r.ours_gflops, 150.0) && close(r.peer_gflops, 75.0),
            "{r:?}"
        );
        assert!(
            close(r.ours_share, 0.5) && close(r.peer_share, 0.25),
            "{r:?}"
        );
        assert!(close(r.share_for_1_5x, 0.375), "{r:?}");
        assert_eq!(
            roofline_table(&roof),
            "\nproducts against the best f32 GEMM rate of this run (300 GFLOP/s):\n\
             | name | width_div | batch | GFLOP / image | ours GFLOP/s | PyTorch GFLOP/s | ours, share of GEMM rate | PyTorch, share | 1.5x PyTorch needs |\n\
             |---|---|---|---|---|---|---|---|---|\n\
             | train_step | 4 | 100 | 0.300 | 150 | 75 | 50% | 25% | 38% |\n"
        );
        // Without a peer the shares of its side are blank.
        let alone = [summarise("train_step", Some(1), 100, &step_ours, &[])];
        let roof = roofline(&alone, &[&step_ours], gemm);
        assert_eq!((roof[0].peer_gflops, roof[0].share_for_1_5x), (None, None));
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
