//! Line plots (loss curves) and scatter plots (latent codes), drawn with the
//! bitmap font of [`crate::canvas`]: axes, tick labels, a title and a legend,
//! no system fonts.

use image::RgbImage;

use crate::canvas::{BLACK, Canvas, GLYPH_SIZE, GREY, LIGHT_GREY, WHITE, palette_colour};
use crate::{Error, Result};

const MARGIN_LEFT: i64 = 72;
const MARGIN_RIGHT: i64 = 12;
const MARGIN_TOP: i64 = 26;
const MARGIN_BOTTOM: i64 = 36;
const LEGEND_WIDTH: i64 = 44;

/// How values are mapped onto the vertical axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum YScale {
    /// Linear.
    Linear,
    /// Base-10 logarithmic (non-positive values are left out).
    Log,
    /// Logarithmic when every value is positive and they span more than a
    /// factor of 30, otherwise linear.
    #[default]
    Auto,
}

/// One named curve of a [`LinePlot`].
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Shown in the legend (when the plot has more than one series).
    pub name: String,
    /// `(x, y)` points in drawing order; non-finite points break the line.
    pub points: Vec<(f64, f64)>,
}

/// A plot of one or more curves against a common x axis.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePlot {
    /// Drawn above the plot.
    pub title: String,
    /// Drawn under the x axis.
    pub x_label: String,
    /// The curves, coloured by the palette in order.
    pub series: Vec<Series>,
    /// Vertical scale.
    pub y_scale: YScale,
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
}

impl LinePlot {
    /// An empty 480x300 plot with a title and an x label.
    pub fn new(title: impl Into<String>, x_label: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            series: Vec::new(),
            y_scale: YScale::Auto,
            width: 480,
            height: 300,
        }
    }

    /// Adds a curve.
    pub fn with_series(mut self, name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        self.series.push(Series {
            name: name.into(),
            points,
        });
        self
    }

    /// Whether the y axis will be logarithmic.
    pub fn uses_log_scale(&self) -> bool {
        let ys = || {
            self.series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .filter(|y| y.is_finite())
        };
        match self.y_scale {
            YScale::Linear => false,
            YScale::Log => true,
            YScale::Auto => {
                let min = ys().fold(f64::INFINITY, f64::min);
                let max = ys().fold(f64::NEG_INFINITY, f64::max);
                min > 0.0 && max / min > 30.0
            }
        }
    }

    /// Draws the plot. Fails when no series has a finite point (usable on the
    /// chosen scale).
    pub fn render(&self) -> Result<RgbImage> {
        let log = self.uses_log_scale();
        let map_y = |y: f64| if log { y.log10() } else { y };
        let usable = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite() && (!log || p.1 > 0.0);
        let pts = || {
            self.series
                .iter()
                .flat_map(|s| s.points.iter().filter(|p| usable(p)))
        };
        if pts().next().is_none() {
            return Err(Error::InvalidInput(format!(
                "plot `{}`: no finite point to draw",
                self.title
            )));
        }
        let x_range = padded_range(pts().map(|p| p.0), 0.0);
        let y_range = padded_range(pts().map(|p| map_y(p.1)), 0.05);
        let legend = self.series.len() > 1;
        let mut frame = Frame::new(self.width, self.height, x_range, y_range, false);
        frame.draw_axes(log, &self.title, &self.x_label);
        for (i, s) in self.series.iter().enumerate() {
            let colour = palette_colour(i);
            let mut previous: Option<(i64, i64)> = None;
            for p in &s.points {
                if !usable(p) {
                    previous = None;
                    continue;
                }
                let here = frame.to_pixel(p.0, map_y(p.1));
                match previous {
                    Some(a) => frame.canvas.line(a.0, a.1, here.0, here.1, colour, 2),
                    None => frame.canvas.fill_rect(here.0 - 1, here.1 - 1, 2, 2, colour),
                }
                previous = Some(here);
            }
        }
        if legend {
            let x = frame.right
                - 8
                - self
                    .series
                    .iter()
                    .map(|s| Canvas::text_width(&s.name, 1))
                    .max()
                    .unwrap_or(0)
                - 14;
            for (i, s) in self.series.iter().enumerate() {
                let y = frame.top + 6 + i as i64 * 12;
                frame.canvas.fill_rect(x, y, 10, 8, palette_colour(i));
                frame.canvas.text(x + 14, y, &s.name, BLACK, 1);
            }
        }
        Ok(frame.canvas.into_image())
    }
}

