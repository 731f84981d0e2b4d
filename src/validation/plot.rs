//! The one plotting helper: line / scatter figures with optional log axes, written as PNG and
//! SVG with plotters (bitmap + SVG backends, text by the pure-Rust `ab_glyph` renderer and
//! the DejaVu Sans font shipped in `src/validation/assets/`, so no system font library is
//! needed at build or run time).
//!
//! Log axes are drawn by plotting $\log_{10}$ of the data on a linear axis and labelling the
//! ticks with the original values, so one code path serves the four axis combinations.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

static FONT: &[u8] = include_bytes!("assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The font is compiled in; registering it cannot fail unless the bytes are corrupt.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Solid line.
    Line,
    /// Dashed line (predictions, reference slopes).
    Dashed,
    /// Markers only (measurements).
    Points,
    /// Line with markers.
    LinePoints,
    /// Thin solid line (many series, e.g. particle paths).
    Thin,
    /// Vertical bars (95 % intervals): the points come in pairs `(x, lo), (x, hi)`
    /// ([`Series::intervals`]).
    Intervals,
}

/// One data series.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points `(x, y)`; non-finite points (and non-positive ones on a log axis) are skipped.
    pub points: Vec<(f64, f64)>,
    /// Drawing style.
    pub style: Style,
}

impl Series {
    /// A series from parallel slices.
    pub fn new(label: impl Into<String>, xs: &[f64], ys: &[f64], style: Style) -> Self {
        Series {
            label: label.into(),
            points: xs.iter().copied().zip(ys.iter().copied()).collect(),
            style,
        }
    }

    /// Vertical interval bars `[lo_i, hi_i]` at `xs_i` (on a log axis a non-positive lower
    /// end is drawn from the bottom of the data range).
    pub fn intervals(label: impl Into<String>, xs: &[f64], lo: &[f64], hi: &[f64]) -> Self {
        Series {
            label: label.into(),
            points: xs
                .iter()
                .zip(lo.iter().zip(hi))
                .flat_map(|(&x, (&l, &h))| [(x, l), (x, h)])
                .collect(),
            style: Style::Intervals,
        }
    }
}

/// A 2-D figure.
#[derive(Clone, Debug)]
pub struct Figure {
    /// Caption.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// Logarithmic x axis.
    pub x_log: bool,
    /// Logarithmic y axis.
    pub y_log: bool,
    /// The series.
    pub series: Vec<Series>,
    /// Sub-figures of a multi-panel figure ([`Figure::grid`]); empty for a single plot.
    pub panels: Vec<Figure>,
    /// `(rows, cols)` of the panel grid.
    pub grid: (usize, usize),
}

