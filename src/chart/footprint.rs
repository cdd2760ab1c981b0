//! Footprint vs N: bytes allocated on disk to start N instances, one line
//! per platform and storage method (log scale: a full disk copy per
//! instance and a shared read-only image differ by orders of magnitude).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::boot::fmt_axis;
use super::data::{by_iteration, Curve};
use super::{font, perr, platform_colour, Chart, Result};
use crate::model::{Metric, Sample};
use crate::platform::registry;

const MIB: f64 = 1048576.0;

pub struct FootprintChart {
    /// (platform, method, [(N, bytes allocated)]).
    pub lines: Vec<(String, String, Curve)>,
}

impl FootprintChart {
    pub fn from_samples(samples: &[Sample]) -> Option<FootprintChart> {
        let mut keys: Vec<(String, String)> = Vec::new();
        for s in samples.iter().filter(|s| s.metric == Metric::ImageNInstances && s.unit == "bytes") {
            let k = (s.platform.clone(), s.workload.clone());
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        keys.sort_by_key(|(p, _)| registry::order(p));
        let lines: Vec<_> = keys
            .into_iter()
            .map(|(p, m)| {
                let pts = by_iteration(samples, &p, Some(&m), &Metric::ImageNInstances, Some("bytes"));
                (p, m, pts)
            })
            .filter(|l| !l.2.is_empty())
            .collect();
        (!lines.is_empty()).then_some(FootprintChart { lines })
    }
}

impl Chart for FootprintChart {
    fn stem(&self) -> &'static str {
        "footprint"
    }

    fn table(&self) -> super::DataTable {
        let mut t = super::DataTable::new(&["platform", "storage", "N instances", "bytes on disk"]);
        for (p, m, pts) in &self.lines {
            for (n, v) in pts {
                t.push(vec![p.clone(), m.clone(), n.to_string(), super::cell(*v)]);
            }
        }
        t
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let max_n = self.lines.iter().flat_map(|l| l.2.iter().map(|p| p.0)).max().unwrap_or(1);
        let vals = self.lines.iter().flat_map(|l| l.2.iter().map(|p| p.1 / MIB)).filter(|v| *v > 0.0);
        let (lo, hi) = vals.fold((f64::MAX, 0f64), |(a, b), v| (a.min(v), b.max(v)));
        let (lo, hi) = if hi > 0.0 { (lo / 2.0, hi * 3.0) } else { (0.001, 1.0) };
        let mut chart = ChartBuilder::on(root)
            .caption("Disk bytes to start N instances (allocated, log scale)", font(24.0))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(0.5f64..(max_n as f64 + 0.5), (lo..hi).log_scale())
            .map_err(perr)?;
        chart
            .configure_mesh()
            .x_labels(max_n as usize + 1)
            .x_label_formatter(&|x| {
                if (x - x.round()).abs() < 1e-6 {
                    format!("{}", x.round() as u64)
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|v| fmt_axis(*v))
            .x_desc("N instances")
            .y_desc("MiB on disk (shared + per-instance)")
            .axis_desc_style(font(18.0))
            .label_style(font(15.0))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(perr)?;
        for (p, m, pts) in &self.lines {
            let c = platform_colour(p);
            let xy: Vec<(f64, f64)> = pts.iter().map(|(n, v)| (*n as f64, (v / MIB).max(lo))).collect();
            let method = m.clone();
            chart.draw_series(LineSeries::new(xy.clone(), c.stroke_width(3))).map_err(perr)?.label(format!("{p} / {m}")).legend(move |(x, y)| {
                EmptyElement::at((x, y)) + PathElement::new(vec![(-2, 0), (20, 0)], c.stroke_width(3)) + marker::<DB>(&method, (9, 0), c)
            });
            for pt in xy {
                chart.plotting_area().draw(&(EmptyElement::at(pt) + marker::<DB>(m, (0, 0), c))).map_err(perr)?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(font(15.0))
            .draw()
            .map_err(perr)?;
        Ok(())
    }
}

/// The marker of a storage method, so methods of one platform differ.
fn marker<DB: DrawingBackend>(method: &str, at: (i32, i32), c: RGBColor) -> DynElement<'static, DB, (i32, i32)> {
    // `debian/qcow2-synthetic` is drawn as `qcow2`.
    let method = method.rsplit('/').next().unwrap_or(method).trim_end_matches("-synthetic");
    match method {
        "overlay" | "qcow2" => TriangleMarker::new(at, 7, c.filled()).into_dyn(),
        "copy" => Rectangle::new([(at.0 - 6, at.1 - 6), (at.0 + 6, at.1 + 6)], c.filled()).into_dyn(),
        "reflink" => Cross::new(at, 6, c.stroke_width(3)).into_dyn(),
        _ => Circle::new(at, 6, c.filled()).into_dyn(),
    }
}
