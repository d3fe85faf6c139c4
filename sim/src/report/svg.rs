//! SVG timeline: a row per node pair, a bar per connection lifetime, time on the x axis.
//!
//! Bar colour says who dialed (the pair's lower-numbered node: blue; the higher: orange).
//! A thin pale bar is the connection's whole life (connect to close); the thick, solid part
//! is when it was established at both ends. Legacy cycling shows as a comb of short bars,
//! a healthy run as one long bar per pair.

use crate::engine::Sim;
use crate::model::NodeModel;
use crate::time::{Micros, HOUR, MIN, SEC};
use std::fmt::Write;

/// One connection on the timeline.
#[derive(Clone, Debug)]
pub struct Bar {
    pub start: Micros,
    pub end: Micros,
    /// The pair's lower-numbered node dialed.
    pub by_low: bool,
    pub up_spans: Vec<(Micros, Micros)>,
}

#[derive(Clone, Debug)]
pub struct Row {
    pub a: u32,
    pub b: u32,
    pub bars: Vec<Bar>,
}

/// What the SVG needs, taken from a finished run.
#[derive(Clone, Debug)]
pub struct Timeline {
    pub title: String,
    pub duration: Micros,
    pub rows: Vec<Row>,
}

/// Rows beyond this are left out (a 10,000-node run would draw an unreadable wall).
pub const MAX_ROWS: usize = 200;

impl Timeline {
    pub fn from_sim<M: NodeModel>(sim: &Sim<M>, title: String) -> Timeline {
        let mut rows: Vec<Row> = sim
            .pairs
            .iter()
            .take(MAX_ROWS)
            .map(|p| Row {
                a: p.a,
                b: p.b,
                bars: Vec::new(),
            })
            .collect();
        let mut index = std::collections::BTreeMap::new();
        for (i, r) in rows.iter().enumerate() {
            index.insert((r.a, r.b), i);
        }
        for c in &sim.conns {
            let (Some(_), Some(start)) = (c.pair, c.first_live_at) else {
                continue;
            };
            let (x, y) = (c.ends[0].node, c.ends[1].node);
            let key = (x.min(y), x.max(y));
            let Some(&i) = index.get(&key) else { continue };
            rows[i].bars.push(Bar {
                start,
                end: c.closed_at.unwrap_or(sim.now),
                by_low: x < y,
                up_spans: c.up_spans.clone(),
            });
        }
        rows.sort_by_key(|r| (r.a, r.b));
        Timeline {
            title,
            duration: sim.now.max(1),
            rows,
        }
    }

    pub fn render(&self) -> String {
        let left = 110.0;
        let right = 20.0;
        let top = 50.0;
        let row_h = 22.0;
        let width = 1200.0;
        let plot_w = width - left - right;
        let height = top + row_h * self.rows.len().max(1) as f64 + 50.0;
        let x = |t: Micros| left + plot_w * (t as f64 / self.duration as f64);
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="monospace" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{left}" y="20" font-size="14">{}</text>"#,
            escape(&self.title)
        );
        let _ = writeln!(
            s,
            r##"<text x="{left}" y="38"><tspan fill="#1f77b4">■ dialed by lower node</tspan>  <tspan fill="#ff7f0e">■ dialed by higher node</tspan>  thin: open, thick: established at both ends</text>"##
        );
        // Time axis.
        let step = tick_step(self.duration);
        let axis_y = top + row_h * self.rows.len().max(1) as f64 + 5.0;
        let mut t = 0;
        while t <= self.duration {
            let px = x(t);
            let _ = writeln!(
                s,
                r##"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{axis_y}" stroke="#ddd"/>"##
            );
            let _ = writeln!(
                s,
                r#"<text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                axis_y + 15.0,
                label(t)
            );
            t += step;
        }
        for (i, row) in self.rows.iter().enumerate() {
            let y = top + row_h * i as f64;
            let _ = writeln!(
                s,
                r#"<text x="5" y="{:.1}">n{}–n{}</text>"#,
                y + 15.0,
                row.a,
                row.b
            );
            for bar in &row.bars {
                let colour = if bar.by_low { "#1f77b4" } else { "#ff7f0e" };
                let (x0, x1) = (x(bar.start), x(bar.end).max(x(bar.start) + 0.5));
                let _ = writeln!(
                    s,
                    r#"<rect x="{x0:.2}" y="{:.1}" width="{:.2}" height="4" fill="{colour}" opacity="0.35"><title>open {:.1}s–{:.1}s</title></rect>"#,
                    y + 9.0,
                    x1 - x0,
                    bar.start as f64 / 1e6,
                    bar.end as f64 / 1e6
                );
                for &(a, b) in &bar.up_spans {
                    let (x0, x1) = (x(a), x(b).max(x(a) + 0.5));
                    let _ = writeln!(
                        s,
                        r#"<rect x="{x0:.2}" y="{:.1}" width="{:.2}" height="12" fill="{colour}" stroke="white" stroke-width="0.3"><title>up {:.1}s–{:.1}s</title></rect>"#,
                        y + 5.0,
                        x1 - x0,
                        a as f64 / 1e6,
                        b as f64 / 1e6
                    );
                }
            }
        }
        s.push_str("</svg>\n");
        s
    }
}

fn tick_step(d: Micros) -> Micros {
    for step in [
        SEC,
        5 * SEC,
        10 * SEC,
        30 * SEC,
        MIN,
        5 * MIN,
        10 * MIN,
        15 * MIN,
        30 * MIN,
        HOUR,
        6 * HOUR,
    ] {
        if d / step <= 12 {
            return step;
        }
    }
    24 * HOUR
}

fn label(t: Micros) -> String {
    if t.is_multiple_of(HOUR) && t > 0 {
        format!("{}h", t / HOUR)
    } else if t.is_multiple_of(MIN) {
        format!("{}m", t / MIN)
    } else {
        format!("{}s", t / SEC)
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
