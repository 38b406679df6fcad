//! What a sweep reports, from whatever runs have finished: `sweep.json`, `sweep.md` (mean ±
//! sd (n) over seeds per grid point) and `pareto.png` (reconstruction error against MMD to
//! the prior, the Pareto front marked).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use wae_train::evaluate::EvalReport;
use wae_viz::{LinePlot, YScale};

use super::grid::GridAxis;
use super::{SweepSpec, Task};
use crate::reproduce::report::{Stats, fmt_f64, fmt_stats};
use crate::reproduce::runner::{json_text, read_eval, write_atomic};

/// A number of `eval.json` a sweep compares: its key in sweep.json, where it is in the
/// report, and its label in sweep.md.
type Metric = (&'static str, fn(&EvalReport) -> Option<f64>, &'static str);

/// The numbers of `eval.json` a sweep compares.
const METRICS: &[Metric] = &[
    (
        "reconstruction_sq_l2",
        |e| Some(e.reconstruction_sq_l2),
        "test reconstruction error",
    ),
    (
        "mmd_codes_vs_prior",
        |e| Some(e.mmd_codes_vs_prior),
        "MMD^2 to the prior",
    ),
    ("fid_mnist", |e| Some(e.classifier?.fid), "FID-MNIST"),
    (
        "fid_inception",
        |e| Some(e.inception?.fid),
        "FID (Inception)",
    ),
];

/// Everything `sweep.json` holds.
#[derive(Debug, Serialize)]
struct SweepFile<'a> {
    /// `preset NAME` or `config FILE`.
    base: &'a str,
    /// The axes.
    grid: &'a [GridAxis],
    /// The seeds.
    seeds: &'a [u64],
    /// `wae train --max-steps`.
    max_steps: Option<u64>,
    /// `wae eval --n`.
    eval_n: usize,
    /// `--device`.
    device: &'a str,
    /// Runs in all.
    runs_total: usize,
    /// `<point> seed <s>` of every run not finished.
    runs_missing: &'a [String],
    /// One entry per grid point, in grid order.
    points: Vec<PointEntry<'a>>,
}

/// One grid point in `sweep.json`.
#[derive(Debug, Serialize)]
struct PointEntry<'a> {
    /// The folder name.
    point: &'a str,
    /// Axis key -> value.
    values: BTreeMap<&'a str, &'a str>,
    /// Whether it is on the Pareto front.
    pareto: bool,
    /// Metric key -> its statistics over seeds (the metrics some seed gave).
    metrics: BTreeMap<&'static str, Stats>,
    /// Seed -> metric key -> value.
    runs: BTreeMap<String, &'a BTreeMap<&'static str, f64>>,
}

/// One grid point's finished runs: seed -> the numbers of its `eval.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct PointRuns {
    /// The folder name.
    pub name: String,
    /// `(key, value)` per axis.
    pub values: Vec<(String, String)>,
    /// Seed -> metric key -> value.
    pub runs: BTreeMap<u64, BTreeMap<&'static str, f64>>,
}

impl PointRuns {
    /// Mean, sd and n over seeds of one metric.
    pub fn stats(&self, metric: &str) -> Option<Stats> {
        let xs: Vec<f64> = self
            .runs
            .values()
            .filter_map(|m| m.get(metric).copied())
            .collect();
        Stats::of(&xs)
    }
}

/// Which of `points` (x, y), both to be minimised, no other point dominates (as small or
/// smaller in both, smaller in one). Non-finite points are never on the front.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<bool> {
    points
        .iter()
        .map(|&(x, y)| {
            x.is_finite()
                && y.is_finite()
                && !points.iter().any(|&(ox, oy)| {
                    ox.is_finite() && oy.is_finite() && ox <= x && oy <= y && (ox < x || oy < y)
                })
        })
        .collect()
}

/// The report of a sweep: the points with their finished runs, and the runs not finished.
#[derive(Debug, Clone)]
pub struct Report {
    /// One entry per grid point, in grid order.
    pub points: Vec<PointRuns>,
    /// `<point> seed <s>` of every run without `done.json` and `eval.json`.
    pub missing: Vec<String>,
    /// Runs in all.
    pub total: usize,
}

