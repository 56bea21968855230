//! Server-rendered SVG line charts (no JavaScript).

use std::fmt::Write;

const W: f64 = 460.0;
const H: f64 = 150.0;
const PAD_L: f64 = 48.0;
const PAD_B: f64 = 20.0;
const COLORS: [&str; 3] = ["#2f6fdb", "#d9822b", "#b23b3b"];

/// A line chart of one or more series of (epoch ms, value) points.
pub fn line_chart(series: &[(&str, Vec<(i64, f64)>)], unit: &str) -> String {
    let points: Vec<&(i64, f64)> = series.iter().flat_map(|(_, p)| p.iter()).collect();
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    if points.len() < 2 {
        svg.push_str("<text x=\"50%\" y=\"50%\" text-anchor=\"middle\" class=\"empty\">collecting data…</text></svg>");
        return svg;
    }
    let t0 = points.iter().map(|p| p.0).min().unwrap_or(0) as f64;
    let t1 = (points.iter().map(|p| p.0).max().unwrap_or(0) as f64).max(t0 + 1.0);
    let vmax = points.iter().map(|p| p.1).fold(0.0_f64, f64::max);
    let vmax = if vmax <= 0.0 { 1.0 } else { vmax * 1.1 };
    let x = |t: i64| PAD_L + (t as f64 - t0) / (t1 - t0) * (W - PAD_L - 4.0);
    let y = |v: f64| (H - PAD_B) - v / vmax * (H - PAD_B - 6.0);
    let _ = write!(
        svg,
        "<line x1=\"{PAD_L}\" y1=\"{0}\" x2=\"{W}\" y2=\"{0}\" class=\"axis\"/><line x1=\"{PAD_L}\" y1=\"4\" x2=\"{PAD_L}\" y2=\"{0}\" class=\"axis\"/>",
        H - PAD_B
    );
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"12\" text-anchor=\"end\" class=\"tick\">{}</text>",
        PAD_L - 4.0,
        fmt(vmax, unit)
    );
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"tick\">0</text>",
        PAD_L - 4.0,
        H - PAD_B
    );
    let span = (t1 - t0) / 1000.0;
    let span = if span < 60.0 {
        format!("-{span:.0} s")
    } else {
        format!("-{:.0} min", span / 60.0)
    };
    let _ = write!(
        svg,
        "<text x=\"{PAD_L}\" y=\"{}\" class=\"tick\">{span}</text>",
        H - 4.0
    );
    let _ = write!(
        svg,
        "<text x=\"{W}\" y=\"{}\" text-anchor=\"end\" class=\"tick\">now</text>",
        H - 4.0
    );
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"><title>{name}</title></polyline>",
            path.join(" ")
        );
        if series.len() > 1 {
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"{}\" fill=\"{color}\" class=\"legend\">{name}</text>",
                PAD_L + 8.0 + 60.0 * i as f64,
                16
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A value with its unit, compact.
pub fn fmt(v: f64, unit: &str) -> String {
    match unit {
        "s" if v < 1.0 => format!("{:.1} ms", v * 1000.0),
        "s" => format!("{v:.2} s"),
        "%" => format!("{:.1}%", v * 100.0),
        _ if v >= 100.0 => format!("{v:.0}{unit}"),
        _ => format!("{v:.2}{unit}"),
    }
}
