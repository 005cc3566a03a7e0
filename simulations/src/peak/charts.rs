//! The report's charts: inline SVG written here, no scripts, no fonts of our own (text is
//! SVG `<text>` in the browser's `sans-serif`).
//!
//! Readable at any number of bars: a bar is [`BAR_PX`] thick whatever the count (the chart
//! grows instead), a positive value is at least [`BAR_MIN_PX`] long and carries its number,
//! and no text is smaller than [`FONT_MIN_PX`]. A chart with nothing to show is a sentence
//! saying so. Time axes are the trace's clock time.

use super::report::{ratio, Bucket, ReplayResult, TRAVEL_BUCKET_MINUTES};
use std::fmt::Write;

/// Width of every chart, px.
pub const WIDTH: f64 = 900.0;
/// Labels, ticks and values, px.
pub const FONT_PX: f64 = 12.0;
/// Chart titles, px.
pub const TITLE_PX: f64 = 15.0;
/// The smallest text of any chart, px.
pub const FONT_MIN_PX: f64 = 12.0;
/// Thickness of a bar, px.
pub const BAR_PX: f64 = 16.0;
/// Shortest bar drawn for a positive value, px.
pub const BAR_MIN_PX: f64 = 3.0;
/// One bar's row, px.
const ROW_PX: f64 = 24.0;
/// A character's width, px, to fit labels (generous: sans-serif averages about 0.5 em).
const CHAR_PX: f64 = 0.62 * FONT_PX;
/// Most bars in the errors chart; the rest are summed into one.
const ERROR_BARS_MAX: usize = 30;
const MS_PER_DAY: i64 = 86_400_000;

