//! The report's charts: inline SVG drawn by plotters' SVG backend.
//!
//! plotters is built without its `ttf` feature (no font-kit, fontconfig or freetype): text
//! is written as SVG `<text>` elements with a generic `sans-serif` family that the browser
//! renders, so the charts draw on a minimal machine with no fonts installed.

use super::report::{ReplayResult, TIER_TARGET_PERCENT, TRAVEL_BUCKET_MINUTES};
use plotters::prelude::*;
use std::error::Error;

const WIDTH: u32 = 900;
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

type Drawn = Result<(), Box<dyn Error>>;

/// Runs a drawing into an SVG string; a failure becomes a small SVG saying so.
fn render(
    id: &str,
    height: u32,
    draw: impl FnOnce(DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Drawn,
) -> String {
    let mut out = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        draw(root)
    };
    let body = match result {
        Ok(()) => out,
        Err(e) => format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"40\">\
             <text x=\"10\" y=\"25\">chart not drawn: {}</text></svg>",
            e.to_string().replace('<', "&lt;").replace('&', "&amp;")
        ),
    };
    format!("<div class=\"chart\" id=\"chart-{id}\">{body}</div>")
}

/// A line chart of several series over a numeric x axis.
fn lines(
    id: &str,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: Vec<(String, Vec<(f64, f64)>)>,
) -> String {
    let xmax = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .fold(1.0f64, f64::max);
    let ymax = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.1;
    render(id, 340, |root| {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..xmax, 0f64..ymax)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()?;
        for (i, (name, points)) in series.into_iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// A horizontal bar chart of labelled values.
fn hbars(
    id: &str,
    title: &str,
    x_desc: &str,
    items: Vec<(String, f64)>,
    color: RGBColor,
) -> String {
    let items = if items.is_empty() {
        vec![("(none)".to_string(), 0.0)]
    } else {
        items
    };
    let n = items.len();
    let xmax = items.iter().map(|i| i.1).fold(0.0f64, f64::max).max(1e-3) * 1.15;
    let labels: Vec<String> = items.iter().map(|i| i.0.clone()).collect();
    render(id, 70 + 24 * n as u32, |root| {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(330)
            .build_cartesian_2d(0f64..xmax, (0..n).into_segmented())?;
        let label = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&label)
            .x_desc(x_desc)
            .draw()?;
        chart.draw_series(items.iter().enumerate().map(|(i, (_, v))| {
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (*v, SegmentValue::Exact(i + 1)),
                ],
                color.filled(),
            );
            bar.set_margin(3, 3, 0, 0);
            bar
        }))?;
        root.present()?;
        Ok(())
    })
}

/// Requests per second: scheduled, ok, errors.
pub fn throughput(r: &ReplayResult) -> String {
    let pts = |f: &dyn Fn(&super::report::Second) -> u64| -> Vec<(f64, f64)> {
        r.per_second
            .iter()
            .map(|s| (s.second as f64, f(s) as f64))
            .collect()
    };
    lines(
        "throughput",
        "Throughput",
        "wall seconds since start",
        "requests / s",
        vec![
            ("scheduled".into(), pts(&|s| s.scheduled)),
            ("ok".into(), pts(&|s| s.ok)),
            ("refused or failed".into(), pts(&|s| s.errors)),
        ],
    )
}

/// p50 and p99 latency per second.
pub fn latency(r: &ReplayResult) -> String {
    let p50 = r
        .per_second
        .iter()
        .map(|s| (s.second as f64, s.p50_ms))
        .collect();
    let p99 = r
        .per_second
        .iter()
        .map(|s| (s.second as f64, s.p99_ms))
        .collect();
    lines(
        "latency",
        "Latency from scheduled time",
        "wall seconds since start",
        "ms",
        vec![("p50".into(), p50), ("p99".into(), p99)],
    )
}

