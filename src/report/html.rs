//! report.html: the same report as report.md, as one self-contained page
//! to open in a browser. The markdown is rendered to HTML (pulldown-cmark);
//! each chart is inlined as its SVG, with the chart's data table
//! (`charts/<stem>.csv`) one click away in a `<details>`; a table of
//! contents links the sections. No script, no font, no image or style is
//! fetched: the file shows the same anywhere, offline.

use std::fmt::Write as _;
use std::path::Path;

use pulldown_cmark::{html, Event, Options, Parser, Tag, TagEnd};

use crate::chart::DataTable;

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// A chart reference of report.md (`![alt](charts/<stem>.png)`): its
/// stem and alt text.
fn chart_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim().strip_prefix("![")?;
    let (alt, rest) = rest.split_once("](charts/")?;
    let stem = rest.strip_suffix(".png)")?;
    (!stem.is_empty() && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')).then_some((stem, alt))
}

/// The figure of one chart: its SVG inline, then its data table.
fn figure(stem: &str, alt: &str, charts_dir: &Path) -> String {
    let mut o = String::new();
    let _ = write!(o, "<figure id=\"chart-{stem}\">");
    match std::fs::read_to_string(charts_dir.join(format!("{stem}.svg"))) {
        Ok(svg) => {
            let svg = svg.trim_start_matches(|c: char| c != '<');
            let svg = match svg.strip_prefix("<?xml") {
                Some(r) => r.split_once("?>").map_or(svg, |x| x.1),
                None => svg,
            };
            // An HTML block of markdown ends at a blank line: keep none.
            for l in svg.lines().filter(|l| !l.trim().is_empty()) {
                o.push_str(l);
                o.push('\n');
            }
        }
        Err(_) => {
            let _ = write!(o, "<p class=\"missing\">(chart {} not found)</p>", escape(stem));
        }
    }
    let _ = write!(o, "<figcaption>{}</figcaption>", escape(alt));
    if let Some(t) = DataTable::read_csv(&charts_dir.join(format!("{stem}.csv"))) {
        let _ =
            write!(o, "<details><summary>Data of this chart ({} rows, <code>charts/{stem}.csv</code>)</summary><div class=\"scroll\"><table>", t.rows.len());
        o.push_str("<thead><tr>");
        for h in &t.header {
            let _ = write!(o, "<th>{}</th>", escape(h));
        }
        o.push_str("</tr></thead><tbody>");
        for r in &t.rows {
            o.push_str("<tr>");
            for c in r {
                let _ = write!(o, "<td>{}</td>", escape(c));
            }
            o.push_str("</tr>");
        }
        o.push_str("</tbody></table></div></details>");
    }
    o.push_str("</figure>\n");
    o
}

