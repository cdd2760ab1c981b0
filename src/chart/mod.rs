//! Charts of a run, drawn with plotters as SVG and PNG from `samples.csv`
//! rows. PNG text is rasterised from a bundled font (DejaVu Sans, under
//! `src/chart/fonts/`, Bitstream Vera licence: redistribution allowed), so
//! charts have labels on a host without any font installed.
//!
//! Every chart colours a platform the same way ([`platform_colour`]).

pub mod boot;
pub mod data;
pub mod density;
pub mod footprint;
pub mod memory;
pub mod patch;
pub mod phases;
pub mod plan;
pub mod probes;
pub mod storm;

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::model::{ProbeRow, Sample};

/// DejaVu Sans 2.37 (fonts-dejavu-core); licence in fonts/LICENSE-DejaVu.txt.
pub static FONT: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");

/// The font family every chart uses.
pub const FAMILY: &str = "sans-serif";

/// Size of every chart, in pixels (PNG) and user units (SVG).
pub const SIZE: (u32, u32) = (1000, 600);

static REGISTER: Once = Once::new();

/// Registers the bundled font with plotters (once per process).
pub fn register_font() {
    REGISTER.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold, FontStyle::Italic, FontStyle::Oblique] {
            if plotters::style::register_font(FAMILY, style, FONT).is_err() {
                tracing::error!("the bundled chart font could not be parsed; PNG charts will have no text");
            }
        }
    });
}

/// The colour of a platform, the same in every chart: its descriptor's
/// ([`crate::platform::PlatformInfo::colour`]).
pub fn platform_colour(platform: &str) -> RGBColor {
    let (r, g, b) = crate::platform::registry::colour(platform);
    RGBColor(r, g, b)
}

/// Colours for stacked parts (boot phases), by index.
pub fn part_colour(i: usize) -> RGBColor {
    const P: [RGBColor; 12] = [
        RGBColor(0x44, 0x77, 0xAA),
        RGBColor(0xEE, 0x66, 0x77),
        RGBColor(0x22, 0x88, 0x33),
        RGBColor(0xCC, 0xBB, 0x44),
        RGBColor(0x66, 0xCC, 0xEE),
        RGBColor(0xAA, 0x33, 0x77),
        RGBColor(0xBB, 0xBB, 0xBB),
        RGBColor(0x33, 0x22, 0x88),
        RGBColor(0x99, 0x99, 0x33),
        RGBColor(0x88, 0x22, 0x55),
        RGBColor(0x44, 0xAA, 0x99),
        RGBColor(0xDD, 0xCC, 0x77),
    ];
    P[i % P.len()]
}

/// A text style of the chart font.
pub fn font(size: f64) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

/// Human-readable milliseconds.
pub fn fmt_ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} s", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.0} ms")
    } else if v >= 1.0 {
        format!("{v:.2} ms")
    } else {
        format!("{:.0} µs", v * 1000.0)
    }
}

/// Human-readable bytes (binary units).
pub fn fmt_bytes(v: f64) -> String {
    let a = v.abs();
    if a >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", v / (1u64 << 30) as f64)
    } else if a >= (1u64 << 20) as f64 {
        format!("{:.1} MiB", v / (1u64 << 20) as f64)
    } else if a >= 1024.0 {
        format!("{:.1} KiB", v / 1024.0)
    } else {
        format!("{v:.0} B")
    }
}

/// `12345` as `12 345`.
pub fn group_digits(v: f64) -> String {
    if !v.is_finite() {
        return "unbounded".into();
    }
    let s = format!("{:.0}", v);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// A chart that can draw itself on any plotters backend.
pub trait Chart {
    /// File stem (`boot` gives `boot.svg` and `boot.png`).
    fn stem(&self) -> &'static str;
    /// Size in pixels (PNG) and user units (SVG).
    fn size(&self) -> (u32, u32) {
        SIZE
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
    /// The numbers the chart draws, as a table (written as `<stem>.csv`
    /// beside the chart, and shown under it in report.html).
    fn table(&self) -> DataTable;
}

/// A chart's data: a header and rows of cells, as drawn.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataTable {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl DataTable {
    pub fn new(header: &[&str]) -> DataTable {
        DataTable { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }
    /// Writes the table as CSV.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let err = |e: csv::Error| ChartError::File { path: path.to_path_buf(), source: Box::new(ChartError::Draw(e.to_string())) };
        let mut w = csv::Writer::from_path(path).map_err(err)?;
        w.write_record(&self.header).map_err(err)?;
        for r in &self.rows {
            w.write_record(r).map_err(err)?;
        }
        w.flush().map_err(|e| err(e.into()))
    }
    /// Reads a table written by [`DataTable::write_csv`].
    pub fn read_csv(path: &Path) -> Option<DataTable> {
        let mut r = csv::ReaderBuilder::new().has_headers(true).from_path(path).ok()?;
        let header = r.headers().ok()?.iter().map(String::from).collect();
        let rows = r.records().filter_map(|x| x.ok()).map(|rec| rec.iter().map(String::from).collect()).collect();
        Some(DataTable { header, rows })
    }
}

/// A number for a data table: up to 4 significant decimals, no noise.
pub fn cell(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Why a chart could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("drawing a chart: {0}")]
    Draw(String),
    #[error("{path}: {source}")]
    File { path: PathBuf, source: Box<ChartError> },
    #[error("cannot create the chart directory {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
}