/// Errors by kind.
pub fn errors(r: &ReplayResult) -> String {
    let mut items: Vec<(String, f64)> = r
        .errors
        .iter()
        .map(|(k, n)| (k.clone(), *n as f64))
        .collect();
    items.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    items.truncate(16);
    hbars("errors", "Errors by kind", "requests", items, COLORS[3])
}

/// Match rate per match operation.
pub fn match_rate(r: &ReplayResult) -> String {
    let mut items: Vec<(String, f64)> = r
        .matching
        .by_op
        .iter()
        .map(|(op, (attempted, matched))| {
            let rate = if *attempted == 0 {
                0.0
            } else {
                *matched as f64 * 100.0 / *attempted as f64
            };
            (format!("{op} ({matched}/{attempted})"), rate)
        })
        .collect();
    items.push((
        format!("all ({}/{})", r.matching.matched, r.matching.attempted),
        r.matching.rate * 100.0,
    ));
    hbars(
        "match-rate",
        "Match rate",
        "% of attempts matched",
        items,
        COLORS[2],
    )
}

/// Travel minutes histogram.
pub fn travel(r: &ReplayResult) -> String {
    let items = r
        .matching
        .travel_minutes
        .iter()
        .map(|(b, n)| {
            (
                format!("{b}-{} min", b + TRAVEL_BUCKET_MINUTES - 1),
                *n as f64,
            )
        })
        .collect();
    hbars(
        "travel",
        "Travel minutes of matched care",
        "matches",
        items,
        COLORS[0],
    )
}

/// Tier split of matched care against the target.
pub fn tiers(r: &ReplayResult) -> String {
    let total: u64 = r.matching.tiers.iter().sum();
    let actual: Vec<f64> = r
        .matching
        .tiers
        .iter()
        .map(|n| {
            if total == 0 {
                0.0
            } else {
                *n as f64 * 100.0 / total as f64
            }
        })
        .collect();
    let names = ["primary", "secondary", "tertiary"];
    render("tiers", 340, |root| {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Tier split of {total} matched care items vs the 50/35/15 target"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d((0..3usize).into_segmented(), 0f64..100f64)?;
        let label = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => names.get(*i).map(|s| s.to_string()).unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(3)
            .x_label_formatter(&label)
            .y_desc("% of matched care")
            .draw()?;
        let seg = (WIDTH - 100) / 3;
        chart
            .draw_series((0..3).map(|i| {
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), actual[i]),
                    ],
                    COLORS[0].filled(),
                );
                bar.set_margin(0, 0, seg / 8, seg / 2);
                bar
            }))?
            .label("actual")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], COLORS[0].filled()));
        chart
            .draw_series((0..3).map(|i| {
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (
                            SegmentValue::Exact(i + 1),
                            f64::from(TIER_TARGET_PERCENT[i]),
                        ),
                    ],
                    COLORS[7].filled(),
                );
                bar.set_margin(0, 0, seg / 2, seg / 8);
                bar
            }))?
            .label("target")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], COLORS[7].filled()));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// Occupied + held share of beds per watched hospital over trace time.
pub fn occupancy(r: &ReplayResult) -> String {
    let series = r
        .occupancy
        .iter()
        .map(|o| {
            let pts = o
                .samples
                .iter()
                .map(|(m, occ, held, total)| {
                    let pct = if *total == 0 {
                        0.0
                    } else {
                        f64::from(occ + held) * 100.0 / f64::from(*total)
                    };
                    (*m, pct)
                })
                .collect();
            (format!("{} ({})", o.name, o.hospital), pts)
        })
        .collect();
    lines(
        "occupancy",
        "Bed occupancy (occupied + held)",
        "trace minutes",
        "% of beds",
        series,
    )
}

/// The busiest doctors.
pub fn doctors(r: &ReplayResult) -> String {
    let items = r
        .top_doctors
        .iter()
        .take(15)
        .map(|(d, h, n)| (format!("doctor {d} (hospital {h})"), *n as f64))
        .collect();
    hbars(
        "doctors",
        "Top doctors' load",
        "holds, bookings, consultations",
        items,
        COLORS[4],
    )
}
