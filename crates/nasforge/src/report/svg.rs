//! SVG figures written as text: line and scatter charts with nice ticks (linear or log axes),
//! and architecture diagrams ([`CellGraph`]s drawn as DAGs with op labels). No fonts, scripts
//! or external references: the output opens offline, inline in HTML or as a file.

use nasforge_core::space::CellGraph;
use std::fmt::Write;

/// Escapes text for HTML and SVG (elements and attribute values).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Series colours (colour-blind safe, Okabe-Ito).
pub const PALETTE: [&str; 7] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
];

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mark {
    /// Dots.
    Points,
    /// A polyline.
    Line,
    /// A staircase (holds each value until the next x).
    Step,
}

/// One series of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend entry (empty: not in the legend).
    pub name: String,
    /// `(x, y)` points; non-finite ones are skipped.
    pub points: Vec<(f64, f64)>,
    /// Hover text per point (same length as `points`, or empty).
    pub tips: Vec<String>,
    /// How it is drawn.
    pub mark: Mark,
    /// Stroke or fill colour.
    pub color: String,
    /// Line width or dot radius.
    pub size: f64,
    /// Opacity.
    pub opacity: f64,
}

impl Series {
    /// A series with default styling for its mark.
    pub fn new(name: impl Into<String>, mark: Mark, color: &str) -> Series {
        Series {
            name: name.into(),
            points: Vec::new(),
            tips: Vec::new(),
            mark,
            color: color.to_string(),
            size: if mark == Mark::Points { 3.0 } else { 2.0 },
            opacity: if mark == Mark::Points { 0.75 } else { 1.0 },
        }
    }
}

/// A 2-D chart.
#[derive(Clone, Debug)]
pub struct Chart {
    /// Title above the plot.
    pub title: String,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
    /// Logarithmic x axis (positive values only).
    pub x_log: bool,
    /// The series, drawn in order.
    pub series: Vec<Series>,
    /// Width in pixels.
    pub width: f64,
    /// Height in pixels.
    pub height: f64,
}

const MARGIN_LEFT: f64 = 62.0;
const MARGIN_RIGHT: f64 = 16.0;
const MARGIN_TOP: f64 = 44.0;
const MARGIN_BOTTOM: f64 = 44.0;

