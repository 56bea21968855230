//! Server-rendered SVG charts (no JavaScript): line charts over a time range, with a labelled
//! UTC time axis and value gridlines, and bar charts of periods.

use std::fmt::Write;

use chrono::{TimeZone, Utc};

const W: f64 = 1000.0;
const H: f64 = 190.0;
const PAD_L: f64 = 64.0;
const PAD_R: f64 = 12.0;
const PAD_T: f64 = 12.0;
const PAD_B: f64 = 26.0;
/// How far (SVG units) a tick label keeps from the frame's labelled ends: `HH:MM:SS` on the
/// left, `HH:MM:SS UTC` on the right.
const CLEAR_LEFT: f64 = 80.0;
const CLEAR_RIGHT: f64 = 115.0;
const COLORS: [&str; 3] = ["#2f6fdb", "#d9822b", "#b23b3b"];

/// Time-axis steps (ms) a chart picks from: the smallest giving at most 8 ticks.
const STEPS: [i64; 18] = [
    1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
    1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000,
];

/// A line chart of one or more series of (epoch ms, value) points over `[from, to]`; a NaN
/// value leaves a gap.
pub fn line_chart(series: &[(&str, Vec<(i64, f64)>)], unit: &str, from: i64, to: i64) -> String {
    let mut svg = open_svg();
    let points: Vec<&(i64, f64)> = series
        .iter()
        .flat_map(|(_, p)| p.iter())
        .filter(|p| p.0 >= from && p.0 <= to && !p.1.is_nan())
        .collect();
    if points.len() < 2 || to <= from {
        svg.push_str("<text x=\"50%\" y=\"50%\" text-anchor=\"middle\" class=\"empty\">collecting data…</text></svg>");
        return svg;
    }
    let vmax = nice_max(points.iter().map(|p| p.1).fold(0.0_f64, f64::max));
    let (x0, x1, y0, y1) = (PAD_L, W - PAD_R, H - PAD_B, PAD_T);
    let x = |t: i64| x0 + (t - from) as f64 / (to - from) as f64 * (x1 - x0);
    let y = |v: f64| value_y(v, vmax);
    value_grid(&mut svg, vmax, unit);
    // time gridlines, aligned to the step in UTC
    let span = to - from;
    let step = STEPS
        .iter()
        .copied()
        .find(|s| span / s <= 8)
        .unwrap_or(86_400_000);
    // gridlines at each step inside the frame; labels where they keep clear of the ends
    let mut t = from - from.rem_euclid(step) + step;
    while t < to {
        let xx = x(t);
        let _ = write!(
            svg,
            "<line x1=\"{xx:.1}\" y1=\"{y1}\" x2=\"{xx:.1}\" y2=\"{y0}\" class=\"grid\"/>"
        );
        if xx - x0 > CLEAR_LEFT && x1 - xx > CLEAR_RIGHT {
            let _ = write!(
                svg,
                "<text x=\"{xx:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"tick time\">{}</text>",
                H - 8.0,
                clock(t, step),
            );
        }
        t += step;
    }
    // the frame's own ends, always labelled
    let _ = write!(
        svg,
        "<line x1=\"{x0}\" y1=\"{y1}\" x2=\"{x0}\" y2=\"{y0}\" class=\"axis\"/>\
         <text x=\"{x0}\" y=\"{ty}\" text-anchor=\"start\" class=\"tick time\">{}</text>\
         <text x=\"{x1}\" y=\"{ty}\" text-anchor=\"end\" class=\"tick time\">{} UTC</text>",
        clock(from, step.min(59_000)),
        clock(to, step.min(59_000)),
        ty = H - 8.0
    );
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        // a NaN value is a gap (no data then): the line breaks there
        let inside: Vec<&(i64, f64)> = pts.iter().filter(|p| p.0 >= from && p.0 <= to).collect();
        for run in inside.split(|p| p.1.is_nan()).filter(|r| !r.is_empty()) {
            let mut path = String::with_capacity(run.len() * 12);
            for (t, v) in run {
                let _ = write!(path, "{:.1},{:.1} ", x(*t), y(*v));
            }
            let _ = write!(
                svg,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"><title>{name}</title></polyline>",
                path.trim_end()
            );
        }
        if series.len() > 1 {
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"{}\" fill=\"{color}\" class=\"legend\">{name}</text>",
                x0 + 10.0 + 70.0 * i as f64,
                PAD_T + 12.0
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A bar chart of labelled periods, oldest first (the Usage page).
pub fn bar_chart(bars: &[(String, f64)], unit: &str) -> String {
    let mut svg = open_svg();
    if bars.is_empty() {
        svg.push_str("</svg>");
        return svg;
    }
    let vmax = nice_max(bars.iter().map(|b| b.1).fold(0.0_f64, f64::max));
    let (x0, x1, y0) = (PAD_L, W - PAD_R, H - PAD_B);
    let y = |v: f64| value_y(v, vmax);
    value_grid(&mut svg, vmax, unit);
    let slot = (x1 - x0) / bars.len() as f64;
    let every = bars.len().div_ceil(12).max(1);
    for (i, (label, v)) in bars.iter().enumerate() {
        let bx = x0 + slot * i as f64;
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" class=\"bar\"><title>{label}: {v}</title></rect>",
            bx + slot * 0.1,
            y(*v),
            slot * 0.8,
            y0 - y(*v)
        );
        if i % every == 0 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"tick time\">{label}</text>",
                bx + slot / 2.0,
                H - 8.0
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Where values go on the plot: `v` of `vmax` to a y coordinate.
fn value_y(v: f64, vmax: f64) -> f64 {
    (H - PAD_B) - v / vmax * (H - PAD_B - PAD_T)
}

/// The value axis: a line at 0 and gridlines at each quarter of `vmax`, labelled.
fn value_grid(svg: &mut String, vmax: f64, unit: &str) {
    for i in 0..=4 {
        let v = vmax * f64::from(i) / 4.0;
        let y = value_y(v, vmax);
        let _ = write!(
            svg,
            "<line x1=\"{PAD_L}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" class=\"{}\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" class=\"tick\">{}</text>",
            W - PAD_R,
            if i == 0 { "axis" } else { "grid" },
            PAD_L - 6.0,
            y + 3.5,
            if i == 0 {
                "0".to_string()
            } else {
                fmt(v, unit)
            },
        );
    }
}

fn open_svg() -> String {
    format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" preserveAspectRatio=\"xMinYMin meet\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\">"
    )
}

/// The smallest 1, 2, 2.5 or 5 × 10^k at or above `v` (1 for nothing).
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * mag)
}

