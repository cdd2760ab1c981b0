//! Capacity plan: instances per host for each platform as bars, with the
//! range its inputs' confidence intervals allow and the limit that binds
//! written on each bar.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{cell, draw_category_labels, font, perr, platform_colour, Chart, DataTable, Result};

/// One platform's bar.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanBar {
    pub platform: String,
    pub per_host: f64,
    pub low: f64,
    pub high: f64,
    /// The limit that binds (`memory`, `CPU`, `disk`).
    pub bound_by: String,
}

pub struct PlanChart {
    pub bars: Vec<PlanBar>,
}

impl PlanChart {
    pub fn new(bars: Vec<PlanBar>) -> Option<PlanChart> {
        (!bars.is_empty()).then_some(PlanChart { bars })
    }
}

fn group(v: f64) -> String {
    super::group_digits(v)
}

impl Chart for PlanChart {
    fn stem(&self) -> &'static str {
        "plan"
    }

    fn table(&self) -> DataTable {
        let mut t = DataTable::new(&["platform", "instances per host", "low", "high", "bound by"]);
        for b in &self.bars {
            t.push(vec![b.platform.clone(), cell(b.per_host), cell(b.low), cell(b.high), b.bound_by.clone()]);
        }
        t
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let n = self.bars.len();
        let top = self.bars.iter().map(|b| if b.high.is_finite() { b.high } else { b.per_host }).fold(0.0, f64::max).max(1.0);
        let mut chart = ChartBuilder::on(root)
            .caption("Capacity plan: instances per host (the limit that binds on each bar)", font(22.0))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(90)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..top * 1.2)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .x_label_formatter(&|_| String::new())
            .y_label_formatter(&|v| group(*v))
            .y_desc("instances per host")
            .axis_desc_style(font(17.0))
            .label_style(font(15.0))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(perr)?;
        let w = 0.3;
        let plot = chart.plotting_area();
        for (i, b) in self.bars.iter().enumerate() {
            let x = i as f64;
            let c = platform_colour(&b.platform);
            plot.draw(&Rectangle::new([(x - w, 0.0), (x + w, b.per_host)], c.filled())).map_err(perr)?;
            plot.draw(&Rectangle::new([(x - w, 0.0), (x + w, b.per_host)], BLACK.stroke_width(1))).map_err(perr)?;
            let hi = if b.high.is_finite() { b.high } else { b.per_host };
            if b.low < hi {
                plot.draw(&PathElement::new(vec![(x, b.low), (x, hi)], BLACK.stroke_width(2))).map_err(perr)?;
                for y in [b.low, hi] {
                    plot.draw(&PathElement::new(vec![(x - w / 3.0, y), (x + w / 3.0, y)], BLACK.stroke_width(2))).map_err(perr)?;
                }
            }
            let label = format!("{} ({})", group(b.per_host), b.bound_by);
            plot.draw(&Text::new(label, (x, hi.max(b.per_host) + top * 0.03), font(16.0).pos(Pos::new(HPos::Center, VPos::Bottom)))).map_err(perr)?;
        }
        let base = chart.backend_coord(&(0.0, 0.0));
        let labels: Vec<(String, (i32, i32))> =
            self.bars.iter().enumerate().map(|(i, b)| (b.platform.clone(), (chart.backend_coord(&(i as f64, 0.0)).0, base.1))).collect();
        draw_category_labels(root, &labels)?;
        Ok(())
    }
}