/// One point of a [`ScatterPlot`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScatterPoint {
    /// Horizontal position.
    pub x: f64,
    /// Vertical position.
    pub y: f64,
    /// Colour class (e.g. the digit); `None` draws the point grey.
    pub class: Option<usize>,
}

/// Points coloured by class, with a legend of the classes present.
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterPlot {
    /// Drawn above the plot.
    pub title: String,
    /// The points, drawn in order.
    pub points: Vec<ScatterPoint>,
    /// Horizontal range; `None` = the data's range, padded by 5%.
    pub x_range: Option<(f64, f64)>,
    /// Vertical range; `None` = the data's range, padded by 5%.
    pub y_range: Option<(f64, f64)>,
    /// Radius of each point in pixels.
    pub point_radius: u32,
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
}

impl ScatterPlot {
    /// A 440x400 plot of `points` with radius-1 points and automatic ranges.
    pub fn new(title: impl Into<String>, points: Vec<ScatterPoint>) -> Self {
        Self {
            title: title.into(),
            points,
            x_range: None,
            y_range: None,
            point_radius: 1,
            width: 440,
            height: 400,
        }
    }

    /// Draws the plot (points outside the ranges are left out). Fails when
    /// there is no finite point.
    pub fn render(&self) -> Result<RgbImage> {
        let finite = || {
            self.points
                .iter()
                .filter(|p| p.x.is_finite() && p.y.is_finite())
        };
        if finite().next().is_none() {
            return Err(Error::InvalidInput(format!(
                "scatter plot `{}`: no finite point to draw",
                self.title
            )));
        }
        let x_range = self
            .x_range
            .unwrap_or_else(|| padded_range(finite().map(|p| p.x), 0.05));
        let y_range = self
            .y_range
            .unwrap_or_else(|| padded_range(finite().map(|p| p.y), 0.05));
        for (lo, hi) in [x_range, y_range] {
            if !(lo.is_finite() && hi.is_finite() && hi > lo) {
                return Err(Error::InvalidInput(format!(
                    "scatter plot `{}`: range ({lo}, {hi}) must be finite and increasing",
                    self.title
                )));
            }
        }
        let mut classes: Vec<usize> = finite().filter_map(|p| p.class).collect();
        classes.sort_unstable();
        classes.dedup();
        let mut frame = Frame::new(
            self.width,
            self.height,
            x_range,
            y_range,
            !classes.is_empty(),
        );
        frame.draw_axes(false, &self.title, "");
        for p in finite() {
            if p.x < x_range.0 || p.x > x_range.1 || p.y < y_range.0 || p.y > y_range.1 {
                continue;
            }
            let (px, py) = frame.to_pixel(p.x, p.y);
            let colour = p.class.map_or(GREY, palette_colour);
            frame.canvas.disc(px, py, self.point_radius, colour);
        }
        let x = frame.right + 10;
        for (i, class) in classes.iter().enumerate() {
            let y = frame.top + i as i64 * 14;
            frame.canvas.fill_rect(x, y, 10, 10, palette_colour(*class));
            frame
                .canvas
                .text(x + 14, y + 1, &class.to_string(), BLACK, 1);
        }
        Ok(frame.canvas.into_image())
    }
}

/// The smallest and largest of `values`, widened by `pad` of the span on each
/// side (a single value gets a span of 1).
pub fn padded_range(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        // A constant: centre it in a span of 20% of its size (1 around 0).
        let half = if hi == 0.0 { 0.5 } else { 0.1 * hi.abs() };
        lo -= half;
        hi += half;
    }
    let span = hi - lo;
    (lo - pad * span, hi + pad * span)
}

/// About `target` round tick positions (multiples of 1, 2 or 5 times a power of
/// ten) inside `[lo, hi]`.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return Vec::new();
    }
    let step = nice_step((hi - lo) / target.max(1) as f64);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let factor = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    factor * magnitude
}

/// A short label for tick `value` on an axis whose ticks are `step` apart:
/// plain decimals for moderate magnitudes, `1.5e-4` style otherwise.
pub fn format_tick(value: f64, step: f64) -> String {
    if value == 0.0 || value.abs() < step.abs() * 1e-9 {
        return "0".into();
    }
    let a = value.abs();
    if !(1e-3..1e5).contains(&a) {
        let exponent = a.log10().floor() as i32;
        let mantissa = value / 10f64.powi(exponent);
        let m = format!("{mantissa:.1}");
        let m = m.trim_end_matches('0').trim_end_matches('.');
        return format!("{m}e{exponent}");
    }
    let decimals = (-(step.abs().log10().floor())).clamp(0.0, 6.0) as usize;
    format!("{value:.decimals$}")
}