/// The markdown with every chart reference replaced by its figure (as an
/// HTML block) and the "(SVG: ...)" lines dropped.
fn with_figures(md: &str, charts_dir: &Path) -> String {
    let mut out = String::with_capacity(md.len());
    for line in md.lines() {
        if line.starts_with("(SVG: [charts/") {
            continue;
        }
        match chart_line(line) {
            Some((stem, alt)) => {
                out.push_str(&figure(stem, alt, charts_dir));
                out.push('\n');
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Gives every `<h2>` an id and returns the table of contents.
fn anchor_sections(body: &str) -> (String, String) {
    let mut out = String::with_capacity(body.len() + 256);
    let mut toc = String::from("<nav><strong>Contents</strong><ol>");
    let mut rest = body;
    let mut k = 0;
    while let Some(i) = rest.find("<h2>") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 4..];
        let Some(j) = after.find("</h2>") else {
            out.push_str(&rest[i..]);
            rest = "";
            break;
        };
        k += 1;
        let title = &after[..j];
        let _ = write!(out, "<h2 id=\"s{k}\">{title}</h2>");
        let _ = write!(toc, "<li><a href=\"#s{k}\">{title}</a></li>");
        rest = &after[j + 5..];
    }
    out.push_str(rest);
    toc.push_str("</ol></nav>");
    (out, toc)
}

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif; line-height: 1.5; color: #1b1b1b; background: #fff; margin: 0; }
main { max-width: 1120px; margin: 0 auto; padding: 1.5rem 1.5rem 4rem; }
h1 { font-size: 1.9rem; margin-top: 0.5rem; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2rem; margin-top: 2.5rem; } h3 { margin-top: 1.8rem; }
table { border-collapse: collapse; margin: 0.8rem 0 1.2rem; font-size: 0.88rem; }
th, td { border: 1px solid #d0d0d0; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; }
code { background: #f2f2f2; padding: 0 0.2rem; border-radius: 3px; font-size: 0.9em; }
figure { margin: 1rem 0 1.8rem; } figure svg { width: 100%; max-width: 1000px; height: auto; border: 1px solid #e4e4e4; display: block; }
figcaption { color: #555; font-size: 0.9rem; margin-top: 0.3rem; }
details { margin-top: 0.4rem; } summary { cursor: pointer; color: #0b5394; }
.scroll { overflow-x: auto; max-height: 28rem; overflow-y: auto; }
nav { background: #f7f7f7; border: 1px solid #e2e2e2; padding: 0.6rem 1rem; margin: 1rem 0; } nav ol { margin: 0.3rem 0 0; }
p.missing { color: #a00; }
";

/// The page: `md` (report.md's text) rendered, with the charts of
/// `charts_dir` inlined.
pub fn report_html(md: &str, charts_dir: &Path) -> String {
    let text = with_figures(md, charts_dir);
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    let mut body = String::new();
    // Raw HTML in the report's text (`<run-id>` in a sentence) is text;
    // only the figure blocks made above pass as HTML.
    let mut in_block = false;
    let mut figure_block = false;
    let events = Parser::new_ext(&text, opts).map(|e| match e {
        Event::Start(Tag::HtmlBlock) => {
            in_block = true;
            figure_block = false;
            e
        }
        Event::End(TagEnd::HtmlBlock) => {
            in_block = false;
            e
        }
        Event::Html(h) if in_block => {
            if h.starts_with("<figure id=\"chart-") {
                figure_block = true;
            }
            if figure_block {
                Event::Html(h)
            } else {
                Event::Text(h)
            }
        }
        Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
        other => other,
    });
    html::push_html(&mut body, events);
    let (body, toc) = anchor_sections(&body);
    let title = md.lines().find_map(|l| l.strip_prefix("# ")).unwrap_or("versus report");
    // The contents go after the title and the introduction (the first <h2>).
    let (head, tail) = match body.find("<h2 id=") {
        Some(i) => body.split_at(i),
        None => (body.as_str(), ""),
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{head}{toc}\n{tail}</main>\n</body>\n</html>\n",
        escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_inlined_with_their_data_and_nothing_is_fetched() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("boot.svg"),
            "<svg width=\"10\" height=\"10\" viewBox=\"0 0 10 10\" xmlns=\"http://www.w3.org/2000/svg\">\n\n<rect x=\"0\"/>\n</svg>\n",
        )
        .unwrap();
        let mut t = DataTable::new(&["platform", "median ms"]);
        t.push(vec!["process".into(), "1.2".into()]);
        t.write_csv(&d.path().join("boot.csv")).unwrap();
        let md = "# versus report: run x\n\nIntro with `versus plan <dir>` and <dir> too.\n\n<div>raw</div>\n\n## 1. First\n\n| a | b |\n|---|---|\n| <x> | 2 |\n\n![boot latency](charts/boot.png)\n\n(SVG: [charts/boot.svg](charts/boot.svg))\n\n## 2. Second\n\ntext\n";
        let h = report_html(md, d.path());
        assert!(h.starts_with("<!DOCTYPE html>"));
        assert!(h.contains("<svg width=\"10\"") && h.contains("<rect x=\"0\"/>"), "{h}");
        assert!(h.contains("<details><summary>Data of this chart (1 rows") && h.contains("<td>process</td><td>1.2</td>"), "{h}");
        assert!(h.contains("<table>") && h.contains("&lt;x&gt;"), "markdown tables render, text is escaped: {h}");
        assert!(h.contains("<a href=\"#s1\">1. First</a>") && h.contains("<h2 id=\"s2\">2. Second</h2>"), "{h}");
        assert!(!h.contains("(SVG:") && !h.contains("<img"), "{h}");
        assert!(h.contains("and &lt;dir&gt; too") && h.contains("&lt;div&gt;raw"), "raw HTML in the text stays text: {h}");
        for fetch in ["<script", "src=\"http", "href=\"http", "@import", "url("] {
            assert!(!h.contains(fetch), "{fetch} in the page");
        }
        assert_eq!(chart_line("![a b](charts/storm.png)"), Some(("storm", "a b")));
        assert_eq!(chart_line("![x](elsewhere.png)"), None);
    }
}
