//! An SVG bar chart of the median ratio to bare per variant, read and write.

use std::fmt::Write as _;

/// `(variant, read ratio, write ratio)` rows as a self-contained SVG.
pub(crate) fn ratio_chart(rows: &[(&str, f64, f64)]) -> String {
    let (bar, gap, left, top, height) = (26.0, 40.0, 60.0, 30.0, 260.0);
    let width = left + rows.len() as f64 * (2.0 * bar + gap) + 20.0;
    let y = |ratio: f64| top + height * (1.0 - ratio.clamp(0.0, 1.1) / 1.1);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{}" font-family="sans-serif" font-size="12">"#,
        top + height + 60.0
    );
    let _ = write!(
        svg,
        r#"<text x="{left}" y="18" font-size="14">Throughput as a ratio of bare axum (runs between two bare runs, median)</text>"#
    );
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let ty = y(tick);
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{ty}" y2="{ty}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{tick:.2}</text>"##,
            width - 10.0,
            left - 6.0,
            ty + 4.0
        );
    }
    for (i, (name, read, write)) in rows.iter().enumerate() {
        let x = left + gap / 2.0 + i as f64 * (2.0 * bar + gap);
        for (j, (ratio, color)) in [(*read, "#5b3cc4"), (*write, "#e39b2d")].iter().enumerate() {
            let bx = x + j as f64 * bar;
            let by = y(*ratio);
            let _ = write!(
                svg,
                r#"<rect x="{bx}" y="{by}" width="{}" height="{}" fill="{color}"/><text x="{}" y="{}" text-anchor="middle" font-size="10">{ratio:.2}</text>"#,
                bar - 2.0,
                top + height - by,
                bx + bar / 2.0 - 1.0,
                by - 3.0
            );
        }
        let _ = write!(svg, r#"<text x="{}" y="{}" text-anchor="middle">{name}</text>"#, x + bar, top + height + 18.0);
    }
    let ly = top + height + 40.0;
    let _ = write!(
        svg,
        r##"<rect x="{left}" y="{}" width="12" height="12" fill="#5b3cc4"/><text x="{}" y="{ly}">/read</text><rect x="{}" y="{}" width="12" height="12" fill="#e39b2d"/><text x="{}" y="{ly}">/write</text></svg>"##,
        ly - 10.0,
        left + 16.0,
        left + 70.0,
        ly - 10.0,
        left + 86.0
    );
    svg
}