/// The plot area of a panel and the mapping from data to pixels.
struct Frame {
    canvas: Canvas,
    left: i64,
    right: i64,
    top: i64,
    bottom: i64,
    x_range: (f64, f64),
    y_range: (f64, f64),
}

impl Frame {
    fn new(
        width: u32,
        height: u32,
        x_range: (f64, f64),
        y_range: (f64, f64),
        legend: bool,
    ) -> Self {
        let canvas = Canvas::new(width.max(160), height.max(120), WHITE);
        let right_margin = MARGIN_RIGHT + if legend { LEGEND_WIDTH } else { 0 };
        Self {
            left: MARGIN_LEFT,
            right: canvas.width() as i64 - right_margin,
            top: MARGIN_TOP,
            bottom: canvas.height() as i64 - MARGIN_BOTTOM,
            canvas,
            x_range,
            y_range,
        }
    }

    fn to_pixel(&self, x: f64, y: f64) -> (i64, i64) {
        let fx = (x - self.x_range.0) / (self.x_range.1 - self.x_range.0);
        let fy = (y - self.y_range.0) / (self.y_range.1 - self.y_range.0);
        let px = self.left as f64 + fx * (self.right - self.left) as f64;
        let py = self.bottom as f64 - fy * (self.bottom - self.top) as f64;
        (px.round() as i64, py.round() as i64)
    }

    /// Grid lines, the frame, tick labels (log ticks as powers of ten when
    /// `log_y`), the title and the x label.
    fn draw_axes(&mut self, log_y: bool, title: &str, x_label: &str) {
        let glyph = GLYPH_SIZE as i64;
        let x_ticks = nice_ticks(self.x_range.0, self.x_range.1, 5);
        let x_step = tick_step(&x_ticks);
        for &t in &x_ticks {
            let (px, _) = self.to_pixel(t, self.y_range.0);
            self.canvas
                .line(px, self.top, px, self.bottom, LIGHT_GREY, 1);
            let label = format_tick(t, x_step);
            let w = Canvas::text_width(&label, 1);
            self.canvas
                .text(px - w / 2, self.bottom + 5, &label, BLACK, 1);
        }
        let y_ticks = if log_y {
            log_ticks(self.y_range.0, self.y_range.1)
        } else {
            nice_ticks(self.y_range.0, self.y_range.1, 5)
                .into_iter()
                .map(|t| (t, None))
                .collect()
        };
        let y_step = tick_step(&y_ticks.iter().map(|t| t.0).collect::<Vec<_>>());
        for (t, power) in &y_ticks {
            let (_, py) = self.to_pixel(self.x_range.0, *t);
            self.canvas
                .line(self.left, py, self.right, py, LIGHT_GREY, 1);
            let label = match power {
                Some(value) => format_tick(*value, *value),
                None => format_tick(*t, y_step),
            };
            let w = Canvas::text_width(&label, 1);
            self.canvas
                .text(self.left - 5 - w, py - glyph / 2, &label, BLACK, 1);
        }
        self.canvas.stroke_rect(
            self.left,
            self.top,
            self.right - self.left + 1,
            self.bottom - self.top + 1,
            BLACK,
        );
        let w = Canvas::text_width(title, 1);
        let cx = (self.left + self.right) / 2;
        self.canvas
            .text(cx - w / 2, (self.top - glyph) / 2, title, BLACK, 1);
        if !x_label.is_empty() {
            let w = Canvas::text_width(x_label, 1);
            self.canvas
                .text(cx - w / 2, self.bottom + 7 + glyph + 4, x_label, BLACK, 1);
        }
    }
}

fn tick_step(ticks: &[f64]) -> f64 {
    if ticks.len() >= 2 {
        ticks[1] - ticks[0]
    } else {
        ticks
            .first()
            .map_or(1.0, |t| t.abs().max(f64::MIN_POSITIVE))
    }
}