impl Chart {
    /// An empty chart of the default size.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Chart {
        Chart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_log: false,
            series: Vec::new(),
            width: 560.0,
            height: 320.0,
        }
    }

    fn usable(&self, x: f64, y: f64) -> bool {
        x.is_finite() && y.is_finite() && (!self.x_log || x > 0.0)
    }

    /// The chart as an `<svg>` element.
    pub fn render(&self) -> String {
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|&(x, y)| self.usable(x, y))
            .collect();
        let (w, h) = (self.width, self.height);
        let mut out = String::new();
        let _ = write!(
            out,
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="11" role="img"><title>{t}</title><rect width="{w}" height="{h}" fill="#fff"/><text x="{tx}" y="18" text-anchor="middle" font-size="13" font-weight="bold">{t}</text>"##,
            t = escape(&self.title),
            tx = w / 2.0,
        );
        if pts.is_empty() {
            let _ = write!(
                out,
                r##"<text x="{}" y="{}" text-anchor="middle" fill="#666">no data yet</text></svg>"##,
                w / 2.0,
                h / 2.0
            );
            return out;
        }
        let tx = |x: f64| if self.x_log { x.log10() } else { x };
        let (mut x0, mut x1) = min_max(pts.iter().map(|p| tx(p.0)));
        let (mut y0, mut y1) = min_max(pts.iter().map(|p| p.1));
        pad_range(&mut x0, &mut x1);
        pad_range(&mut y0, &mut y1);
        let (px0, px1) = (MARGIN_LEFT, w - MARGIN_RIGHT);
        let (py0, py1) = (h - MARGIN_BOTTOM, MARGIN_TOP);
        let sx = |x: f64| px0 + (tx(x) - x0) / (x1 - x0) * (px1 - px0);
        let sy = |y: f64| py0 + (y - y0) / (y1 - y0) * (py1 - py0);
        // Grid, ticks and labels.
        let xticks: Vec<(f64, String)> = if self.x_log {
            log_ticks(x0, x1)
        } else {
            nice_ticks(x0, x1)
                .into_iter()
                .map(|v| (v, fmt_tick(v)))
                .collect()
        };
        for (v, label) in &xticks {
            let x = if self.x_log {
                px0 + (v - x0) / (x1 - x0) * (px1 - px0)
            } else {
                sx(*v)
            };
            let _ = write!(
                out,
                r##"<line x1="{x:.1}" y1="{py1}" x2="{x:.1}" y2="{py0}" stroke="#e5e5e5"/><text x="{x:.1}" y="{}" text-anchor="middle" fill="#333">{}</text>"##,
                py0 + 15.0,
                escape(label)
            );
        }
        for v in nice_ticks(y0, y1) {
            let y = sy(v);
            let _ = write!(
                out,
                r##"<line x1="{px0}" y1="{y:.1}" x2="{px1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{}" y="{:.1}" text-anchor="end" fill="#333">{}</text>"##,
                px0 - 5.0,
                y + 4.0,
                fmt_tick(v)
            );
        }
        let _ = write!(
            out,
            r##"<rect x="{px0}" y="{py1}" width="{}" height="{}" fill="none" stroke="#999"/><text x="{}" y="{}" text-anchor="middle" fill="#333">{}</text><text transform="translate(14 {}) rotate(-90)" text-anchor="middle" fill="#333">{}</text>"##,
            px1 - px0,
            py0 - py1,
            (px0 + px1) / 2.0,
            h - 8.0,
            escape(&self.x_label),
            (py0 + py1) / 2.0,
            escape(&self.y_label),
        );
        // Series.
        for s in &self.series {
            let usable: Vec<(usize, (f64, f64))> = s
                .points
                .iter()
                .copied()
                .enumerate()
                .filter(|&(_, (x, y))| self.usable(x, y))
                .collect();
            match s.mark {
                Mark::Points => {
                    for (i, (x, y)) in usable {
                        let _ = write!(
                            out,
                            r##"<circle cx="{:.1}" cy="{:.1}" r="{}" fill="{}" fill-opacity="{}">"##,
                            sx(x),
                            sy(y),
                            s.size,
                            escape(&s.color),
                            s.opacity
                        );
                        if let Some(tip) = s.tips.get(i) {
                            let _ = write!(out, "<title>{}</title>", escape(tip));
                        }
                        out.push_str("</circle>");
                    }
                }
                Mark::Line | Mark::Step => {
                    if let [(_, (x, y))] = usable[..] {
                        // One point makes no line: show it as a dot.
                        let _ = write!(
                            out,
                            r##"<circle cx="{:.1}" cy="{:.1}" r="{}" fill="{}" fill-opacity="{}"/>"##,
                            sx(x),
                            sy(y),
                            s.size + 1.5,
                            escape(&s.color),
                            s.opacity
                        );
                        continue;
                    }
                    if usable.is_empty() {
                        continue;
                    }
                    let mut d = String::new();
                    let mut last_y = 0.0;
                    for (k, &(_, (x, y))) in usable.iter().enumerate() {
                        if k == 0 {
                            let _ = write!(d, "M{:.1},{:.1}", sx(x), sy(y));
                        } else if s.mark == Mark::Step {
                            let _ = write!(
                                d,
                                " L{:.1},{:.1} L{:.1},{:.1}",
                                sx(x),
                                last_y,
                                sx(x),
                                sy(y)
                            );
                        } else {
                            let _ = write!(d, " L{:.1},{:.1}", sx(x), sy(y));
                        }
                        last_y = sy(y);
                    }
                    let _ = write!(
                        out,
                        r##"<path d="{d}" fill="none" stroke="{}" stroke-width="{}" stroke-opacity="{}"/>"##,
                        escape(&s.color),
                        s.size,
                        s.opacity
                    );
                }
            }
        }
        // Legend: one row between the title and the plot.
        let mut x = px0;
        for s in self.series.iter().filter(|s| !s.name.is_empty()) {
            let y = 34.0;
            let _ = match s.mark {
                Mark::Points => write!(
                    out,
                    r##"<circle cx="{:.1}" cy="{}" r="4" fill="{}"/>"##,
                    x + 8.0,
                    y - 4.0,
                    escape(&s.color)
                ),
                _ => write!(
                    out,
                    r##"<line x1="{x:.1}" y1="{}" x2="{:.1}" y2="{}" stroke="{}" stroke-width="2"/>"##,
                    y - 4.0,
                    x + 16.0,
                    y - 4.0,
                    escape(&s.color)
                ),
            };
            let _ = write!(
                out,
                r##"<text x="{:.1}" y="{y}" fill="#333">{}</text>"##,
                x + 22.0,
                escape(&s.name)
            );
            x += 34.0 + 6.5 * s.name.chars().count() as f64;
        }
        out.push_str("</svg>");
        out
    }
}

fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    })
}

/// Widens a range by 5% on each side (and a zero-width range to something visible).
fn pad_range(lo: &mut f64, hi: &mut f64) {
    let span = *hi - *lo;
    let pad = if span > 0.0 {
        span * 0.05
    } else {
        lo.abs().max(1.0) * 0.05
    };
    *lo -= pad;
    *hi += pad;
}

/// Four to eight round tick values (1, 2 or 5 times a power of ten apart) within `[lo, hi]`.
pub fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    // The smallest round step that leaves at most seven intervals.
    let raw = (hi - lo) / 7.0;
    if raw.is_nan() || raw <= 0.0 || !raw.is_finite() {
        return vec![lo];
    }
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut v = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while v <= hi + step * 1e-9 {
        out.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        v += step;
    }
    out
}

/// Ticks of a log10 axis spanning `[lo, hi]` (in log10 units): powers of ten, or 1-2-5 steps
/// when the range is under two decades.
fn log_ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
    let mut out = Vec::new();
    let mults: &[f64] = if hi - lo < 2.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    for e in (lo.floor() as i32)..=(hi.ceil() as i32) {
        for m in mults {
            let v = m * 10f64.powi(e);
            let l = v.log10();
            if l >= lo && l <= hi {
                out.push((l, si(v)));
            }
        }
    }
    out
}

