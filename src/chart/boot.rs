//! Boot latency distribution per platform: box plots on a log scale, the
//! median written next to each box.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::data::{box_stats, pick_workload, platforms_with, values, BoxStats};
use super::{draw_category_labels, fmt_ms, font, perr, platform_colour, Chart, Result};
use crate::model::{Metric, Sample};

pub struct BootChart {
    pub workload: String,
    pub boxes: Vec<(String, BoxStats)>,
}

impl BootChart {
    /// The `boot` rows of the `ready` workload (else the first workload
    /// with boot rows); None when there are none.
    pub fn from_samples(samples: &[Sample]) -> Option<BootChart> {
        let workload = pick_workload(samples, &Metric::Boot, &["ready"])?;
        let boxes: Vec<(String, BoxStats)> = platforms_with(samples, &Metric::Boot)
            .into_iter()
            .filter_map(|p| {
                let v: Vec<f64> = values(samples, &p, Some(&workload), &Metric::Boot, None).into_iter().filter(|x| *x > 0.0).collect();
                box_stats(&v).map(|b| (p, b))
            })
            .collect();
        (!boxes.is_empty()).then_some(BootChart { workload, boxes })
    }
}

impl Chart for BootChart {
    fn stem(&self) -> &'static str {
        "boot"
    }

    fn table(&self) -> super::DataTable {
        let mut t = super::DataTable::new(&["platform", "workload", "n", "whisker low ms", "q1 ms", "median ms", "q3 ms", "whisker high ms", "outliers"]);
        for (p, b) in &self.boxes {
            let c = super::cell;
            t.push(vec![p.clone(), self.workload.clone(), b.n.to_string(), c(b.low), c(b.q1), c(b.median), c(b.q3), c(b.high), b.outliers.len().to_string()]);
        }
        t
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let lo = self.boxes.iter().map(|(_, b)| b.low.min(b.outliers.first().copied().unwrap_or(f64::MAX))).fold(f64::MAX, f64::min);
        let hi = self.boxes.iter().map(|(_, b)| b.high.max(b.outliers.last().copied().unwrap_or(0.0))).fold(0.0, f64::max);
        let (lo, hi) = (lo.max(1e-4) / 2.0, hi * 2.0);
        let n = self.boxes.len();
        let counts: Vec<usize> = self.boxes.iter().map(|(_, b)| b.n).collect();
        let n_text = if counts.iter().all(|c| *c == counts[0]) { format!("n={} launches each", counts[0]) } else { "n varies".into() };
        let mut chart = ChartBuilder::on(root)
            .caption(format!("Launch-to-ready latency per platform (workload `{}`, {n_text})", self.workload), font(24.0))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(80)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5 + 0.45), (lo..hi).log_scale())
            .map_err(perr)?;
        // Our own 1-2-5 ticks: plotters' log axis leaves decades unlabelled.
        chart
            .configure_mesh()
            .disable_x_mesh()
            .disable_y_mesh()
            .x_labels(0)
            .y_labels(0)
            .x_label_formatter(&|_| String::new())
            .y_label_formatter(&|_| String::new())
            .y_desc("boot time, ms (log scale)")
            .axis_desc_style(font(18.0))
            .label_style(font(15.0))
            .draw()
            .map_err(perr)?;
        let ticks = log_ticks(lo, hi);
        for t in &ticks {
            chart.plotting_area().draw(&PathElement::new(vec![(-0.5, *t), (n as f64 - 0.05, *t)], RGBColor(215, 215, 215).stroke_width(1))).map_err(perr)?;
            let (px, py) = chart.backend_coord(&(-0.5, *t));
            root.draw(&Text::new(fmt_axis(*t), (px - 8, py), font(15.0).pos(Pos::new(HPos::Right, VPos::Center)))).map_err(perr)?;
        }
        let w = 0.28;
        for (i, (p, b)) in self.boxes.iter().enumerate() {
            let x = i as f64;
            let c = platform_colour(p);
            let plot = chart.plotting_area();
            // Whiskers and caps.
            plot.draw(&PathElement::new(vec![(x, b.low), (x, b.q1)], c.stroke_width(2))).map_err(perr)?;
            plot.draw(&PathElement::new(vec![(x, b.q3), (x, b.high)], c.stroke_width(2))).map_err(perr)?;
            for y in [b.low, b.high] {
                plot.draw(&PathElement::new(vec![(x - w / 2.0, y), (x + w / 2.0, y)], c.stroke_width(2))).map_err(perr)?;
            }
            // Box, median.
            plot.draw(&Rectangle::new([(x - w, b.q1), (x + w, b.q3)], c.mix(0.30).filled())).map_err(perr)?;
            plot.draw(&Rectangle::new([(x - w, b.q1), (x + w, b.q3)], c.stroke_width(2))).map_err(perr)?;
            plot.draw(&PathElement::new(vec![(x - w, b.median), (x + w, b.median)], BLACK.stroke_width(3))).map_err(perr)?;
            for o in &b.outliers {
                plot.draw(&Circle::new((x, *o), 3, c.stroke_width(1))).map_err(perr)?;
            }
            let label = format!("median {}", fmt_ms(b.median));
            plot.draw(&Text::new(label, (x + w + 0.03, b.median), font(16.0).pos(Pos::new(HPos::Left, VPos::Center)))).map_err(perr)?;
        }
        let base = chart.backend_coord(&(0.0, lo));
        let labels: Vec<(String, (i32, i32))> =
            self.boxes.iter().enumerate().map(|(i, (p, _))| (p.clone(), (chart.backend_coord(&(i as f64, lo)).0, base.1))).collect();
        draw_category_labels(root, &labels)?;
        Ok(())
    }
}

/// Axis numbers without trailing noise (0.01, 0.1, 1, 10, ...).
pub fn fmt_axis(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Ticks at 1, 2 and 5 times powers of ten within `lo..hi` (only 1s when
/// the range spans more than three decades).
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    if !(lo > 0.0 && hi > lo) {
        return out;
    }
    let dense = (hi / lo).log10() <= 3.0;
    let mut e = lo.log10().floor() as i32;
    while 10f64.powi(e) <= hi {
        for m in if dense { &[1.0, 2.0, 5.0][..] } else { &[1.0][..] } {
            let v = m * 10f64.powi(e);
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
        e += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks() {
        assert_eq!(log_ticks(0.15, 3.0), vec![0.2, 0.5, 1.0, 2.0]);
        assert_eq!(log_ticks(0.01, 1e5), vec![0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0]);
        assert_eq!(fmt_axis(0.2), "0.2");
        assert_eq!(fmt_axis(2000.0), "2000");
    }
}