/// Ticks of a log axis given in log10 units: `(log10 position, Some(value))`
/// at powers of ten, with 2x and 5x added when the range spans under two decades.
fn log_ticks(lo: f64, hi: f64) -> Vec<(f64, Option<f64>)> {
    let first = lo.floor() as i32;
    let last = hi.ceil() as i32;
    let multipliers: &[f64] = if hi - lo < 2.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut out = Vec::new();
    for k in first..=last {
        for m in multipliers {
            let value = m * 10f64.powi(k);
            let pos = value.log10();
            if pos >= lo && pos <= hi {
                out.push((pos, Some(value)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_inside() {
        assert_eq!(
            nice_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        let t = nice_ticks(0.013, 0.061, 5);
        assert_eq!(t.len(), 5, "{t:?}");
        assert!(
            (t[0] - 0.02).abs() < 1e-12 && (t[4] - 0.06).abs() < 1e-12,
            "{t:?}"
        );
        assert!(nice_ticks(1.0, 1.0, 5).is_empty());
        assert!(nice_ticks(f64::NAN, 1.0, 5).is_empty());
    }

    #[test]
    fn tick_labels() {
        assert_eq!(format_tick(0.0, 0.5), "0");
        assert_eq!(format_tick(1.5, 0.5), "1.5");
        assert_eq!(format_tick(2000.0, 500.0), "2000");
        assert_eq!(format_tick(0.02, 0.01), "0.02");
        assert_eq!(format_tick(1.5e-4, 5e-5), "1.5e-4");
        assert_eq!(format_tick(-2e6, 1e6), "-2e6");
        assert_eq!(format_tick(0.001, 0.001), "0.001");
    }

    #[test]
    fn constant_values_get_a_span_around_them() {
        let (lo, hi) = padded_range([1e-3, 1e-3].into_iter(), 0.0);
        assert!((lo - 0.9e-3).abs() < 1e-12 && (hi - 1.1e-3).abs() < 1e-12);
        assert_eq!(padded_range([0.0].into_iter(), 0.0), (-0.5, 0.5));
        assert_eq!(padded_range(std::iter::empty(), 0.0), (0.0, 1.0));
    }

    #[test]
    fn log_scale_choice_and_ticks() {
        let curve = vec![(0.0, 100.0), (1.0, 10.0), (2.0, 1.0)];
        let p = LinePlot::new("loss", "step").with_series("a", curve.clone());
        assert!(p.uses_log_scale());
        let mut lin = p.clone();
        lin.series[0].points[2].1 = -1.0;
        assert!(!lin.uses_log_scale());
        let t = log_ticks(-0.1, 2.1);
        let values: Vec<f64> = t.iter().filter_map(|x| x.1).collect();
        assert_eq!(values, vec![1.0, 10.0, 100.0]);
        let fine: Vec<f64> = log_ticks(0.0, 1.0).iter().filter_map(|x| x.1).collect();
        assert_eq!(fine, vec![1.0, 2.0, 5.0, 10.0]);
    }

    #[test]
    fn line_plot_draws_its_curve_in_the_series_colour() -> Result<()> {
        let points: Vec<(f64, f64)> = (0..50)
            .map(|i| (i as f64, (i as f64 * 0.2).sin()))
            .collect();
        let img = LinePlot::new("sin", "step")
            .with_series("sin", points)
            .render()?;
        assert_eq!(img.dimensions(), (480, 300));
        let coloured = img.pixels().filter(|p| p.0 == palette_colour(0)).count();
        assert!(coloured > 300, "only {coloured} curve pixels");
        Ok(())
    }

    #[test]
    fn empty_or_non_finite_plots_are_errors() {
        let p = LinePlot::new("x", "step").with_series("nan", vec![(0.0, f64::NAN)]);
        assert!(p.render().is_err());
        let s = ScatterPlot::new("s", vec![]);
        assert!(s.render().is_err());
    }

    #[test]
    fn scatter_colours_classes_and_shows_a_legend() -> Result<()> {
        let points: Vec<ScatterPoint> = (0..200)
            .map(|i| ScatterPoint {
                x: (i % 20) as f64,
                y: (i / 20) as f64,
                class: Some(i % 3),
            })
            .collect();
        let mut plot = ScatterPlot::new("codes", points);
        plot.point_radius = 2;
        let img = plot.render()?;
        for class in 0..3 {
            let n = img
                .pixels()
                .filter(|p| p.0 == palette_colour(class))
                .count();
            assert!(n > 100, "class {class}: {n} pixels");
        }
        assert_eq!(img.pixels().filter(|p| p.0 == palette_colour(3)).count(), 0);
        Ok(())
    }
}
