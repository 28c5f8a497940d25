//! Minimal SVG line charts (no dependencies): one chart, several named series over epochs.

/// A series: name and (x, y) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const COLORS: [&str; 8] =
    ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A 640x400 SVG line chart with y in [0, 1] shown as percent.
pub fn line_chart(title: &str, x_label: &str, series: &[Series]) -> String {
    let (w, h, left, right, top, bottom) = (640.0, 400.0, 60.0, 170.0, 40.0, 50.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let x_max = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).fold(1.0f64, f64::max);
    let sx = |x: f64| left + pw * (x / x_max);
    let sy = |y: f64| top + ph * (1.0 - y.clamp(0.0, 1.0));
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">{}</text>\n",
        left + pw / 2.0,
        esc(title)
    );
    for i in 0..=5 {
        let y = i as f64 / 5.0;
        let (x2, yy, tx, ty, label) =
            (left + pw, sy(y), left - 6.0, sy(y) + 4.0, (y * 100.0) as u32);
        out += &format!(
            "<line x1=\"{left}\" x2=\"{x2}\" y1=\"{yy}\" y2=\"{yy}\" stroke=\"#ddd\"/><text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\">{label}%</text>\n"
        );
    }
    let ticks = (x_max as usize).clamp(1, 10);
    for i in 0..=ticks {
        let x = x_max * i as f64 / ticks as f64;
        out += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{:.0}</text>\n",
            sx(x),
            top + ph + 18.0,
            x
        );
    }
    out += &format!(
        "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#333\"/>\n<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
        left + pw / 2.0,
        h - 12.0,
        esc(x_label)
    );
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> =
            s.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y))).collect();
        out += &format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n",
            pts.join(" ")
        );
        for &(x, y) in &s.points {
            out += &format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{color}\"/>\n",
                sx(x),
                sy(y)
            );
        }
        let ly = top + 14.0 + 18.0 * i as f64;
        out += &format!(
            "<line x1=\"{0}\" x2=\"{1}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"3\"/><text x=\"{2}\" y=\"{3}\">{4}</text>\n",
            left + pw + 10.0,
            left + pw + 30.0,
            left + pw + 36.0,
            ly + 4.0,
            esc(&s.name)
        );
    }
    out + "</svg>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_a_polyline_per_series() {
        let s = line_chart(
            "t <1>",
            "epoch",
            &[
                Series { name: "a".into(), points: vec![(1.0, 0.5), (2.0, 0.7)] },
                Series { name: "b".into(), points: vec![(1.0, 0.1)] },
            ],
        );
        assert_eq!(s.matches("<polyline").count(), 2);
        assert!(s.contains("t &lt;1&gt;") && s.starts_with("<svg"));
    }
}
