//! Density to the budget: the memory of N idle instances running at once
//! against N, one colour per platform: the PSS of their processes as dots
//! with its least-squares line (fixed + per-instance), the host's
//! MemAvailable drop as small crosses. One panel without KSM, one with KSM
//! on when the run has it.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::data::{by_iteration, platforms_with, Curve};
use super::{cell, fmt_bytes, font, perr, platform_colour, Chart, DataTable, Result};
use crate::model::{Metric, Sample};
use crate::stats::{linear_fit, LinearFit};

const MIB: f64 = 1048576.0;

/// One platform in one panel.
pub struct DensityLine {
    pub platform: String,
    /// (N, PSS total bytes).
    pub pss: Curve,
    /// (N, MemAvailable drop bytes).
    pub host: Curve,
    /// The PSS line.
    pub fit: Option<LinearFit>,
}

/// A panel: KSM off or on.
pub struct DensityPanel {
    pub ksm: bool,
    pub workload: String,
    pub lines: Vec<DensityLine>,
}

pub struct DensityChart {
    pub panels: Vec<DensityPanel>,
}

impl DensityChart {
    pub fn from_samples(samples: &[Sample]) -> Option<DensityChart> {
        let mut panels = Vec::new();
        for ksm in [false, true] {
            let workload = samples.iter().find(|s| s.metric == Metric::DensityPssTotal && s.workload.ends_with("+ksm") == ksm).map(|s| s.workload.clone());
            let Some(workload) = workload else { continue };
            let lines: Vec<DensityLine> = platforms_with(samples, &Metric::DensityPssTotal)
                .into_iter()
                .filter_map(|p| {
                    let pss = by_iteration(samples, &p, Some(&workload), &Metric::DensityPssTotal, None);
                    if pss.is_empty() {
                        return None;
                    }
                    let host = by_iteration(samples, &p, Some(&workload), &Metric::DensityMemAvailableDrop, None);
                    let fit = linear_fit(&pss.iter().map(|(n, v)| (*n as f64, *v)).collect::<Vec<_>>());
                    Some(DensityLine { platform: p, pss, host, fit })
                })
                .collect();
            if !lines.is_empty() {
                panels.push(DensityPanel { ksm, workload, lines });
            }
        }
        (!panels.is_empty()).then_some(DensityChart { panels })
    }
}

fn panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &DensityPanel, top: f64, max_n: u32) -> Result<()> {
    let title = if p.ksm { format!("KSM on, memory mergeable (`{}`)", p.workload) } else { format!("KSM off (`{}`)", p.workload) };
    let mut chart = ChartBuilder::on(area)
        .caption(title, font(19.0))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(76)
        .build_cartesian_2d(0f64..(max_n as f64 * 1.05).max(2.0), 0f64..(top * 1.1).max(1.0))
        .map_err(perr)?;
    chart
        .configure_mesh()
        .x_desc("N idle instances running")
        .y_desc("MiB held by all N")
        .axis_desc_style(font(16.0))
        .label_style(font(14.0))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(perr)?;
    for l in &p.lines {
        let c = platform_colour(&l.platform);
        let pts: Vec<(f64, f64)> = l.pss.iter().map(|(n, v)| (*n as f64, v / MIB)).collect();
        let label = match &l.fit {
            Some(f) => format!("{}: {} + {} x N", l.platform, fmt_bytes(f.intercept), fmt_bytes(f.slope)),
            None => l.platform.clone(),
        };
        chart
            .draw_series(pts.iter().map(|pt| Circle::new(*pt, 4, c.filled())))
            .map_err(perr)?
            .label(label)
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, c.filled()));
        if let Some(f) = &l.fit {
            let n_hi = l.pss.last().map_or(1.0, |x| x.0 as f64);
            chart.draw_series(LineSeries::new(vec![(0.0, f.at(0.0) / MIB), (n_hi, f.at(n_hi) / MIB)], c.stroke_width(2))).map_err(perr)?;
        }
        let crosses: Vec<(f64, f64)> = l.host.iter().map(|(n, v)| (*n as f64, v / MIB)).filter(|p| p.1 >= 0.0).collect();
        chart.draw_series(crosses.iter().map(|pt| Cross::new(*pt, 4, c.mix(0.6).stroke_width(1)))).map_err(perr)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(font(13.0))
        .draw()
        .map_err(perr)?;
    Ok(())
}

impl Chart for DensityChart {
    fn stem(&self) -> &'static str {
        "density"
    }

    fn table(&self) -> DataTable {
        let mut t = DataTable::new(&["platform", "workload", "N", "PSS of all N, bytes", "MemAvailable drop, bytes", "fitted PSS line, bytes"]);
        for p in &self.panels {
            for l in &p.lines {
                for (n, v) in &l.pss {
                    let host = l.host.iter().find(|x| x.0 == *n).map(|x| cell(x.1)).unwrap_or_default();
                    let fit = l.fit.map(|f| cell(f.at(*n as f64))).unwrap_or_default();
                    t.push(vec![l.platform.clone(), p.workload.clone(), n.to_string(), cell(*v), host, fit]);
                }
            }
        }
        t
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let root = root
            .titled("Density: memory of N idle instances at once (dots: PSS with its least-squares line; crosses: MemAvailable drop)", font(19.0))
            .map_err(perr)?;
        let lines = self.panels.iter().flat_map(|p| p.lines.iter());
        let top = lines.clone().flat_map(|l| l.pss.iter().chain(l.host.iter()).map(|x| x.1 / MIB)).fold(0.0, f64::max);
        let max_n = lines.flat_map(|l| l.pss.iter().map(|x| x.0)).max().unwrap_or(1);
        let areas = root.split_evenly((1, self.panels.len().max(1)));
        for (a, p) in areas.iter().zip(&self.panels) {
            panel(a, p, top, max_n)?;
        }
        Ok(())
    }
}
