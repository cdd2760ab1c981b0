//! Memory per idle instance: one bar per platform (median `mem.host`),
//! split into the part the plain process also needs (the workload's own
//! memory, shared by every platform) and the platform's overhead on top,
//! with min-max error bars and, where measured, the cgroup-charged memory.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::data::{median_of, pick_workload, platforms_with, values};
use super::{draw_category_labels, fmt_bytes, font, perr, platform_colour, Chart, Result};
use crate::model::{Metric, Sample};
use crate::platform::registry;

const MIB: f64 = 1048576.0;

pub struct MemoryBar {
    pub platform: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub cgroup: Option<f64>,
    pub n: usize,
}

pub struct MemoryChart {
    pub workload: String,
    /// The process platform's median mem.host (0 when not measured).
    pub baseline: f64,
    pub bars: Vec<MemoryBar>,
}

impl MemoryChart {
    pub fn from_samples(samples: &[Sample]) -> Option<MemoryChart> {
        let workload = pick_workload(samples, &Metric::MemHost, &[])?;
        let baseline = median_of(samples, registry::baseline(), Some(&workload), &Metric::MemHost, None).unwrap_or(0.0);
        let bars: Vec<MemoryBar> = platforms_with(samples, &Metric::MemHost)
            .into_iter()
            .filter_map(|p| {
                let v = values(samples, &p, Some(&workload), &Metric::MemHost, None);
                if v.is_empty() {
                    return None;
                }
                Some(MemoryBar {
                    median: crate::stats::median(&v),
                    min: v.iter().copied().fold(f64::MAX, f64::min),
                    max: v.iter().copied().fold(f64::MIN, f64::max),
                    cgroup: median_of(samples, &p, Some(&workload), &Metric::MemCgroup, None),
                    n: v.len(),
                    platform: p,
                })
            })
            .collect();
        (!bars.is_empty()).then_some(MemoryChart { workload, baseline, bars })
    }
}

impl Chart for MemoryChart {
    fn stem(&self) -> &'static str {
        "memory"
    }

    fn table(&self) -> super::DataTable {
        let mut t = super::DataTable::new(&["platform", "workload", "n", "median PSS bytes", "min bytes", "max bytes", "cgroup charge bytes"]);
        for b in &self.bars {
            let c = super::cell;
            t.push(vec![b.platform.clone(), self.workload.clone(), b.n.to_string(), c(b.median), c(b.min), c(b.max), b.cgroup.map(c).unwrap_or_default()]);
        }
        t
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let n = self.bars.len();
        let top_v = self.bars.iter().map(|b| b.max.max(b.cgroup.unwrap_or(0.0))).fold(0.0, f64::max) / MIB;
        let (area, legend) = root.split_vertically(root.dim_in_pixel().1 as i32 - 46);
        let mut chart = ChartBuilder::on(&area)
            .caption(format!("Host memory per idle instance (workload `{}`)", self.workload), font(24.0))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..(top_v * 1.25).max(1.0))
            .map_err(perr)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .x_label_formatter(&|_| String::new())
            .y_desc("MiB (PSS of the instance's host processes)")
            .axis_desc_style(font(18.0))
            .label_style(font(15.0))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(perr)?;
        let w = 0.3;
        let grey = RGBColor(200, 200, 200);
        for (i, b) in self.bars.iter().enumerate() {
            let x = i as f64;
            let c = platform_colour(&b.platform);
            let med = b.median / MIB;
            let base = (self.baseline / MIB).min(med);
            let plot = chart.plotting_area();
            plot.draw(&Rectangle::new([(x - w, 0.0), (x + w, base)], grey.filled())).map_err(perr)?;
            if med > base {
                plot.draw(&Rectangle::new([(x - w, base), (x + w, med)], c.filled())).map_err(perr)?;
            }
            plot.draw(&Rectangle::new([(x - w, 0.0), (x + w, med)], BLACK.stroke_width(1))).map_err(perr)?;
            // Error bar min..max.
            let (lo, hi) = (b.min / MIB, b.max / MIB);
            plot.draw(&PathElement::new(vec![(x, lo), (x, hi)], BLACK.stroke_width(2))).map_err(perr)?;
            for y in [lo, hi] {
                plot.draw(&PathElement::new(vec![(x - w / 3.0, y), (x + w / 3.0, y)], BLACK.stroke_width(2))).map_err(perr)?;
            }
            if let Some(cg) = b.cgroup {
                plot.draw(&TriangleMarker::new((x + w * 0.65, cg / MIB), 8, BLACK.filled())).map_err(perr)?;
            }
            let over = b.median - self.baseline;
            let label = if b.platform == registry::baseline() || self.baseline == 0.0 {
                fmt_bytes(b.median)
            } else {
                format!("{} ({}{})", fmt_bytes(b.median), if over >= 0.0 { "+" } else { "" }, fmt_bytes(over))
            };
            plot.draw(&Text::new(label, (x, hi.max(med) + top_v * 0.03), font(16.0).pos(Pos::new(HPos::Center, VPos::Bottom)))).map_err(perr)?;
        }
        let base_px = chart.backend_coord(&(0.0, 0.0));
        let labels: Vec<(String, (i32, i32))> =
            self.bars.iter().enumerate().map(|(i, b)| (format!("{} (n={})", b.platform, b.n), (chart.backend_coord(&(i as f64, 0.0)).0, base_px.1))).collect();
        draw_category_labels(root, &labels)?;
        // Legend.
        let y = 12;
        let mut x = 40;
        let entries: [(&str, Option<RGBColor>); 3] =
            [("workload's own memory (= process)", Some(grey)), ("platform overhead", Some(grey)), ("min-max over launches", None)];
        for (text, colour) in entries {
            match colour {
                // The overhead swatch shows every platform's colour.
                Some(_) if text == "platform overhead" => {
                    let cs: Vec<RGBColor> = self.bars.iter().filter(|b| b.platform != registry::baseline()).map(|b| platform_colour(&b.platform)).collect();
                    let k = cs.len().max(1) as i32;
                    for (j, c) in cs.iter().enumerate() {
                        let j = j as i32;
                        legend.draw(&Rectangle::new([(x + 18 * j / k, y), (x + 18 * (j + 1) / k, y + 18)], c.filled())).map_err(perr)?;
                    }
                }
                Some(c) => legend.draw(&Rectangle::new([(x, y), (x + 18, y + 18)], c.filled())).map_err(perr)?,
                None => legend.draw(&PathElement::new(vec![(x + 9, y), (x + 9, y + 18)], BLACK.stroke_width(2))).map_err(perr)?,
            }
            legend.draw(&Text::new(text.to_string(), (x + 24, y + 9), font(15.0).pos(Pos::new(HPos::Left, VPos::Center)))).map_err(perr)?;
            x += legend.estimate_text_size(text, &font(15.0)).map(|s| s.0 as i32).unwrap_or(300) + 52;
        }
        if self.bars.iter().any(|b| b.cgroup.is_some()) {
            legend.draw(&TriangleMarker::new((x + 9, y + 9), 8, BLACK.filled())).map_err(perr)?;
            legend.draw(&Text::new("cgroup-charged".to_string(), (x + 24, y + 9), font(15.0).pos(Pos::new(HPos::Left, VPos::Center)))).map_err(perr)?;
        }
        Ok(())
    }
}