impl Report {
    /// Reads every task's run directory under `out`.
    pub fn collect(out: &Path, tasks: &[Task]) -> Result<Self> {
        let mut points: Vec<PointRuns> = Vec::new();
        let mut missing = Vec::new();
        for task in tasks {
            if points.last().is_none_or(|p| p.name != task.point.name) {
                points.push(PointRuns {
                    name: task.point.name.clone(),
                    values: task.point.values.clone(),
                    runs: BTreeMap::new(),
                });
            }
            let dir = out.join(&task.paths.run);
            let run = wae_train::RunDir::new(&dir);
            let eval_path = run.eval();
            if !(run.done().is_file() && eval_path.is_file()) {
                missing.push(format!("{} seed {}", task.point.name, task.seed));
                continue;
            }
            let eval = read_eval(&eval_path)?;
            let mut numbers: BTreeMap<&'static str, f64> = METRICS
                .iter()
                .filter_map(|(key, metric, _)| Some((*key, metric(&eval)?)))
                .collect();
            numbers.insert("step", eval.step as f64);
            points
                .last_mut()
                .expect("pushed above")
                .runs
                .insert(task.seed, numbers);
        }
        Ok(Self {
            points,
            missing,
            total: tasks.len(),
        })
    }

    /// The Pareto front of the points' means (reconstruction error, MMD).
    pub fn front(&self) -> Vec<bool> {
        let xy: Vec<(f64, f64)> = self
            .points
            .iter()
            .map(|p| {
                let m = |k| p.stats(k).map_or(f64::NAN, |s| s.mean);
                (m("mmd_codes_vs_prior"), m("reconstruction_sq_l2"))
            })
            .collect();
        pareto_front(&xy)
    }

    /// What `sweep.json` holds.
    fn file<'a>(&'a self, spec: &'a SweepSpec) -> SweepFile<'a> {
        let points = self
            .points
            .iter()
            .zip(self.front())
            .map(|(p, pareto)| PointEntry {
                point: &p.name,
                values: p
                    .values
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
                pareto,
                metrics: METRICS
                    .iter()
                    .filter_map(|(key, _, _)| Some((*key, p.stats(key)?)))
                    .collect(),
                runs: p
                    .runs
                    .iter()
                    .map(|(seed, numbers)| (seed.to_string(), numbers))
                    .collect(),
            })
            .collect();
        SweepFile {
            base: &spec.base,
            grid: &spec.grid,
            seeds: &spec.seeds,
            max_steps: spec.max_steps,
            eval_n: spec.eval_n,
            device: &spec.device,
            runs_total: self.total,
            runs_missing: &self.missing,
            points,
        }
    }

    /// `sweep.json`.
    pub fn json(&self, spec: &SweepSpec) -> Result<String> {
        json_text(&self.file(spec))
    }

    /// `sweep.md`.
    pub fn markdown(&self, spec: &SweepSpec) -> String {
        let front = self.front();
        let several = spec.seeds.len() > 1;
        let mut s = format!("# Sweep of {}\n\n", spec.base);
        s.push_str(&format!(
            "Seeds {}; {}; `wae eval --n {}` on {}. Each cell: mean ± sd (n = seeds) over \
             seeds. Pareto: no other point has both a lower mean reconstruction error and a \
             lower mean MMD.\n\n",
            spec.seeds
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            spec.max_steps
                .map_or("the config's epochs".to_string(), |n| format!(
                    "at most {n} steps"
                )),
            spec.eval_n,
            spec.device
        ));
        if !self.missing.is_empty() {
            s.push_str(&format!(
                "**{} of {} runs not finished** (left out): {}\n\n",
                self.missing.len(),
                self.total,
                self.missing.join(", ")
            ));
        }
        let shown: Vec<&Metric> = METRICS
            .iter()
            .filter(|(k, _, _)| self.points.iter().any(|p| p.stats(k).is_some()))
            .collect();
        s.push_str("| point |");
        for a in &spec.grid {
            s.push_str(&format!(" `{}` |", a.key));
        }
        for (_, _, label) in &shown {
            s.push_str(&format!(" {label} |"));
        }
        s.push_str(" Pareto |\n|---|");
        s.push_str(&"---|".repeat(spec.grid.len() + shown.len() + 1));
        s.push('\n');
        for (p, on_front) in self.points.iter().zip(&front) {
            s.push_str(&format!("| {} |", p.name));
            for (_, v) in &p.values {
                s.push_str(&format!(" {v} |"));
            }
            for (key, _, _) in &shown {
                s.push_str(&format!(" {} |", fmt_stats(p.stats(key), several, fmt_f64)));
            }
            s.push_str(if *on_front { " yes |\n" } else { " |\n" });
        }
        s.push_str("\n![reconstruction error against MMD to the prior](pareto.png)\n");
        s
    }

