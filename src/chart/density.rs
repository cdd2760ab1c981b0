//! Density curve: host MemAvailable drop per instance and launch rate as N
//! idle instances run at once (N on a log2 axis), one line per platform.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::data::{by_iteration, pick_workload, platforms_with, Curve};
use super::{font, perr, platform_colour, Chart, Result};
use crate::model::{Metric, Sample};

const MIB: f64 = 1048576.0;

pub struct DensityChart {
    pub workload: String,
    /// Per platform: (N, MiB per instance) and (N, instances/s).
    pub lines: Vec<(String, Curve, Curve)>,
}

impl DensityChart {
    pub fn from_samples(samples: &[Sample]) -> Option<DensityChart> {
        let workload = pick_workload(samples, &Metric::DensityMemPerInstance, &[])?;
        let lines: Vec<_> = platforms_with(samples, &Metric::DensityMemPerInstance)
            .into_iter()
            .map(|p| {
                let mem = by_iteration(samples, &p, Some(&workload), &Metric::DensityMemPerInstance, None).into_iter().map(|(n, v)| (n, v / MIB)).collect();
                let rate = by_iteration(samples, &p, Some(&workload), &Metric::DensityLaunchRate, None);
                (p, mem, rate)
            })
            .collect();
        (!lines.is_empty()).then_some(DensityChart { workload, lines })
    }
}

fn panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, title: &str, ydesc: &str, lines: &[(String, Vec<(u32, f64)>)]) -> Result<()> {
    let max_n = lines.iter().flat_map(|l| l.1.iter().map(|p| p.0)).max().unwrap_or(1).max(2);
    let top = lines.iter().flat_map(|l| l.1.iter().map(|p| p.1)).fold(0.0, f64::max);
    let xmax = (max_n as f64).log2();
    let mut chart = ChartBuilder::on(area)
        .caption(title, font(20.0))
        .margin(14)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.25f64..xmax + 0.25, 0f64..(top * 1.2).max(1e-3))
        .map_err(perr)?;
    chart
        .configure_mesh()
        .x_labels((xmax as usize + 1) * 2 + 1)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-6 && *x >= 0.0 {
                format!("{}", 2f64.powf(x.round()) as u64)
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| if *v >= 100.0 { format!("{v:.0}") } else { format!("{v:.1}") })
        .x_desc("N idle instances running at once")
        .y_desc(ydesc)
        .axis_desc_style(font(16.0))
        .label_style(font(14.0))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(perr)?;
    for (p, pts) in lines {
        let c = platform_colour(p);
        let xy: Vec<(f64, f64)> = pts.iter().map(|(n, v)| ((*n as f64).log2(), *v)).collect();
        chart
            .draw_series(LineSeries::new(xy.clone(), c.stroke_width(3)))
            .map_err(perr)?
            .label(p.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
        chart.draw_series(xy.iter().map(|pt| Circle::new(*pt, 5, c.filled()))).map_err(perr)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(font(15.0))
        .draw()
        .map_err(perr)?;
    Ok(())
}

impl Chart for DensityChart {
    fn stem(&self) -> &'static str {
        "density"
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let root = root.titled(&format!("Density: N idle instances at once (workload `{}`)", self.workload), font(24.0)).map_err(perr)?;
        let (l, r) = root.split_horizontally(root.dim_in_pixel().0 / 2);
        let mem: Vec<(String, Vec<(u32, f64)>)> = self.lines.iter().map(|x| (x.0.clone(), x.1.clone())).collect();
        let rate: Vec<(String, Vec<(u32, f64)>)> = self.lines.iter().map(|x| (x.0.clone(), x.2.clone())).collect();
        panel(&l, "host MemAvailable drop per instance", "MiB per instance", &mem)?;
        panel(&r, "launch rate (sequential launches)", "instances per second", &rate)?;
        Ok(())
    }
}