/// `HH:MM` (or `HH:MM:SS` for steps under a minute) of an epoch-ms instant, UTC.
fn clock(ms: i64, step: i64) -> String {
    let t = Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
    if step < 60_000 {
        t.format("%H:%M:%S").to_string()
    } else {
        t.format("%H:%M").to_string()
    }
}

/// A value with its unit, compact.
pub fn fmt(v: f64, unit: &str) -> String {
    match unit {
        "s" if v < 1.0 => format!("{:.1} ms", v * 1000.0),
        "s" => format!("{v:.2} s"),
        "%" => format!("{:.1}%", v * 100.0),
        _ if v >= 100.0 => format!("{v:.0}{unit}"),
        _ if v == v.trunc() => format!("{v:.0}{unit}"),
        _ => format!("{v:.2}{unit}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_axis_is_labelled_in_utc_steps_and_values_have_gridlines() {
        // 15 minutes from 10:00 UTC on 2026-12-05: ticks every 2 minutes
        let from = 1_796_464_800_000;
        let to = from + 15 * 60_000;
        let pts: Vec<(i64, f64)> = (0..=15).map(|i| (from + i * 60_000, i as f64)).collect();
        let svg = line_chart(&[("m", pts)], "", from, to);
        assert!(svg.contains(">10:02<") && svg.contains(">10:12<"), "{svg}");
        assert!(
            !svg.contains(">10:14<"),
            "no tick label crowding the frame's end"
        );
        assert!(
            svg.contains(">10:00:00<") && svg.contains(">10:15:00 UTC<"),
            "the ends are labelled to the second: {svg}"
        );
        assert_eq!(svg.matches("class=\"grid\"").count(), 4 + 7);
        assert!(
            svg.contains(">20<"),
            "the value axis ends at a round 20: {svg}"
        );
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(0.013), 0.02);
        assert_eq!(nice_max(300.0), 500.0);
        // an hour with 10 s samples: ticks every 10 minutes
        let svg = line_chart(
            &[("m", vec![(from, 1.0), (to, 2.0)])],
            "",
            from,
            from + 3_600_000,
        );
        assert!(svg.contains(">10:50<") && !svg.contains(">10:55<"), "{svg}");
    }

    #[test]
    fn a_nan_breaks_the_line() {
        let pts = vec![(0, 1.0), (1, 2.0), (2, f64::NAN), (3, 1.0), (4, 1.0)];
        let svg = line_chart(&[("p99", pts)], "s", 0, 4);
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn too_little_data_says_so() {
        let svg = line_chart(&[("m", vec![(5, 1.0)])], "", 0, 10);
        assert!(svg.contains("collecting data"));
    }
}