const COLORS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `86216` → `86,216`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n` as a percentage of `of` (`–` when `of` is 0).
pub fn pct(n: u64, of: u64) -> String {
    if of == 0 {
        return "–".into();
    }
    let p = n as f64 * 100.0 / of as f64;
    if p > 0.0 && p < 0.1 {
        "<0.1%".into()
    } else {
        format!("{p:.1}%")
    }
}

/// A request rate, in the unit that keeps its digits (per second, minute or hour).
pub fn rate(per_second: f64) -> String {
    if per_second.is_nan() || per_second <= 0.0 {
        "0 requests/s".into()
    } else if per_second >= 100.0 {
        format!("{} requests/s", count(per_second.round() as u64))
    } else if per_second >= 1.0 {
        format!("{per_second:.1} requests/s")
    } else if per_second * 60.0 >= 1.0 {
        format!("{:.1} requests/min", per_second * 60.0)
    } else {
        format!("{:.2} requests/h", per_second * 3600.0)
    }
}

/// A length of time: `45 s`, `12.5 min`, `3.2 h`, `30.0 days`.
pub fn duration(ms: u64) -> String {
    let s = ms as f64 / 1000.0;
    if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} days", s / 86_400.0)
    }
}

/// (year, month, day) of a day number since 1970-01-01 (proleptic Gregorian).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The report's clock: trace time → the trace's local clock time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Local clock time at trace offset 0, ms since 1970-01-01 00:00 local.
    pub origin_ms: i64,
    pub offset_minutes: i32,
}

impl Clock {
    pub fn of(r: &ReplayResult) -> Clock {
        Clock {
            origin_ms: r.trace_start_ms as i64 + i64::from(r.clock_offset_minutes) * 60_000,
            offset_minutes: r.clock_offset_minutes,
        }
    }

    /// `UTC+08:00`.
    pub fn zone(&self) -> String {
        let m = self.offset_minutes;
        let sign = if m < 0 { '-' } else { '+' };
        format!("UTC{sign}{:02}:{:02}", m.abs() / 60, m.abs() % 60)
    }

    fn local(&self, trace_ms: u64) -> i64 {
        self.origin_ms
            .saturating_add(trace_ms.min(i64::MAX as u64) as i64)
    }

    /// `2026-11-24`.
    pub fn date(&self, trace_ms: u64) -> String {
        let (y, m, d) = civil(self.local(trace_ms).div_euclid(MS_PER_DAY));
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// `08:00:05`.
    pub fn time(&self, trace_ms: u64) -> String {
        let s = self.local(trace_ms).rem_euclid(MS_PER_DAY) / 1000;
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }

    /// `2026-11-24 08:00:05 UTC+08:00`.
    pub fn at(&self, trace_ms: u64) -> String {
        format!(
            "{} {} {}",
            self.date(trace_ms),
            self.time(trace_ms),
            self.zone()
        )
    }

    /// Tick label: `08:00`, `08:00:30` below a minute's step, `11-24 08:00` across days.
    fn label(&self, trace_ms: u64, step_ms: u64, multi_day: bool) -> String {
        let (date, time) = (self.date(trace_ms), self.time(trace_ms));
        let month_day = date.get(5..).unwrap_or_default();
        if step_ms >= MS_PER_DAY as u64 {
            month_day.to_string()
        } else if step_ms < 60_000 {
            time
        } else if multi_day {
            format!("{month_day} {}", time.get(..5).unwrap_or_default())
        } else {
            time.get(..5).unwrap_or_default().to_string()
        }
    }
}

/// An SVG being written.
struct Svg {
    out: String,
}

impl Svg {
    fn new(height: f64, title: &str) -> Svg {
        let mut out = String::new();
        let _ = write!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height:.0}\" \
             viewBox=\"0 0 {WIDTH} {height:.0}\" role=\"img\" aria-label=\"{}\" \
             font-family=\"sans-serif\" font-size=\"{FONT_PX}\">\
             <rect class=\"bg\" width=\"{WIDTH}\" height=\"{height:.0}\" fill=\"#fff\"/>",
            esc(title)
        );
        let mut s = Svg { out };
        s.text(
            12.0,
            20.0,
            "start",
            &format!("font-weight=\"bold\" font-size=\"{TITLE_PX}\""),
            title,
        );
        s
    }

    fn text(&mut self, x: f64, y: f64, anchor: &str, extra: &str, s: &str) {
        let _ = write!(
            self.out,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\" {extra}>{}</text>",
            esc(s)
        );
    }

    /// A label cut to `max_chars`, the whole label as its tooltip.
    fn label(&mut self, x: f64, y: f64, anchor: &str, max_chars: usize, s: &str) {
        if s.chars().count() <= max_chars {
            return self.text(x, y, anchor, "", s);
        }
        let cut: String = s.chars().take(max_chars.saturating_sub(1)).collect();
        let _ = write!(
            self.out,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\"><title>{}</title>{}…</text>",
            esc(s),
            esc(&cut)
        );
    }

    fn rect(&mut self, (x, y, w, h): (f64, f64, f64, f64), fill: &str, class: &str) {
        let _ = write!(
            self.out,
            "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{fill}\"/>"
        );
    }

    fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), stroke: &str) {
        let _ = write!(
            self.out,
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"{stroke}\" stroke-width=\"1\"/>"
        );
    }

    fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

fn chart(id: &str, svg: String) -> String {
    format!("<div class=\"chart\" id=\"chart-{id}\">{svg}</div>")
}

/// A chart with nothing to draw: a sentence saying why.
fn empty(id: &str, why: &str) -> String {
    format!(
        "<div class=\"chart empty\" id=\"chart-{id}\"><p>{}</p></div>",
        esc(why)
    )
}

fn text_px(s: &str) -> f64 {
    s.chars().count() as f64 * CHAR_PX
}

/// A round step near `x`: 1, 2 or 5 × 10^k.
fn nice_step(x: f64) -> f64 {
    let x = x.max(1e-9);
    let p = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|s| *s >= x)
        .unwrap_or(10.0 * p)
}

/// A tick value: `0.5`, `120`, `12k`, `3.5M`.
fn short(v: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if v.abs() >= 1e6 {
        format!("{}M", trim(format!("{:.1}", v / 1e6)))
    } else if v.abs() >= 1e4 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else {
        trim(format!("{v:.2}"))
    }
}

/// A value axis of `len` px: linear from 0, or logarithmic from 1 in decades.
#[derive(Clone, Copy, Debug)]
enum Scale {
    /// Linear; `Some(max)` fixes the top (100 for percentages).
    Linear(Option<f64>),
    /// Linear, ticks on whole numbers.
    Count,
    Log,
}

struct Axis {
    log: bool,
    max: f64,
    step: f64,
    len: f64,
}

impl Axis {
    fn new(scale: Scale, data_max: f64, len: f64) -> Axis {
        match scale {
            Scale::Log => {
                let decades = data_max.max(10.0).log10().ceil();
                Axis {
                    log: true,
                    max: decades,
                    step: (decades / 6.0).ceil().max(1.0),
                    len,
                }
            }
            Scale::Linear(_) | Scale::Count => {
                let fixed = if let Scale::Linear(f) = scale {
                    f
                } else {
                    None
                };
                let top = fixed.unwrap_or(data_max).max(1e-9);
                let least = if matches!(scale, Scale::Count) {
                    1.0
                } else {
                    0.0
                };
                let step = nice_step(top / 5.0).max(least);
                let max = fixed.unwrap_or_else(|| (top / step).ceil().max(1.0) * step);
                Axis {
                    log: false,
                    max,
                    step,
                    len,
                }
            }
        }
    }

    /// Position of `v`, 0..=len.
    fn pos(&self, v: f64) -> f64 {
        let at = if self.log { v.max(1.0).log10() } else { v };
        (at / self.max).clamp(0.0, 1.0) * self.len
    }

    /// (position, label) of each tick.
    fn ticks(&self) -> Vec<(f64, String)> {
        let n = (self.max / self.step).floor() as u64;
        (0..=n)
            .map(|i| {
                let t = i as f64 * self.step;
                let v = if self.log { 10f64.powf(t) } else { t };
                (t / self.max * self.len, short(v))
            })
            .collect()
    }
}

/// One horizontal bar.
struct Bar {
    label: String,
    value: f64,
    /// The number written after the bar.
    text: String,
    color: &'static str,
}

struct HBars<'a> {
    id: &'a str,
    title: &'a str,
    x_desc: &'a str,
    scale: Scale,
}

/// Horizontal bars, one row each: label, bar (at least [`BAR_MIN_PX`] when positive),
/// value.
fn hbars(c: &HBars, bars: &[Bar]) -> String {
    let longest = bars.iter().map(|b| text_px(&b.label)).fold(0.0, f64::max);
    let label_w = longest.clamp(40.0, 320.0);
    let text_w = bars.iter().map(|b| text_px(&b.text)).fold(0.0, f64::max) + 10.0;
    let (x0, x1) = (20.0 + label_w, WIDTH - 16.0 - text_w.min(300.0));
    let top = 36.0;
    let bottom = top + bars.len() as f64 * ROW_PX;
    let data_max = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let axis = Axis::new(c.scale, data_max, x1 - x0);
    let mut s = Svg::new(bottom + 48.0, c.title);
    for (x, label) in axis.ticks() {
        s.line((x0 + x, top), (x0 + x, bottom + 4.0), "#ddd");
        s.text(x0 + x, bottom + 18.0, "middle", "", &label);
    }
    s.line((x0, top), (x0, bottom), "#888");
    s.text((x0 + x1) / 2.0, bottom + 38.0, "middle", "", c.x_desc);
    let max_chars = (label_w / CHAR_PX).floor() as usize;
    for (i, b) in bars.iter().enumerate() {
        let y = top + i as f64 * ROW_PX;
        let mid = y + ROW_PX / 2.0 + FONT_PX * 0.35;
        s.label(x0 - 8.0, mid, "end", max_chars, &b.label);
        let len = if b.value > 0.0 {
            axis.pos(b.value).max(BAR_MIN_PX)
        } else {
            0.0
        };
        if len > 0.0 {
            let rect = (x0, y + (ROW_PX - BAR_PX) / 2.0, len, BAR_PX);
            s.rect(rect, b.color, "mark");
        }
        s.text(x0 + len + 6.0, mid, "start", "", &b.text);
    }
    chart(c.id, s.finish())
}

/// One line of a line chart: (trace ms, value); `None` breaks the line.
struct Series {
    name: String,
    points: Vec<(u64, Option<f64>)>,
}

struct Lines<'a> {
    id: &'a str,
    title: &'a str,
    y_desc: &'a str,
    y_max: Option<f64>,
    clock: Clock,
    /// Trace time the x axis spans (from 0).
    span_ms: u64,
}

/// Legend entries laid out in rows: (x, row) of each.
fn legend_layout(series: &[Series]) -> Vec<(f64, usize)> {
    let (mut x, mut row) = (12.0, 0);
    series
        .iter()
        .map(|s| {
            let w = 20.0 + text_px(&s.name) + 20.0;
            if x + w > WIDTH - 12.0 && x > 12.0 {
                (x, row) = (12.0, row + 1);
            }
            let at = (x, row);
            x += w;
            at
        })
        .collect()
}

/// A line chart over clock time. A lone point is drawn as a dot.
fn lines(c: &Lines, series: &[Series]) -> String {
    let legend = legend_layout(series);
    let rows = legend.iter().map(|l| l.1 + 1).max().unwrap_or(0);
    let y0 = 50.0 + rows as f64 * 20.0;
    let (x0, x1, height) = (80.0, WIDTH - 30.0, y0 + 250.0);
    let y1 = height - 56.0;
    let data_max = series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|p| p.1))
        .fold(0.0, f64::max);
    let yaxis = Axis::new(Scale::Linear(c.y_max), data_max, y1 - y0);
    let span = c.span_ms.max(1000) as f64;
    let px = |t: u64| x0 + (t as f64 / span).min(1.0) * (x1 - x0);
    let mut s = Svg::new(height, c.title);
    for ((x, row), (i, ser)) in legend.iter().zip(series.iter().enumerate()) {
        let y = 42.0 + *row as f64 * 20.0;
        s.rect((*x, y - 5.0, 14.0, 4.0), COLORS[i % COLORS.len()], "legend");
        s.text(x + 20.0, y, "start", "", &ser.name);
    }
    for (y, label) in yaxis.ticks() {
        s.line((x0 - 4.0, y1 - y), (x1, y1 - y), "#e4e4e4");
        s.text(x0 - 8.0, y1 - y + FONT_PX * 0.35, "end", "", &label);
    }
    let mid = (y0 + y1) / 2.0;
    let rotate = format!("transform=\"rotate(-90 18 {mid:.1})\"");
    s.text(18.0, mid, "middle", &rotate, c.y_desc);
    clock_axis(&mut s, c, (x0, x1, y1));
    s.line((x0, y1), (x1, y1), "#888");
    for (i, ser) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let xy = |(t, v): (u64, f64)| (px(t), y1 - yaxis.pos(v));
        for run in ser.points.split(|p| p.1.is_none()) {
            let pts: Vec<(f64, f64)> = run.iter().filter_map(|p| Some(xy((p.0, p.1?)))).collect();
            polyline(&mut s, &pts, color);
        }
    }
    chart(c.id, s.finish())
}

/// A run of points: a line, or a dot when it is one point.
fn polyline(s: &mut Svg, pts: &[(f64, f64)], color: &str) {
    match pts {
        [] => {}
        [(x, y)] => {
            let _ = write!(
                s.out,
                "<circle class=\"mark\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.5\" fill=\"{color}\"/>"
            );
        }
        _ => {
            let mut d = String::new();
            for (x, y) in pts {
                let _ = write!(d, "{x:.1},{y:.1} ");
            }
            let _ = write!(
                s.out,
                "<polyline class=\"mark\" points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
                d.trim_end()
            );
        }
    }
}

/// Steps between clock ticks, ms.
const CLOCK_STEPS: [u64; 22] = [
    1_000,
    2_000,
    5_000,
    10_000,
    15_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    900_000,
    1_800_000,
    3_600_000,
    7_200_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
    172_800_000,
    604_800_000,
    1_209_600_000,
    2_592_000_000,
];

/// The x axis: clock-time ticks (at most 8, on round clock times) and its title.
fn clock_axis(s: &mut Svg, c: &Lines, (x0, x1, y1): (f64, f64, f64)) {
    let span = c.span_ms.max(1000);
    let step = CLOCK_STEPS
        .into_iter()
        .find(|st| span / st <= 7)
        .unwrap_or(2_592_000_000);
    let multi_day = c.clock.date(0) != c.clock.date(span);
    let origin = c.clock.origin_ms.rem_euclid(step as i64) as u64;
    let mut t = (step - origin) % step;
    while t <= span {
        let x = x0 + t as f64 / span as f64 * (x1 - x0);
        s.line((x, y1), (x, y1 + 5.0), "#888");
        s.text(
            x,
            y1 + 19.0,
            "middle",
            "",
            &c.clock.label(t, step, multi_day),
        );
        t += step;
    }
    let days = if multi_day {
        format!("{} to {}", c.clock.date(0), c.clock.date(span))
    } else {
        c.clock.date(0)
    };
    let desc = format!("clock time, {} ({days})", c.clock.zone());
    s.text((x0 + x1) / 2.0, y1 + 42.0, "middle", "", &desc);
}

fn timeline_lines<'a>(r: &ReplayResult, id: &'a str, title: &'a str, y_desc: &'a str) -> Lines<'a> {
    Lines {
        id,
        title,
        y_desc,
        y_max: None,
        clock: Clock::of(r),
        span_ms: r.timeline.last().map_or(0, |b| b.at_ms) + r.timeline_bucket_ms,
    }
}

/// Requests per wall second over the trace's clock: due, answered ok, refused or failed,
/// not sent. Every bucket is drawn, empty ones as zeros.
pub fn throughput(r: &ReplayResult) -> String {
    if r.timeline.is_empty() {
        return empty("throughput", "The trace has no events.");
    }
    let wall_s = r.timeline_bucket_ms as f64 / r.speed.max(1e-9) / 1000.0;
    let per_s = |f: fn(&Bucket) -> u64| -> Vec<(u64, Option<f64>)> {
        let mid = r.timeline_bucket_ms / 2;
        r.timeline
            .iter()
            .map(|b| (b.at_ms + mid, Some(f(b) as f64 / wall_s.max(1e-9))))
            .collect()
    };
    let series = [
        ("due (offered)", per_s(|b| b.scheduled)),
        ("answered ok", per_s(|b| b.ok)),
        ("refused or failed", per_s(|b| b.failed)),
        ("not sent", per_s(|b| b.not_sent)),
    ]
    .map(|(name, points)| Series {
        name: name.into(),
        points,
    });
    let c = timeline_lines(r, "throughput", "Throughput", "requests per wall second");
    lines(&c, &series)
}

/// p50 and p99 latency from scheduled time, per bucket (a gap where nothing was sent).
pub fn latency(r: &ReplayResult) -> String {
    if r.timeline.iter().all(|b| b.sent == 0) {
        return empty(
            "latency",
            "No request was sent, so there is no latency to chart.",
        );
    }
    let mid = r.timeline_bucket_ms / 2;
    let of = |f: fn(&Bucket) -> f64| -> Vec<(u64, Option<f64>)> {
        r.timeline
            .iter()
            .map(|b| (b.at_ms + mid, (b.sent > 0).then(|| f(b))))
            .collect()
    };
    let series = [
        Series {
            name: "p50".into(),
            points: of(|b| b.p50_ms),
        },
        Series {
            name: "p99".into(),
            points: of(|b| b.p99_ms),
        },
    ];
    let c = timeline_lines(r, "latency", "Latency from scheduled time", "ms");
    lines(&c, &series)
}

/// Events by error kind, including those not sent; a log scale, each bar with its count.
pub fn errors(r: &ReplayResult) -> String {
    if r.errors.is_empty() {
        return empty(
            "errors",
            "No errors: every event of the trace was sent and answered ok.",
        );
    }
    let mut kinds: Vec<(&String, u64)> = r.errors.iter().map(|(k, n)| (k, *n)).collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let bar = |label: String, n: u64| Bar {
        label,
        value: n as f64,
        text: format!("{} ({} of the trace)", count(n), pct(n, r.events)),
        color: COLORS[3],
    };
    let mut bars: Vec<Bar> = kinds
        .iter()
        .take(ERROR_BARS_MAX)
        .map(|(k, n)| bar(k.to_string(), *n))
        .collect();
    if kinds.len() > ERROR_BARS_MAX {
        let rest = &kinds[ERROR_BARS_MAX..];
        let n = rest.iter().map(|k| k.1).sum();
        bars.push(bar(format!("{} other kinds", rest.len()), n));
    }
    let c = HBars {
        id: "errors",
        title: "Errors by kind",
        x_desc: "events (log scale)",
        scale: Scale::Log,
    };
    hbars(&c, &bars)
}

/// Matched share of each match operation's requests in the trace.
pub fn match_rate(r: &ReplayResult) -> String {
    let m = &r.matching;
    if m.all.requested == 0 {
        return empty("match-rate", "The trace has no match requests.");
    }
    let bar = |label: &str, o: &super::report::Outcome| Bar {
        label: label.to_string(),
        value: ratio(o.done, o.requested) * 100.0,
        text: format!(
            "{} — {} of {} ({} sent)",
            pct(o.done, o.requested),
            count(o.done),
            count(o.requested),
            count(o.sent)
        ),
        color: COLORS[2],
    };
    let mut bars: Vec<Bar> = m.by_op.iter().map(|(op, o)| bar(op, o)).collect();
    bars.push(bar("all match requests", &m.all));
    let c = HBars {
        id: "match-rate",
        title: "Match rate (matched / requested in the trace)",
        x_desc: "% of the trace's match requests that matched",
        scale: Scale::Linear(Some(100.0)),
    };
    hbars(&c, &bars)
}

/// Travel minutes of matched care, by bucket.
pub fn travel(r: &ReplayResult) -> String {
    let total: u64 = r.matching.travel_minutes.values().sum();
    if total == 0 {
        return empty("travel", "No matched care with a travel time.");
    }
    let bars: Vec<Bar> = r
        .matching
        .travel_minutes
        .iter()
        .map(|(b, n)| Bar {
            label: format!("{b}–{} min", b + TRAVEL_BUCKET_MINUTES - 1),
            value: *n as f64,
            text: format!("{} ({})", count(*n), pct(*n, total)),
            color: COLORS[0],
        })
        .collect();
    let c = HBars {
        id: "travel",
        title: "Travel minutes of matched care",
        x_desc: "matches",
        scale: Scale::Count,
    };
    hbars(&c, &bars)
}

/// Tier split of care taken, each tier beside its target.
pub fn tiers(r: &ReplayResult) -> String {
    let total: u64 = r.matching.tiers.iter().sum();
    if total == 0 {
        return empty("tiers", "No care was taken at a hospital of known tier.");
    }
    let names = ["primary", "secondary", "tertiary"];
    let mut bars = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let n = r.matching.tiers[i];
        let target = r.matching.tier_target_percent[i];
        bars.push(Bar {
            label: format!("{name}: this replay"),
            value: ratio(n, total) * 100.0,
            text: format!("{} ({})", pct(n, total), count(n)),
            color: COLORS[0],
        });
        bars.push(Bar {
            label: format!("{name}: target"),
            value: f64::from(target),
            text: format!("{target}%"),
            color: COLORS[7],
        });
    }
    let c = HBars {
        id: "tiers",
        title: &format!("Tier split of {} care items vs the target", count(total)),
        x_desc: "% of care taken",
        scale: Scale::Linear(Some(100.0)),
    };
    hbars(&c, &bars)
}

/// Occupied + held share of beds of the watched hospitals over the trace's clock.
pub fn occupancy(r: &ReplayResult) -> String {
    if r.bed_events == 0 {
        return empty(
            "occupancy",
            "No bed traffic: the trace holds, admits and releases no beds, so there is no occupancy to chart.",
        );
    }
    if r.occupancy.iter().all(|o| o.samples.is_empty()) {
        return empty(
            "occupancy",
            &format!(
                "The trace has {} bed events, but no occupancy was sampled (no hospital with bed traffic is known, or WardAvailability did not answer).",
                count(r.bed_events)
            ),
        );
    }
    let series: Vec<Series> = r
        .occupancy
        .iter()
        .map(|o| Series {
            name: format!("{} ({})", o.name, o.hospital),
            points: o
                .samples
                .iter()
                .map(|(t, occ, held, total)| {
                    let share = ratio(u64::from(occ + held), u64::from(*total)) * 100.0;
                    (*t, Some(share))
                })
                .collect(),
        })
        .collect();
    let mut c = timeline_lines(
        r,
        "occupancy",
        "Bed occupancy (occupied + held)",
        "% of beds",
    );
    c.y_max = Some(100.0);
    c.span_ms = c.span_ms.max(r.span_ms);
    lines(&c, &series)
}

/// The doctors given the most slot and consultation holds.
pub fn doctors(r: &ReplayResult) -> String {
    if r.top_doctors.is_empty() {
        return empty(
            "doctors",
            "No slot or consultation holds were given to doctors.",
        );
    }
    let bars: Vec<Bar> = r
        .top_doctors
        .iter()
        .map(|(d, h, n)| Bar {
            label: format!("doctor {d} (hospital {h})"),
            value: *n as f64,
            text: format!("{} holds", count(*n)),
            color: COLORS[4],
        })
        .collect();
    let c = HBars {
        id: "doctors",
        title: "Top doctors' load",
        x_desc: "slot and consultation holds",
        scale: Scale::Count,
    };
    hbars(&c, &bars)
}