impl Figure {
    /// An empty figure with linear axes.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Figure {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_log: false,
            y_log: false,
            series: Vec::new(),
            panels: Vec::new(),
            grid: (1, 1),
        }
    }

    /// A multi-panel figure: `panels` drawn row-major on a `rows × cols` grid under one caption
    /// (e.g. particle trajectories, one panel per scheme × temperature). Each panel is drawn
    /// by the same code as a single figure, with smaller fonts; the figure is 360×300 pixels
    /// per panel.
    pub fn grid(title: impl Into<String>, rows: usize, cols: usize, panels: Vec<Figure>) -> Self {
        let mut f = Figure::new(title, "", "");
        f.grid = (rows.max(1), cols.max(1));
        f.panels = panels;
        f
    }
    /// Set logarithmic axes.
    pub fn log(mut self, x_log: bool, y_log: bool) -> Self {
        self.x_log = x_log;
        self.y_log = y_log;
        self
    }
    /// Add a series.
    pub fn with(mut self, s: Series) -> Self {
        self.series.push(s);
        self
    }
    /// Add a series in place.
    pub fn push(&mut self, s: Series) {
        self.series.push(s);
    }

    /// Write `<dir>/<name>.png` and `<dir>/<name>.svg`; returns the two file names.
    pub fn save(&self, dir: &Path, name: &str) -> Result<Vec<String>, String> {
        register_font();
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let png = dir.join(format!("{name}.png"));
        let svg = dir.join(format!("{name}.svg"));
        let size = if self.panels.is_empty() {
            (960, 640)
        } else {
            (360 * self.grid.1 as u32, 300 * self.grid.0 as u32 + 40)
        };
        {
            let root = BitMapBackend::new(&png, size).into_drawing_area();
            self.draw(&root)
                .map_err(|e| format!("drawing {name}.png: {e}"))?;
            root.present()
                .map_err(|e| format!("writing {name}.png: {e}"))?;
        }
        {
            let root = SVGBackend::new(&svg, size).into_drawing_area();
            self.draw(&root)
                .map_err(|e| format!("drawing {name}.svg: {e}"))?;
            root.present()
                .map_err(|e| format!("writing {name}.svg: {e}"))?;
        }
        Ok(vec![format!("{name}.png"), format!("{name}.svg")])
    }

    fn transformed(&self) -> Vec<Vec<(f64, f64)>> {
        let tx = |v: f64| if self.x_log { v.log10() } else { v };
        let ty = |v: f64| if self.y_log { v.log10() } else { v };
        self.series
            .iter()
            .map(|s| {
                if s.style == Style::Intervals {
                    // Keep the pairs together; clip a non-positive lower end on a log axis to the
                    // upper end / 1e3 (drawn as a long bar rather than dropped).
                    return s
                        .points
                        .chunks_exact(2)
                        .filter(|p| {
                            p[0].0.is_finite()
                                && p[1].1.is_finite()
                                && (!self.x_log || p[0].0 > 0.0)
                                && (!self.y_log || p[1].1 > 0.0)
                        })
                        .flat_map(|p| {
                            let lo = if self.y_log && (p[0].1 <= 0.0 || p[0].1.is_nan()) {
                                p[1].1 * 1e-3
                            } else {
                                p[0].1
                            };
                            [(tx(p[0].0), ty(lo)), (tx(p[1].0), ty(p[1].1))]
                        })
                        .collect();
                }
                s.points
                    .iter()
                    .filter(|(x, y)| {
                        x.is_finite()
                            && y.is_finite()
                            && (!self.x_log || *x > 0.0)
                            && (!self.y_log || *y > 0.0)
                    })
                    .map(|&(x, y)| (tx(x), ty(y)))
                    .collect()
            })
            .collect()
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>
    where
        DB::ErrorType: 'static,
    {
        if self.panels.is_empty() {
            return self.draw_sized(root, 1.0);
        }
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let body = root
            .titled(&self.title, ("sans-serif", 24))
            .map_err(|e| e.to_string())?;
        let areas = body.split_evenly(self.grid);
        for (fig, area) in self.panels.iter().zip(areas.iter()) {
            fig.draw_panel(area)?;
        }
        Ok(())
    }

    /// Draw as one panel of a [`Grid`] (smaller fonts and margins).
    fn draw_panel<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>
    where
        DB::ErrorType: 'static,
    {
        self.draw_sized(root, 0.6)
    }

    fn draw_sized<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        scale: f64,
    ) -> Result<(), String>
    where
        DB::ErrorType: 'static,
    {
        let px = |v: f64| ((v * scale).round() as u32).max(1);
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(err)?;
        let data = self.transformed();
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in data.iter().flatten() {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        let pad = |a: f64, b: f64| {
            let w = (b - a).abs().max(1e-12 * a.abs().max(1.0));
            (a - 0.05 * w, b + 0.05 * w)
        };
        let (x0, x1) = pad(x0, x1);
        let (y0, y1) = pad(y0, y1);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", px(22.0)))
            .margin(px(16.0))
            .x_label_area_size(px(48.0))
            .y_label_area_size(px(84.0))
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        let xl = self.x_log;
        let yl = self.y_log;
        let fx = move |v: &f64| tick(*v, xl);
        let fy = move |v: &f64| tick(*v, yl);
        chart
            .configure_mesh()
            .x_labels(if xl { log_labels(x0, x1) } else { 10 })
            .y_labels(if yl { log_labels(y0, y1) } else { 10 })
            .x_desc(axis_label(&self.x_label, xl))
            .y_desc(axis_label(&self.y_label, yl))
            .x_label_formatter(&fx)
            .y_label_formatter(&fy)
            .label_style(("sans-serif", px(15.0)))
            .axis_desc_style(("sans-serif", px(17.0)))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        // Interval bars take the colour of the series drawn just before them.
        let mut palette_index = 0usize;
        for (s, pts) in self.series.iter().zip(&data) {
            if s.style != Style::Intervals || palette_index == 0 {
                palette_index += 1;
            }
            let color = PALETTE[(palette_index - 1) % PALETTE.len()];
            let stroke = color.stroke_width(if s.style == Style::Thin { 1 } else { 2 });
            let legend_style = stroke;
            let anno = match s.style {
                Style::Line | Style::LinePoints | Style::Thin => chart
                    .draw_series(LineSeries::new(pts.iter().copied(), stroke))
                    .map_err(err)?,
                Style::Dashed => chart
                    .draw_series(DashedLineSeries::new(pts.iter().copied(), 8, 5, stroke))
                    .map_err(err)?,
                Style::Points => chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, px(4.0), color.filled())))
                    .map_err(err)?,
                Style::Intervals => chart
                    .draw_series(
                        pts.chunks_exact(2)
                            .map(|p| PathElement::new(vec![p[0], p[1]], stroke)),
                    )
                    .map_err(err)?,
            };
            if !s.label.is_empty() {
                let anno = anno.label(s.label.clone());
                if s.style == Style::Points {
                    anno.legend(move |(x, y)| Circle::new((x + 11, y), px(4.0), color.filled()));
                } else {
                    anno.legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 22, y)], legend_style)
                    });
                }
            }
            if s.style == Style::LinePoints {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(err)?;
            }
        }
        if self.series.iter().any(|s| !s.label.is_empty()) {
            chart
                .configure_series_labels()
                .label_font(("sans-serif", px(15.0)))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(err)?;
        }
        Ok(())
    }
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

