//! Boot phase breakdown: one horizontal bar per platform, split into its
//! phases (`boot.<phase>` medians) as shares of the bar, the total written
//! at the end. Shares keep a 1 ms launch and an 85 s launch both readable.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::data::{median_of, pick_workload, platforms_with};
use super::{fmt_ms, font, part_colour, perr, Chart, Result};
use crate::model::{Metric, Sample};

pub struct PhaseChart {
    pub workload: String,
    /// Per platform: (phase, median ms) in launch order.
    pub bars: Vec<(String, Vec<(String, f64)>)>,
    /// Every phase name, in first-seen order (fixes its colour).
    pub phases: Vec<String>,
}

impl PhaseChart {
    pub fn from_samples(samples: &[Sample]) -> Option<PhaseChart> {
        let workload = pick_workload(samples, &Metric::Boot, &["ready"])?;
        let mut phases: Vec<String> = Vec::new();
        let mut bars = Vec::new();
        for p in platforms_with(samples, &Metric::Boot) {
            let mut mine: Vec<Metric> = Vec::new();
            for s in samples.iter().filter(|s| s.platform == p && s.workload == workload && matches!(s.metric, Metric::BootPhase(_))) {
                if !mine.contains(&s.metric) {
                    mine.push(s.metric.clone());
                }
            }
            let parts: Vec<(String, f64)> = mine
                .iter()
                .filter_map(|m| {
                    let Metric::BootPhase(name) = m else { return None };
                    median_of(samples, &p, Some(&workload), m, None).map(|v| (name.clone(), v.max(0.0)))
                })
                .collect();
            for (name, _) in &parts {
                if !phases.contains(name) {
                    phases.push(name.clone());
                }
            }
            if parts.iter().map(|x| x.1).sum::<f64>() > 0.0 {
                bars.push((p, parts));
            }
        }
        (!bars.is_empty()).then_some(PhaseChart { workload, bars, phases })
    }

    fn colour(&self, phase: &str) -> RGBColor {
        part_colour(self.phases.iter().position(|p| p == phase).unwrap_or(0))
    }
}

impl Chart for PhaseChart {
    fn stem(&self) -> &'static str {
        "phases"
    }

    fn table(&self) -> super::DataTable {
        let mut t = super::DataTable::new(&["platform", "workload", "phase", "median ms"]);
        for (p, phases) in &self.bars {
            for (ph, v) in phases {
                t.push(vec![p.clone(), self.workload.clone(), ph.clone(), super::cell(*v)]);
            }
        }
        t
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let n = self.bars.len();
        // Leave the bottom of the image for the legend.
        let legend_rows = legend_layout(root, &self.phases).len().max(1);
        let (top, bottom) = root.split_vertically(root.dim_in_pixel().1 as i32 - 30 * legend_rows as i32 - 16);
        let mut chart = ChartBuilder::on(&top)
            .caption(format!("Where boot time goes (workload `{}`, median of each phase)", self.workload), font(24.0))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(120)
            .build_cartesian_2d(0f64..122f64, -0.5f64..(n as f64 - 0.5))
            .map_err(perr)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .y_label_formatter(&|_| String::new())
            .x_labels(12)
            .x_label_formatter(&|v| if *v <= 100.0 + 1e-9 { format!("{v:.0}%") } else { String::new() })
            .x_desc("share of the platform's boot time")
            .axis_desc_style(font(18.0))
            .label_style(font(15.0))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(perr)?;
        let h = 0.32;
        for (i, (p, parts)) in self.bars.iter().enumerate() {
            let y = (n - 1 - i) as f64;
            let total: f64 = parts.iter().map(|x| x.1).sum();
            let mut x0 = 0.0;
            let plot = chart.plotting_area();
            for (name, v) in parts {
                let share = v / total * 100.0;
                let c = self.colour(name);
                plot.draw(&Rectangle::new([(x0, y - h), (x0 + share, y + h)], c.filled())).map_err(perr)?;
                plot.draw(&Rectangle::new([(x0, y - h), (x0 + share, y + h)], WHITE.stroke_width(1))).map_err(perr)?;
                if share >= 9.0 {
                    let text_colour = if luminance(c) < 0.5 { WHITE } else { BLACK };
                    let style = font(14.0).color(&text_colour).pos(Pos::new(HPos::Center, VPos::Center));
                    plot.draw(&Text::new(fmt_ms(*v), (x0 + share / 2.0, y), style)).map_err(perr)?;
                }
                x0 += share;
            }
            plot.draw(&Text::new(format!("total {}", fmt_ms(total)), (101.0, y), font(16.0).pos(Pos::new(HPos::Left, VPos::Center)))).map_err(perr)?;
            let (px, py) = chart.backend_coord(&(0.0, y));
            top.draw(&Text::new(p.clone(), (px - 10, py), font(17.0).pos(Pos::new(HPos::Right, VPos::Center)))).map_err(perr)?;
        }
        draw_legend(&bottom, &self.phases, |p| self.colour(p))?;
        Ok(())
    }
}

fn luminance(c: RGBColor) -> f64 {
    (0.299 * c.0 as f64 + 0.587 * c.1 as f64 + 0.114 * c.2 as f64) / 255.0
}

/// Rows of legend entries that fit the area's width.
fn legend_layout<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, names: &[String]) -> Vec<Vec<(String, i32)>> {
    let width = area.dim_in_pixel().0 as i32 - 40;
    let mut rows: Vec<Vec<(String, i32)>> = vec![Vec::new()];
    let mut x = 0;
    for n in names {
        let w = area.estimate_text_size(n, &font(16.0)).map(|s| s.0 as i32).unwrap_or(8 * n.len() as i32) + 44;
        if x + w > width && x > 0 {
            rows.push(Vec::new());
            x = 0;
        }
        if let Some(r) = rows.last_mut() {
            r.push((n.clone(), w));
        }
        x += w;
    }
    rows
}

/// A centred legend of coloured squares and names.
pub fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, names: &[String], colour: impl Fn(&str) -> RGBColor) -> Result<()> {
    let (w, _) = area.dim_in_pixel();
    for (r, row) in legend_layout(area, names).iter().enumerate() {
        let total: i32 = row.iter().map(|x| x.1).sum();
        let mut x = (w as i32 - total) / 2;
        let y = 8 + 30 * r as i32;
        for (name, wd) in row {
            area.draw(&Rectangle::new([(x, y), (x + 18, y + 18)], colour(name).filled())).map_err(perr)?;
            area.draw(&Text::new(name.clone(), (x + 24, y + 9), font(16.0).pos(Pos::new(HPos::Left, VPos::Center)))).map_err(perr)?;
            x += wd;
        }
    }
    Ok(())
}
