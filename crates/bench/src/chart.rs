//! A hand-written SVG chart: throughput and p99 latency against connection count, one
//! line per server, both on logarithmic axes (the servers differ by more than an order
//! of magnitude).

use std::fmt::Write as _;

/// One line of the chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend.
    pub name: String,
    /// Stroke colour.
    pub color: &'static str,
    /// (connections, requests/s, p99 ms).
    pub points: Vec<(u32, f64, f64)>,
}

const PANEL_W: f64 = 420.0;
const PANEL_H: f64 = 280.0;
const MARGIN_L: f64 = 70.0;
const MARGIN_T: f64 = 66.0;
const GAP: f64 = 110.0;

fn log_bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn tick_label(exp: f64, unit: &str) -> String {
    let v = 10f64.powf(exp);
    if v >= 1000.0 {
        format!("{}k{unit}", v / 1000.0)
    } else if v >= 1.0 {
        format!("{v}{unit}")
    } else {
        format!("{v:.2}{unit}")
    }
}

fn panel(
    svg: &mut String,
    x0: f64,
    title: &str,
    unit: &str,
    connections: &[u32],
    series: &[Series],
    value: impl Fn(&(u32, f64, f64)) -> f64,
) {
    let (lo, hi) = log_bounds(series.iter().flat_map(|s| s.points.iter().map(&value)));
    let x_of = |c: u32| {
        let i = connections.iter().position(|&k| k == c).unwrap_or(0) as f64;
        let n = (connections.len().max(2) - 1) as f64;
        x0 + 20.0 + i * (PANEL_W - 40.0) / n
    };
    let y_of = |v: f64| {
        let t = (v.max(1e-9).log10() - lo) / (hi - lo);
        MARGIN_T + PANEL_H - t * PANEL_H
    };
    let _ = writeln!(
        svg,
        r##"<rect x="{x0}" y="{MARGIN_T}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#888"/>"##
    );
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"##,
        x0 + PANEL_W / 2.0,
        MARGIN_T - 15.0,
        escape(title)
    );
    let mut e = lo;
    while e <= hi + 1e-9 {
        let y = y_of(10f64.powf(e));
        let _ = writeln!(
            svg,
            r##"<line x1="{x0}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end" font-size="12">{}</text>"##,
            x0 + PANEL_W,
            x0 - 6.0,
            y + 4.0,
            tick_label(e, unit)
        );
        e += 1.0;
    }
    for &c in connections {
        let x = x_of(c);
        let _ = writeln!(
            svg,
            r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#eee"/><text x="{x}" y="{}" text-anchor="middle" font-size="12">{c}</text>"##,
            MARGIN_T,
            MARGIN_T + PANEL_H,
            MARGIN_T + PANEL_H + 18.0
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="middle" font-size="12">connections (wrk)</text>"##,
        x0 + PANEL_W / 2.0,
        MARGIN_T + PANEL_H + 38.0
    );
    for s in series {
        let points: Vec<String> = s
            .points
            .iter()
            .filter(|p| value(p) > 0.0)
            .map(|p| format!("{:.1},{:.1}", x_of(p.0), y_of(value(p))))
            .collect();
        let _ = writeln!(
            svg,
            r##"<polyline points="{}" fill="none" stroke="{}" stroke-width="2.5"/>"##,
            points.join(" "),
            s.color
        );
        for p in s.points.iter().filter(|p| value(p) > 0.0) {
            let _ = writeln!(
                svg,
                r##"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{}"/>"##,
                x_of(p.0),
                y_of(value(p)),
                s.color
            );
        }
    }
}

/// The whole chart as an SVG document.
pub fn render(title: &str, connections: &[u32], series: &[Series]) -> String {
    let width = MARGIN_L + PANEL_W * 2.0 + GAP + 30.0;
    let height = MARGIN_T + PANEL_H + 60.0 + 22.0 * series.len() as f64 + 30.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">"##
    );
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="white"/><text x="{}" y="22" text-anchor="middle" font-size="16">{}</text>"##,
        width / 2.0,
        escape(title)
    );
    panel(
        &mut svg,
        MARGIN_L,
        "Throughput (requests/s, log scale)",
        "",
        connections,
        series,
        |p| p.1,
    );
    panel(
        &mut svg,
        MARGIN_L + PANEL_W + GAP,
        "p99 latency (log scale)",
        " ms",
        connections,
        series,
        |p| p.2,
    );
    let mut y = MARGIN_T + PANEL_H + 65.0;
    for s in series {
        let _ = writeln!(
            svg,
            r##"<line x1="{MARGIN_L}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="3"/><text x="{}" y="{}" font-size="13">{}</text>"##,
            MARGIN_L + 30.0,
            s.color,
            MARGIN_L + 38.0,
            y + 4.0,
            escape(&s.name)
        );
        y += 22.0;
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series_and_escapes_text() {
        let series = vec![
            Series {
                name: "a <b>".into(),
                color: "#123456",
                points: vec![(1, 100.0, 1.0), (8, 1000.0, 2.0)],
            },
            Series {
                name: "c".into(),
                color: "#654321",
                points: vec![(1, 10.0, 10.0), (8, 0.0, 20.0)],
            },
        ];
        let svg = render("t & u", &[1, 8], &series);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt;b&gt;"));
        assert!(svg.contains("t &amp; u"));
        assert_eq!(svg.matches("<polyline").count(), 4);
        // A zero throughput is left off the log axis, not drawn at minus infinity.
        assert!(!svg.contains("inf"));
        assert!(!svg.contains("NaN"));
    }
}
