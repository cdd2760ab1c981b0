//! The isolation probe matrix as a grid: one row per probe, one column per
//! platform, each cell coloured by its result (isolated, exposed,
//! not applicable, error) and labelled with it.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{font, perr, Chart, Result};
use crate::model::{Outcome, ProbeRow};

/// Row height, header height and first-column width, in pixels.
const ROW: u32 = 22;
const HEADER: u32 = 96;
const LEGEND: u32 = 56;
const LABEL_W: u32 = 250;
const WIDTH: u32 = 1000;

pub struct ProbeChart {
    pub platforms: Vec<String>,
    /// (probe id, category, result per platform; `None` when not reported).
    pub rows: Vec<(String, String, Vec<Option<Outcome>>)>,
}

/// The colour of a result: green for isolated, vermillion for exposed
/// (Okabe-Ito), light grey for not applicable, dark grey for error.
pub fn outcome_colour(o: Option<Outcome>) -> RGBColor {
    match o {
        Some(Outcome::Isolated) => RGBColor(0x00, 0x9E, 0x73),
        Some(Outcome::Exposed) => RGBColor(0xD5, 0x5E, 0x00),
        Some(Outcome::NotApplicable) => RGBColor(0xE4, 0xE4, 0xE4),
        Some(Outcome::Error) | None => RGBColor(0x55, 0x55, 0x55),
    }
}

fn label(o: Option<Outcome>) -> &'static str {
    match o {
        Some(Outcome::Isolated) => "isolated",
        Some(Outcome::Exposed) => "exposed",
        Some(Outcome::NotApplicable) => "n/a",
        Some(Outcome::Error) => "error",
        None => "-",
    }
}

impl ProbeChart {
    /// The grid of `rows` (probes.csv), probes and platforms in first-seen
    /// order; `None` when there are no rows.
    pub fn from_rows(rows: &[ProbeRow]) -> Option<ProbeChart> {
        let mut platforms: Vec<String> = Vec::new();
        let mut ids: Vec<(String, String)> = Vec::new();
        for r in rows {
            if !platforms.contains(&r.platform) {
                platforms.push(r.platform.clone());
            }
            if !ids.iter().any(|(i, _)| *i == r.probe) {
                ids.push((r.probe.clone(), r.category.clone()));
            }
        }
        let grid = ids
            .into_iter()
            .map(|(id, cat)| {
                let cells = platforms.iter().map(|p| rows.iter().find(|r| r.platform == *p && r.probe == id).map(|r| r.result)).collect();
                (id, cat, cells)
            })
            .collect::<Vec<_>>();
        (!grid.is_empty()).then_some(ProbeChart { platforms, rows: grid })
    }
}

impl Chart for ProbeChart {
    fn stem(&self) -> &'static str {
        "probes"
    }

    fn table(&self) -> super::DataTable {
        let mut header = vec!["probe", "category"];
        header.extend(self.platforms.iter().map(String::as_str));
        let mut t = super::DataTable::new(&header);
        for (id, cat, results) in &self.rows {
            let mut row = vec![id.clone(), cat.clone()];
            row.extend(results.iter().map(|r| r.map(|o| o.to_string()).unwrap_or_else(|| "-".into())));
            t.push(row);
        }
        t
    }

    fn size(&self) -> (u32, u32) {
        (WIDTH, HEADER + ROW * self.rows.len() as u32 + LEGEND)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let centre = |size: f64| font(size).pos(Pos::new(HPos::Center, VPos::Center));
        let title = "Isolation probes: what the workload can see of, or do to, the host";
        root.draw(&Text::new(title, (WIDTH as i32 / 2, 24), centre(22.0))).map_err(perr)?;
        let cols = self.platforms.len().max(1) as u32;
        let col_w = (WIDTH - LABEL_W - 20) / cols;
        let x0 = LABEL_W as i32;
        let y0 = HEADER as i32;
        for (c, p) in self.platforms.iter().enumerate() {
            let x = x0 + (col_w * c as u32 + col_w / 2) as i32;
            root.draw(&Text::new(p.clone(), (x, y0 - 18), centre(17.0))).map_err(perr)?;
        }
        root.draw(&Text::new("probe", (12, y0 - 18), font(17.0).pos(Pos::new(HPos::Left, VPos::Center)))).map_err(perr)?;
        for (r, (id, _cat, cells)) in self.rows.iter().enumerate() {
            let y = y0 + (ROW * r as u32) as i32;
            root.draw(&Text::new(id.clone(), (12, y + ROW as i32 / 2), font(14.0).pos(Pos::new(HPos::Left, VPos::Center)))).map_err(perr)?;
            for (c, o) in cells.iter().enumerate() {
                let x = x0 + (col_w * c as u32) as i32;
                let rect = [(x + 1, y + 1), (x + col_w as i32 - 1, y + ROW as i32 - 1)];
                root.draw(&Rectangle::new(rect, outcome_colour(*o).filled())).map_err(perr)?;
                let text_colour = if matches!(o, Some(Outcome::NotApplicable)) { BLACK } else { WHITE };
                let style = centre(13.0).color(&text_colour);
                root.draw(&Text::new(label(*o), (x + col_w as i32 / 2, y + ROW as i32 / 2), style)).map_err(perr)?;
            }
        }
        // Legend.
        let ly = y0 + (ROW * self.rows.len() as u32) as i32 + 20;
        let mut x = LABEL_W as i32;
        for o in [Outcome::Isolated, Outcome::Exposed, Outcome::NotApplicable, Outcome::Error] {
            root.draw(&Rectangle::new([(x, ly), (x + 18, ly + 18)], outcome_colour(Some(o)).filled())).map_err(perr)?;
            root.draw(&Text::new(o.as_str(), (x + 24, ly + 9), font(15.0).pos(Pos::new(HPos::Left, VPos::Center)))).map_err(perr)?;
            x += 170;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(platform: &str, probe: &str, result: Outcome) -> ProbeRow {
        ProbeRow { run_id: "r".into(), platform: platform.into(), probe: probe.into(), category: "kernel".into(), result, evidence: String::new() }
    }

    #[test]
    fn grid_renders_with_one_cell_per_probe_and_platform() {
        let rows = vec![
            row("process", "kernel.shared", Outcome::Exposed),
            row("vm-bare", "kernel.shared", Outcome::Isolated),
            row("process", "proc.host_pids", Outcome::Exposed),
        ];
        let c = ProbeChart::from_rows(&rows).unwrap();
        assert_eq!(c.platforms, ["process", "vm-bare"]);
        assert_eq!(c.rows[1].2, vec![Some(Outcome::Exposed), None], "a probe a platform did not report is a gap, not isolated");
        let d = tempfile::tempdir().unwrap();
        let files = super::super::render(&c, d.path()).unwrap();
        let png = files.iter().find(|p| p.extension().is_some_and(|e| e == "png")).unwrap();
        let dec = png::Decoder::new(std::fs::File::open(png).unwrap());
        let info = dec.read_info().unwrap();
        assert_eq!((info.info().width, info.info().height), c.size());
        assert!(ProbeChart::from_rows(&[]).is_none());
    }
}