    /// `pareto.png`: each point's mean (a cross of ± sd over seeds where there are several),
    /// the Pareto front as a line, as PNG bytes. `None` when no point has both numbers.
    pub fn pareto_png(&self) -> Result<Option<Vec<u8>>> {
        let means: Vec<Option<(Stats, Stats)>> = self
            .points
            .iter()
            .map(|p| {
                Some((
                    p.stats("mmd_codes_vs_prior")?,
                    p.stats("reconstruction_sq_l2")?,
                ))
            })
            .collect();
        let present: Vec<&(Stats, Stats)> = means.iter().flatten().collect();
        if present.is_empty() {
            return Ok(None);
        }
        // The span of the data with its error bars, for the size of the marks.
        let span = |part: &dyn Fn(&(Stats, Stats)) -> Stats| {
            let lo = present
                .iter()
                .map(|s| {
                    let p = part(s);
                    p.mean - p.sd.unwrap_or(0.0)
                })
                .fold(f64::INFINITY, f64::min);
            let hi = present
                .iter()
                .map(|s| {
                    let p = part(s);
                    p.mean + p.sd.unwrap_or(0.0)
                })
                .fold(f64::NEG_INFINITY, f64::max);
            if hi > lo {
                hi - lo
            } else {
                lo.abs().max(1e-12)
            }
        };
        // A cross's arm where there is no sd: 1.5% of that span.
        let dx = 0.015 * span(&|s| s.0);
        let dy = 0.015 * span(&|s| s.1);
        let mut crosses = Vec::new();
        for (x, y) in present.iter().copied() {
            let sx = x.sd.filter(|sd| *sd > dx).unwrap_or(dx);
            let sy = y.sd.filter(|sd| *sd > dy).unwrap_or(dy);
            let nan = (f64::NAN, f64::NAN);
            crosses.extend([
                (x.mean - sx, y.mean),
                (x.mean + sx, y.mean),
                nan,
                (x.mean, y.mean - sy),
                (x.mean, y.mean + sy),
                nan,
            ]);
        }
        let mut front: Vec<(f64, f64)> = means
            .iter()
            .zip(self.front())
            .filter_map(|(m, on)| m.filter(|_| on).map(|(x, y)| (x.mean, y.mean)))
            .collect();
        front.sort_by(|a, b| a.0.total_cmp(&b.0));
        // The front's line, then a square around each of its points.
        let mut front_marks = front.clone();
        for &(x, y) in &front {
            let (sx, sy) = (dx, dy);
            front_marks.extend([
                (f64::NAN, f64::NAN),
                (x - sx, y - sy),
                (x + sx, y - sy),
                (x + sx, y + sy),
                (x - sx, y + sy),
                (x - sx, y - sy),
            ]);
        }
        let mut plot = LinePlot::new(
            "reconstruction error (y) vs MMD^2 to the prior",
            "MMD^2 to the prior (mean +- sd over seeds)",
        )
        .with_series("grid points", crosses)
        .with_series("Pareto front", front_marks);
        plot.y_scale = YScale::Linear;
        plot.width = 560;
        plot.height = 400;
        Ok(Some(wae_viz::png_bytes(&plot.render()?)?))
    }

    /// Writes `sweep.json`, `sweep.md` and `pareto.png` into `out`.
    pub fn write(&self, out: &Path, spec: &SweepSpec) -> Result<()> {
        write_atomic(&out.join("sweep.json"), &self.json(spec)?)?;
        write_atomic(&out.join("sweep.md"), &self.markdown(spec))?;
        if let Some(png) = self.pareto_png()? {
            let path = out.join("pareto.png");
            wae_io::write_atomic(&path, &png)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pareto_front_keeps_the_undominated_points() {
        let pts = [
            (1.0, 5.0), // front: least MMD
            (2.0, 3.0), // front
            (3.0, 3.0), // dominated by (2, 3)
            (4.0, 1.0), // front: least error
            (5.0, 2.0), // dominated by (4, 1)
            (f64::NAN, 0.0),
            (2.0, 3.0), // a tie with a front point is on the front too
        ];
        assert_eq!(
            pareto_front(&pts),
            vec![true, true, false, true, false, false, true]
        );
        assert_eq!(pareto_front(&[]), Vec::<bool>::new());
    }
}