/// A number with an SI suffix (`1.5k`, `20M`).
pub fn si(v: f64) -> String {
    let (d, s) = match v.abs() {
        a if a >= 1e9 => (1e9, "G"),
        a if a >= 1e6 => (1e6, "M"),
        a if a >= 1e3 => (1e3, "k"),
        _ => (1.0, ""),
    };
    let x = v / d;
    let t = if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round())
    } else {
        format!("{x:.1}")
    };
    format!("{t}{s}")
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 1e4 {
        return si(v);
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// Draws a [`CellGraph`]: nodes stacked top to bottom as boxes, edges between neighbours as
/// straight arrows, longer edges as arcs alternating right and left, op labels beside them.
/// `none` edges (zeros) are dashed and grey.
pub fn cell_diagram(g: &CellGraph) -> String {
    let n = g.nodes.len().max(1);
    let row = 78.0;
    let box_h = 26.0;
    let longest = g.nodes.iter().map(|s| s.chars().count()).max().unwrap_or(4) as f64;
    let box_w = (longest * 6.8 + 20.0).max(70.0);
    let max_span = g.edges.iter().map(|e| e.1 - e.0).max().unwrap_or(1) as f64;
    let side = 60.0 + 55.0 * max_span + 90.0;
    let width = box_w + 2.0 * side;
    let cx = width / 2.0;
    let height = 40.0 + row * (n - 1) as f64 + box_h + 16.0;
    let top = |i: usize| 40.0 + row * i as f64;
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0} {height:.0}" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="11" role="img"><title>{t}</title><defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs><rect width="{width:.0}" height="{height:.0}" fill="#fff"/><text x="{cx:.0}" y="20" text-anchor="middle" font-size="13" font-weight="bold">{t}</text>"##,
        t = escape(&g.title),
    );
    let mut long_k = 0;
    let mut labels = String::new();
    for (from, to, label) in &g.edges {
        let (from, to) = (*from, *to);
        if from >= n || to >= n || from >= to {
            continue;
        }
        let zero = label == "none";
        let style = if zero {
            r##"stroke="#aaa" stroke-dasharray="4 3""##
        } else {
            r##"stroke="#555""##
        };
        let span = (to - from) as f64;
        let (y_a, y_b) = (top(from) + box_h, top(to));
        if to - from == 1 {
            let _ = write!(
                out,
                r##"<line x1="{cx:.1}" y1="{y_a:.1}" x2="{cx:.1}" y2="{y_b:.1}" {style} stroke-width="1.5" marker-end="url(#arrow)"/>"##
            );
            if !label.is_empty() {
                let _ = write!(
                    labels,
                    r##"<text x="{:.1}" y="{:.1}" fill="{}">{}</text>"##,
                    cx + 6.0,
                    (y_a + y_b) / 2.0 + 4.0,
                    if zero { "#999" } else { "#111" },
                    escape(label)
                );
            }
        } else {
            let dir = if long_k % 2 == 0 { 1.0 } else { -1.0 };
            long_k += 1;
            let x_edge = cx + dir * box_w / 2.0;
            let bulge = x_edge + dir * (35.0 + 55.0 * (span - 1.0));
            let (ya, yb) = (top(from) + box_h / 2.0, top(to) + box_h / 2.0);
            let _ = write!(
                out,
                r##"<path d="M{x_edge:.1},{ya:.1} C{bulge:.1},{ya:.1} {bulge:.1},{yb:.1} {x_edge:.1},{yb:.1}" fill="none" {style} stroke-width="1.5" marker-end="url(#arrow)"/>"##
            );
            if !label.is_empty() {
                // The curve's extreme point is at 3/4 of the way to the control points.
                let x_mid = x_edge + 0.75 * (bulge - x_edge);
                let anchor = if dir > 0.0 { "start" } else { "end" };
                let _ = write!(
                    labels,
                    r##"<text x="{:.1}" y="{:.1}" text-anchor="{anchor}" fill="{}">{}</text>"##,
                    x_mid + dir * 4.0,
                    (ya + yb) / 2.0 + 4.0,
                    if zero { "#999" } else { "#111" },
                    escape(label)
                );
            }
        }
    }
    for (i, name) in g.nodes.iter().enumerate() {
        let _ = write!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="{box_w:.1}" height="{box_h}" rx="6" fill="#eef4fb" stroke="#0072B2"/><text x="{cx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            cx - box_w / 2.0,
            top(i),
            top(i) + box_h / 2.0 + 4.0,
            escape(name)
        );
    }
    out.push_str(&labels);
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_inside_the_range() {
        assert_eq!(nice_ticks(0.0, 10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = nice_ticks(93.17, 94.42);
        assert!(t.iter().all(|v| (93.17..=94.42).contains(v)), "{t:?}");
        assert!(t.len() >= 4 && t.len() <= 8, "{t:?}");
        assert_eq!(si(1_500_000.0), "1.5M");
        assert_eq!(si(20_000.0), "20k");
        let l = log_ticks(4.2, 6.6);
        assert_eq!(
            l.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
            ["100k", "1M"]
        );
    }

    #[test]
    fn text_is_escaped_and_empty_charts_say_so() {
        let mut c = Chart::new("<script>x</script>", "a&b", "y");
        let mut s = Series::new("\"q\"", Mark::Points, PALETTE[0]);
        s.points = vec![(1.0, 2.0), (2.0, 3.0)];
        s.tips = vec!["<b>".into(), "t".into()];
        c.series.push(s);
        let svg = c.render();
        assert!(!svg.contains("<script>") && !svg.contains("<b>"));
        assert!(
            svg.contains("&lt;script&gt;")
                && svg.contains("a&amp;b")
                && svg.contains("&quot;q&quot;")
        );
        assert_eq!(svg.matches("<circle").count(), 2 + 1); // two points and the legend swatch
        let empty = Chart::new("t", "x", "y").render();
        assert!(empty.contains("no data yet"));
    }

    #[test]
    fn log_axes_skip_non_positive_values() {
        let mut c = Chart::new("t", "params", "acc");
        c.x_log = true;
        let mut s = Series::new("", Mark::Points, PALETTE[0]);
        s.points = vec![(0.0, 1.0), (1e5, 2.0), (1e6, 3.0), (f64::NAN, 1.0)];
        c.series.push(s);
        assert_eq!(c.render().matches("<circle").count(), 2);
    }

    #[test]
    fn diagrams_draw_every_node_and_labelled_edge() {
        let g = CellGraph {
            title: "cell".into(),
            nodes: (0..4).map(|i| format!("node {i}")).collect(),
            edges: vec![
                (0, 1, "nor_conv_3x3".into()),
                (0, 2, "none".into()),
                (1, 2, "skip_connect".into()),
                (0, 3, "avg_pool_3x3".into()),
            ],
        };
        let svg = cell_diagram(&g);
        assert_eq!(svg.matches("<rect x=").count(), 4);
        for l in [
            "nor_conv_3x3",
            "none",
            "skip_connect",
            "avg_pool_3x3",
            "node 3",
        ] {
            assert!(svg.contains(l), "{l}");
        }
        assert!(svg.contains("stroke-dasharray"));
    }
}
