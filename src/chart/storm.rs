//! Boot storm: launch-to-ready p50 and p99 against N launches at once (N
//! on a log2 axis, time on a log axis), one colour per platform: p50 a
//! solid line, p99 a dashed one.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::data::{by_iteration, pick_workload, platforms_with, Curve};
use super::{cell, fmt_ms, font, perr, platform_colour, Chart, DataTable, Result};
use crate::model::{Metric, Sample};
use crate::stats;

/// The median per N of a curve's values (several storms per N).
pub fn median_by_n(points: &[(u32, f64)]) -> Curve {
    let mut out: Curve = Vec::new();
    let mut i = 0;
    while i < points.len() {
        let n = points[i].0;
        let v: Vec<f64> = points.iter().filter(|p| p.0 == n).map(|p| p.1).collect();
        out.push((n, stats::median(&v)));
        i += v.len().max(1);
    }
    out
}

pub struct StormLine {
    pub platform: String,
    pub p50: Curve,
    pub p99: Curve,
    pub rate: Curve,
    pub failures: Curve,
}

pub struct StormChart {
    pub workload: String,
    pub lines: Vec<StormLine>,
}

impl StormChart {
    pub fn from_samples(samples: &[Sample]) -> Option<StormChart> {
        let workload = pick_workload(samples, &Metric::StormReadyP50, &[])?;
        let lines: Vec<StormLine> = platforms_with(samples, &Metric::StormReadyP50)
            .into_iter()
            .map(|p| {
                let get = |m: Metric| median_by_n(&by_iteration(samples, &p, Some(&workload), &m, None));
                StormLine {
                    p50: get(Metric::StormReadyP50),
                    p99: get(Metric::StormReadyP99),
                    rate: get(Metric::StormLaunchRate),
                    failures: get(Metric::StormFailures),
                    platform: p,
                }
            })
            .filter(|l| !l.p50.is_empty())
            .collect();
        (!lines.is_empty()).then_some(StormChart { workload, lines })
    }
}

impl Chart for StormChart {
    fn stem(&self) -> &'static str {
        "storm"
    }

    fn table(&self) -> DataTable {
        let mut t = DataTable::new(&["platform", "workload", "N", "p50 ms", "p99 ms", "launches/s", "failures"]);
        for l in &self.lines {
            for (n, p50) in &l.p50 {
                let at = |c: &Curve| c.iter().find(|x| x.0 == *n).map(|x| cell(x.1)).unwrap_or_default();
                t.push(vec![l.platform.clone(), self.workload.clone(), n.to_string(), cell(*p50), at(&l.p99), at(&l.rate), at(&l.failures)]);
            }
        }
        t
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let all: Vec<f64> = self.lines.iter().flat_map(|l| l.p50.iter().chain(&l.p99).map(|p| p.1)).filter(|v| *v > 0.0).collect();
        let lo = all.iter().copied().fold(f64::MAX, f64::min).max(1e-3);
        let hi = all.iter().copied().fold(0.0, f64::max).max(lo * 2.0);
        let max_n = self.lines.iter().flat_map(|l| l.p50.iter().map(|p| p.0)).max().unwrap_or(1).max(2);
        let xmax = (max_n as f64).log2();
        let mut chart = ChartBuilder::on(root)
            .caption(format!("Boot storm: N launches at once, launch-to-ready (workload `{}`)", self.workload), font(24.0))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(-0.25f64..xmax + 0.25, (lo / 1.5..hi * 1.5).log_scale())
            .map_err(perr)?;
        chart
            .configure_mesh()
            .x_labels((xmax as usize + 1) * 2 + 1)
            .x_label_formatter(&|x| if (x - x.round()).abs() < 1e-6 && *x >= 0.0 { format!("{}", 2f64.powf(x.round()) as u64) } else { String::new() })
            .y_label_formatter(&|v| fmt_ms(*v))
            .x_desc("N launches at once")
            .y_desc("from the storm's start to READY (log scale)")
            .axis_desc_style(font(17.0))
            .label_style(font(15.0))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(perr)?;
        for l in &self.lines {
            let c = platform_colour(&l.platform);
            let xy = |curve: &Curve| -> Vec<(f64, f64)> { curve.iter().filter(|p| p.1 > 0.0).map(|(n, v)| ((*n as f64).log2(), *v)).collect() };
            let p50 = xy(&l.p50);
            chart
                .draw_series(LineSeries::new(p50.clone(), c.stroke_width(3)))
                .map_err(perr)?
                .label(format!("{} p50", l.platform))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], c.stroke_width(3)));
            chart.draw_series(p50.iter().map(|pt| Circle::new(*pt, 5, c.filled()))).map_err(perr)?;
            let p99 = xy(&l.p99);
            chart
                .draw_series(DashedLineSeries::new(p99.clone(), 8, 5, c.stroke_width(2)))
                .map_err(perr)?
                .label(format!("{} p99", l.platform))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 8, y)], c.stroke_width(2)));
            chart.draw_series(p99.iter().map(|pt| TriangleMarker::new(*pt, 5, c.filled()))).map_err(perr)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(font(14.0))
            .draw()
            .map_err(perr)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_per_n() {
        assert_eq!(median_by_n(&[(1, 1.0), (1, 3.0), (2, 5.0)]), vec![(1, 2.0), (2, 5.0)]);
        assert!(median_by_n(&[]).is_empty());
    }
}
