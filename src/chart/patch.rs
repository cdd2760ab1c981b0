//! The patch drill vs N: time until all N instances are patched and ready
//! again (left) and bytes the fix wrote (right), one line per platform and
//! storage (log scale: one layer and N disk copies differ by orders of
//! magnitude).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::boot::fmt_axis;
use super::data::{by_iteration, Curve};
use super::{font, perr, platform_colour, Chart, Result};
use crate::model::{Metric, Sample};
use crate::platform::registry;

const MIB: f64 = 1048576.0;

pub struct PatchChart {
    /// (platform, fix/storage, ms curve, bytes curve).
    pub lines: Vec<(String, String, Curve, Curve)>,
}

impl PatchChart {
    pub fn from_samples(samples: &[Sample]) -> Option<PatchChart> {
        let mut keys: Vec<(String, String)> = Vec::new();
        for s in samples.iter().filter(|s| s.metric == Metric::PatchMs) {
            let k = (s.platform.clone(), s.workload.clone());
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        keys.sort_by_key(|(p, _)| registry::order(p));
        let lines: Vec<_> = keys
            .into_iter()
            .map(|(p, w)| {
                let ms = by_iteration(samples, &p, Some(&w), &Metric::PatchMs, None);
                let bytes = by_iteration(samples, &p, Some(&w), &Metric::PatchBytesWritten, None);
                (p, w, ms, bytes)
            })
            .filter(|l| !l.2.is_empty())
            .collect();
        (!lines.is_empty()).then_some(PatchChart { lines })
    }
}

impl Chart for PatchChart {
    fn stem(&self) -> &'static str {
        "patch"
    }

    fn table(&self) -> super::DataTable {
        let mut t = super::DataTable::new(&["platform", "fix/storage", "N instances", "ms to all patched and ready", "bytes written"]);
        for (p, w, ms, bytes) in &self.lines {
            for (n, v) in ms {
                let b = bytes.iter().find(|x| x.0 == *n).map(|x| x.1).unwrap_or(f64::NAN);
                t.push(vec![p.clone(), w.clone(), n.to_string(), super::cell(*v), super::cell(b)]);
            }
        }
        t
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let (w, _) = root.dim_in_pixel();
        let (left, right) = root.split_horizontally(w / 2);
        panel(&left, &self.lines.iter().map(|l| (l.0.as_str(), l.1.as_str(), &l.2)).collect::<Vec<_>>(), "Time to all N patched and ready (log)", "ms", 1.0)?;
        panel(&right, &self.lines.iter().map(|l| (l.0.as_str(), l.1.as_str(), &l.3)).collect::<Vec<_>>(), "Bytes the fix wrote (log)", "MiB written", MIB)?;
        Ok(())
    }
}

fn panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, lines: &[(&str, &str, &Curve)], caption: &str, y: &str, scale: f64) -> Result<()> {
    let max_n = lines.iter().flat_map(|l| l.2.iter().map(|p| p.0)).max().unwrap_or(1);
    let vals = lines.iter().flat_map(|l| l.2.iter().map(|p| p.1 / scale)).filter(|v| *v > 0.0);
    let (lo, hi) = vals.fold((f64::MAX, 0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if hi > 0.0 { (lo / 2.0, hi * 4.0) } else { (0.001, 1.0) };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font(22.0))
        .margin(14)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(0.5f64..(max_n as f64 + 0.5), (lo..hi).log_scale())
        .map_err(perr)?;
    chart
        .configure_mesh()
        .x_labels(max_n as usize + 1)
        .x_label_formatter(&|x| if (x - x.round()).abs() < 1e-6 { format!("{}", x.round() as u64) } else { String::new() })
        .y_label_formatter(&|v| fmt_axis(*v))
        .x_desc("N instances")
        .y_desc(y)
        .axis_desc_style(font(17.0))
        .label_style(font(14.0))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(perr)?;
    for (p, w, pts) in lines {
        let c = platform_colour(p);
        let xy: Vec<(f64, f64)> = pts.iter().map(|(n, v)| (*n as f64, (v / scale).max(lo))).collect();
        let dashed = w.ends_with("qcow2");
        let style = c.stroke_width(if dashed { 2 } else { 3 });
        chart
            .draw_series(LineSeries::new(xy.clone(), style))
            .map_err(perr)?
            .label(format!("{p} {w}"))
            .legend(move |(x, y)| PathElement::new(vec![(x - 2, y), (x + 20, y)], style));
        for pt in xy {
            if dashed {
                chart.plotting_area().draw(&(EmptyElement::at(pt) + TriangleMarker::new((0, 0), 6, c.filled()))).map_err(perr)?;
            } else {
                chart.plotting_area().draw(&(EmptyElement::at(pt) + Circle::new((0, 0), 5, c.filled()))).map_err(perr)?;
            }
        }
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