/// Charts' results.
pub type Result<T, E = ChartError> = std::result::Result<T, E>;

/// Turns a plotters error into a chart error.
pub fn perr<E: std::fmt::Debug>(e: E) -> ChartError {
    ChartError::Draw(format!("{e:?}"))
}

/// Draws `chart` as `<dir>/<stem>.svg` and `<dir>/<stem>.png`, and writes
/// its data as `<dir>/<stem>.csv`; returns the three paths.
pub fn render<C: Chart>(chart: &C, dir: &Path) -> Result<Vec<PathBuf>> {
    register_font();
    let svg = dir.join(format!("{}.svg", chart.stem()));
    let png = dir.join(format!("{}.png", chart.stem()));
    let data = dir.join(format!("{}.csv", chart.stem()));
    chart.table().write_csv(&data)?;
    {
        let root = SVGBackend::new(&svg, chart.size()).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        chart.draw(&root).map_err(|e| ChartError::File { path: svg.clone(), source: Box::new(e) })?;
        root.present().map_err(perr)?;
    }
    {
        let root = BitMapBackend::new(&png, chart.size()).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        chart.draw(&root).map_err(|e| ChartError::File { path: png.clone(), source: Box::new(e) })?;
        root.present().map_err(perr)?;
    }
    Ok(vec![svg, png, data])
}

/// Renders every chart a run has data for (its samples, its probe rows,
/// and its capacity plan's bars) into `dir` (created if needed). Returns
/// the stems written, in report order; removes the files of charts that
/// have no data any more (a plan deleted, say).
pub fn render_all(samples: &[Sample], probes: &[ProbeRow], plan: &[plan::PlanBar], dir: &Path) -> Result<Vec<&'static str>> {
    std::fs::create_dir_all(dir).map_err(|source| ChartError::Dir { path: dir.to_path_buf(), source })?;
    let mut out = Vec::new();
    out.extend(render_some(boot::BootChart::from_samples(samples), dir)?);
    out.extend(render_some(phases::PhaseChart::from_samples(samples), dir)?);
    out.extend(render_some(storm::StormChart::from_samples(samples), dir)?);
    out.extend(render_some(memory::MemoryChart::from_samples(samples), dir)?);
    out.extend(render_some(density::DensityChart::from_samples(samples), dir)?);
    out.extend(render_some(footprint::FootprintChart::from_samples(samples), dir)?);
    out.extend(render_some(patch::PatchChart::from_samples(samples), dir)?);
    out.extend(render_some(probes::ProbeChart::from_rows(probes), dir)?);
    out.extend(render_some(plan::PlanChart::new(plan.to_vec()), dir)?);
    for stem in STEMS.iter().filter(|s| !out.contains(s)) {
        for ext in ["svg", "png", "csv"] {
            let _ = std::fs::remove_file(dir.join(format!("{stem}.{ext}")));
        }
    }
    Ok(out)
}

/// Every chart's stem, in report order.
pub const STEMS: [&str; 9] = ["boot", "phases", "storm", "memory", "density", "footprint", "patch", "probes", "plan"];

/// Renders `chart` when there is one; its stem when drawn.
fn render_some<C: Chart>(chart: Option<C>, dir: &Path) -> Result<Option<&'static str>> {
    match chart {
        Some(c) => render(&c, dir).map(|_| Some(c.stem())),
        None => Ok(None),
    }
}

/// Draws category names under a chart's x axis at the pixel positions
/// given (absolute backend coordinates; `root` must be the whole image).
pub fn draw_category_labels<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, labels: &[(String, (i32, i32))]) -> Result<()> {
    for (name, (x, y)) in labels {
        let style = font(17.0).pos(plotters::style::text_anchor::Pos::new(plotters::style::text_anchor::HPos::Center, plotters::style::text_anchor::VPos::Top));
        root.draw(&Text::new(name.clone(), (*x, *y + 8), style)).map_err(perr)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_stable_and_distinct() {
        let names = crate::platform::registry::names();
        let cs: Vec<_> = names.iter().map(|n| platform_colour(n)).collect();
        for i in 0..cs.len() {
            for j in i + 1..cs.len() {
                assert_ne!(cs[i], cs[j]);
            }
        }
        assert_eq!(platform_colour("zz"), platform_colour("zz"));
    }

    #[test]
    fn cells() {
        assert_eq!(cell(3.0), "3");
        assert_eq!(cell(0.123456), "0.1235");
        assert_eq!(cell(2.5), "2.5");
        assert_eq!(cell(f64::NAN), "");
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_ms(0.25), "250 µs");
        assert_eq!(fmt_ms(1.234), "1.23 ms");
        assert_eq!(fmt_ms(85_000.0), "85.00 s");
        assert_eq!(fmt_bytes(64.0 * 1048576.0), "64.0 MiB");
        assert_eq!(fmt_bytes(12288.0), "12.0 KiB");
    }

    #[test]
    fn bundled_font_parses() {
        register_font();
        assert!(plotters::style::register_font("versus-test", FontStyle::Normal, FONT).is_ok());
    }
}