fn axis_label(label: &str, log: bool) -> String {
    if log {
        format!("{label} (log scale)")
    } else {
        label.to_string()
    }
}

/// A tick label. Log axes are drawn in log10 coordinates: a decade prints as `0.01`, `1`,
/// `1000` (within 10⁻³ .. 10⁴) or `10⁻⁵`; any other tick as a plain number with two significant
/// digits (`25`, `0.32`), never as `2.51e1`.
fn tick(v: f64, log: bool) -> String {
    if !log {
        return super::spec::fmt_num(v);
    }
    let k = v.round();
    if (v - k).abs() < 1e-9 {
        let k = k as i32;
        if (-3..=4).contains(&k) {
            return plain(10f64.powi(k));
        }
        const SUP: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
        let digits: String = k
            .unsigned_abs()
            .to_string()
            .chars()
            .map(|c| SUP[c.to_digit(10).unwrap_or(0) as usize])
            .collect();
        return format!("10{}{digits}", if k < 0 { "⁻" } else { "" });
    }
    let x = 10f64.powf(v);
    if (1e-3..1e5).contains(&x) {
        // Two significant digits, printed plainly.
        let mag = x.log10().floor() as i32;
        let q = 10f64.powi(mag - 1);
        plain((x / q).round() * q)
    } else {
        format!("{x:.1e}")
    }
}

/// A number without exponent and without trailing zeros (`0.001`, `25`, `3.2`).
fn plain(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// How many labels a log axis over `[a, b]` (log10 coordinates) should ask for, so that the
/// mesh's 1-2-5 steps land on whole decades once the range spans two or more.
fn log_labels(a: f64, b: f64) -> usize {
    let decades = (b - a).abs();
    if decades >= 2.0 {
        (decades.floor() as usize + 1).min(12)
    } else {
        6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_are_decades_or_plain_numbers() {
        assert_eq!(tick(1.0, true), "10");
        assert_eq!(tick(0.0, true), "1");
        assert_eq!(tick(-1.0, true), "0.1");
        assert_eq!(tick(-5.0, true), "10⁻⁵");
        assert_eq!(tick(12.0, true), "10¹²");
        assert_eq!(tick(25f64.log10(), true), "25");
        assert_eq!(tick(0.316f64.log10(), true), "0.32");
        assert_eq!(tick(1.4, true), "25");
    }

    #[test]
    fn writes_png_and_svg_with_text() {
        let dir = std::env::temp_dir().join(format!("sinkflow-plot-{}", std::process::id()));
        let xs: Vec<f64> = (1..10).map(|k| f64::from(k) * 0.1).collect();
        let ys: Vec<f64> = xs.iter().map(|x| x * x).collect();
        let fig = Figure::new("y = x^2", "h", "error")
            .log(true, true)
            .with(Series::new("measured", &xs, &ys, Style::Points))
            .with(Series::new("slope 2", &xs, &ys, Style::Dashed));
        let files = fig.save(&dir, "demo").unwrap();
        assert_eq!(files, vec!["demo.png", "demo.svg"]);
        let svg = std::fs::read_to_string(dir.join("demo.svg")).unwrap();
        assert!(svg.contains("measured"), "legend text is rendered");
        let png = std::fs::metadata(dir.join("demo.png")).unwrap();
        assert!(png.len() > 1000);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
