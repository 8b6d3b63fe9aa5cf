//! `report.html`: one self-contained file (inline SVG and CSS, no script, no network) that
//! shows a run: header and thresholds, charts over time, percentile curves, and tables.
//!
//! Charts stay readable for a 3-day run at 10 s intervals: series are downsampled to at
//! most [`MAX_POINTS`] points, and a point that stands for several intervals shows their
//! maximum for latencies and states (so spikes are never averaged away) and their mean
//! for per-interval counts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::{IntervalLine, Report};

/// Most points drawn per series.
pub const MAX_POINTS: usize = 1200;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 36.0;
/// Width of one legend entry.
const LEGEND: f64 = 165.0;
const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// How a series is downsampled.
#[derive(Clone, Copy)]
enum Fold {
    Max,
    Mean,
}

struct Series {
    name: String,
    /// (seconds, value); NaN where an interval has no data.
    points: Vec<(f64, f64)>,
}

/// Renders the page. `totals` are the run's histograms by tag (metric name, or
/// `custom.<name>`), for the percentile curves; `shape` describes the load shape.
pub fn render(
    report: &Report,
    lines: &[IntervalLine],
    totals: &BTreeMap<String, Histogram<u64>>,
    shape: &str,
) -> String {
    let mut html = String::with_capacity(256 * 1024);
    let passed = report.thresholds.iter().all(|t| t.pass);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>wsoak · {name}</title><style>{CSS}</style></head><body>\n\
         <h1>wsoak · {name} <span class=\"{cls}\">{verdict}</span></h1>\n\
         <table class=\"meta\"><tr><th>target</th><td>{target}</td></tr>\
         <tr><th>started</th><td>{started}</td></tr>\
         <tr><th>duration</th><td>{duration:.1} s{interrupted}</td></tr>\
         <tr><th>load shape</th><td>{shape}</td></tr>\
         <tr><th>sessions</th><td>planned {planned}, bound {bound}, peak active {peak}</td></tr>\
         <tr><th>build</th><td>wsoak {version} · scenario sha256 <code>{hash}</code></td></tr>\
         <tr><th>command</th><td><code>{command}</code></td></tr></table>\n",
        name = esc(&report.scenario),
        cls = if report.thresholds.is_empty() {
            "none"
        } else if passed {
            "pass"
        } else {
            "fail"
        },
        verdict = if report.thresholds.is_empty() {
            "no thresholds"
        } else if passed {
            "PASS"
        } else {
            "FAIL"
        },
        target = esc(&report.target),
        started = esc(&report.started_at),
        duration = report.duration_s,
        interrupted = match (&report.aborted_by, report.interrupted) {
            (Some(check), _) => format!(" · aborted: {}", esc(check)),
            (None, true) => " · interrupted".to_string(),
            _ => String::new(),
        },
        shape = esc(shape),
        planned = report.sessions.planned,
        bound = report.sessions.bound,
        peak = report.sessions.peak_active,
        version = esc(&report.wsoak.version),
        hash = esc(report.wsoak.scenario_sha256.as_deref().unwrap_or("-")),
        command = esc(&super::shell_words(&report.wsoak.command)),
    );
    if !report.thresholds.is_empty() {
        html.push_str(
            "<h2>Thresholds</h2><table><tr><th>check</th><th>observed</th><th>result</th></tr>",
        );
        for t in &report.thresholds {
            let _ = write!(
                html,
                "<tr><td><code>{}</code></td><td>{}</td><td class=\"{}\">{}</td></tr>",
                esc(&t.check),
                t.observed.map_or("no data".into(), |v| format!("{v:.4}")),
                if t.pass { "pass" } else { "fail" },
                if t.pass { "pass" } else { "FAIL" }
            );
        }
        html.push_str("</table>\n");
    }

    let step = downsample_step(lines.len());
    if step > 1 {
        let _ = writeln!(
            html,
            "<p class=\"note\">{} intervals, drawn as {} points: each point covers {step} \
             intervals and shows their maximum for latencies and sessions, their mean for \
             counts.</p>",
            lines.len(),
            lines.len().div_ceil(step)
        );
    }
    html.push_str("<h2>Over time</h2>\n");
    // `authenticating` and `binding` are the states of runs from before steps were a list
    // (one state, `steps`, since): kept so `wsoak report` still draws those runs' logs. A
    // state no interval has is not drawn.
    let states = [
        "bound",
        "connecting",
        "steps",
        "reconnecting",
        "away",
        "authenticating",
        "binding",
    ];
    let by_state: Vec<Series> = states
        .iter()
        .map(|s| series(lines, s, |l| l.states.get(*s).map(|v| *v as f64)))
        .filter(|s| s.points.iter().any(|p| p.1 > 0.0))
        .collect();
    html.push_str(&line_chart(
        "sessions",
        "Active sessions by state",
        "sessions",
        &by_state,
        Fold::Max,
        step,
    ));

    let mut rates = vec![series(lines, "connects", |l| {
        Some(*l.counts.get("connects.attempted").unwrap_or(&0) as f64)
    })];
    let mut causes: Vec<&String> = lines.iter().flat_map(|l| l.reconnects.keys()).collect();
    causes.sort();
    causes.dedup();
    for cause in causes {
        rates.push(series(lines, &format!("reconnect: {cause}"), |l| {
            Some(*l.reconnects.get(cause).unwrap_or(&0) as f64)
        }));
    }
    html.push_str(&line_chart(
        "connects",
        "Connects and reconnects (by cause) per interval",
        "per interval",
        &rates,
        Fold::Mean,
        step,
    ));

    let mut metrics: Vec<String> = lines
        .iter()
        .flat_map(|l| l.latency_ms.keys().cloned())
        .collect();
    metrics.sort();
    metrics.dedup();
    let mut custom: Vec<String> = lines
        .iter()
        .flat_map(|l| l.custom.latency_ms.keys().cloned())
        .collect();
    custom.sort();
    custom.dedup();
    let all = metrics
        .iter()
        .map(|m| (m.clone(), false))
        .chain(custom.iter().map(|m| (m.clone(), true)));
    for (metric, is_custom) in all {
        let pick = |l: &IntervalLine| {
            if is_custom {
                l.custom.latency_ms.get(&metric).cloned()
            } else {
                l.latency_ms.get(&metric).cloned()
            }
        };
        type Stat = fn(&super::Latency) -> Option<f64>;
        let stats: [(&str, Stat); 4] = [
            ("p50", |l| l.p50),
            ("p90", |l| l.p90),
            ("p99", |l| l.p99),
            ("max", |l| l.max),
        ];
        let by_stat: Vec<Series> = stats
            .iter()
            .map(|(name, get)| series(lines, name, |l| pick(l).and_then(|x| get(&x))))
            .collect();
        let title = if is_custom {
            format!("{metric} (script) latency per interval")
        } else {
            format!("{metric} latency per interval")
        };
        let id = format!(
            "latency-{}",
            if is_custom {
                format!("custom-{metric}")
            } else {
                metric.clone()
            }
        );
        html.push_str(&line_chart(&id, &title, "ms", &by_stat, Fold::Max, step));
    }

    html.push_str("<h2 id=\"percentiles\">Percentile distribution</h2>\n");
    for (tag, histogram) in totals {
        if !histogram.is_empty() {
            html.push_str(&percentile_chart(tag, histogram));
        }
    }

    html.push_str("<h2>Latency (ms)</h2><table><tr><th>metric</th><th>count</th><th>min</th><th>mean</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>");
    let custom_rows = report
        .custom
        .latency_ms
        .iter()
        .map(|(k, v)| (format!("~{k}"), v));
    for (name, l) in report
        .latency_ms
        .iter()
        .map(|(k, v)| (k.clone(), v))
        .chain(custom_rows)
    {
        let f = ms;
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&name), l.count, f(l.min), f(l.mean), f(l.p50), f(l.p90), f(l.p99), f(l.p999), f(l.max)
        );
    }
    html.push_str("</table>\n");
    html.push_str(&steps_table(report));
    html.push_str("<h2>Counts</h2><table>");
    let json = serde_json::to_value(report).expect("reports serialise");
    for section in ["sessions", "arrivals", "connects", "heartbeats", "messages"] {
        if let Some(map) = json[section].as_object() {
            let cells: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{} {}", esc(k), v))
                .collect();
            let _ = write!(
                html,
                "<tr><th>{section}</th><td>{}</td></tr>",
                cells.join(" · ")
            );
        }
    }
    let nonzero = |map: &BTreeMap<String, u64>| -> String {
        let cells: Vec<String> = map
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| format!("{} {v}", esc(k)))
            .collect();
        if cells.is_empty() {
            "none".into()
        } else {
            cells.join(" · ")
        }
    };
    let _ = write!(
        html,
        "<tr><th>reconnects</th><td>{} ({})</td></tr><tr><th>errors</th><td>{}</td></tr>",
        report.reconnects.total,
        nonzero(&report.reconnects.by_cause),
        nonzero(&report.errors)
    );
    if !report.custom.counters.is_empty() {
        let _ = write!(
            html,
            "<tr><th>script counters</th><td>{}</td></tr>",
            nonzero(&report.custom.counters)
        );
    }
    if let Some(server) = &report.server {
        let _ = write!(
            html,
            "<tr><th>server saw</th><td>connections {} · auth ok {} · auth rejected {} · bind_card {} · heartbeats {} · dropped {} · pushes {}</td></tr>",
            server.connections, server.auth_ok, server.auth_rejected, server.bind_card, server.heartbeats, server.dropped, server.pushes
        );
        if !server.messages_by_type.is_empty() {
            // What each step sent, as the server counted it: to set against the steps'
            // `reached`.
            let _ = write!(
                html,
                "<tr><th>server saw by type</th><td>{}</td></tr>",
                nonzero(&server.messages_by_type)
            );
        }
    }
    let _ = write!(
        html,
        "<tr><th>tester</th><td>{} shards · peak RSS {} · CPU {}</td></tr></table>\n\
         <p class=\"note\">wsoak report schema {}</p></body></html>\n",
        report.tester.shards,
        report
            .tester
            .peak_rss_kib
            .map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
        report
            .tester
            .cpu_s
            .map_or("-".into(), |c| format!("{c:.1} s")),
        esc(&report.schema)
    );
    html
}

/// The request/reply steps in the order sessions run them, each with its counts
/// (`steps.<step>`) and its latency's p50 and p99 (`latency_ms.<step>`); nothing for a
/// scenario without steps.
fn steps_table(report: &Report) -> String {
    if report.steps.0.is_empty() {
        return String::new();
    }
    let mut html = String::from(
        "<h2 id=\"steps\">Steps</h2><table class=\"steps\"><tr><th>step</th><th>reached</th>\
         <th>accepted</th><th>rejected</th><th>timed out</th><th>sessions</th>\
         <th>p50 (ms)</th><th>p99 (ms)</th></tr>",
    );
    for (name, c) in &report.steps.0 {
        let latency = report.latency_ms.get(name);
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            c.reached,
            c.accepted,
            c.rejected,
            c.timed_out,
            c.sessions,
            ms(latency.and_then(|l| l.p50)),
            ms(latency.and_then(|l| l.p99)),
        );
    }
    html.push_str(
        "</table>\n<p class=\"note\">In the order sessions run them. Reached: messages sent; \
         accepted: replies accepted (the latency's count, measured from the send); sessions: \
         sessions that passed the step at least once.</p>\n",
    );
    html
}

/// A latency in ms as the tables show it: `-` when there were no samples.
fn ms(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.3}"))
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}\
.pass{color:#fff;background:#2ca02c;padding:1px 8px;border-radius:3px}\
.fail{color:#fff;background:#d62728;padding:1px 8px;border-radius:3px}\
.none{color:#fff;background:#888;padding:1px 8px;border-radius:3px}\
.note{color:#666;font-size:12px}svg{display:block;margin:6px 0 18px}\
svg text{font:11px system-ui,sans-serif;fill:#444}.grid{stroke:#eee}.axis{stroke:#999}";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn downsample_step(n: usize) -> usize {
    n.div_ceil(MAX_POINTS).max(1)
}

fn series(
    lines: &[IntervalLine],
    name: &str,
    value: impl Fn(&IntervalLine) -> Option<f64>,
) -> Series {
    Series {
        name: name.to_string(),
        points: lines
            .iter()
            .map(|l| (l.t, value(l).unwrap_or(f64::NAN)))
            .collect(),
    }
}

/// Folds runs of `step` points into one, keeping extremes for `Fold::Max`.
fn fold(points: &[(f64, f64)], step: usize, how: Fold) -> Vec<(f64, f64)> {
    if step <= 1 {
        return points.to_vec();
    }
    points
        .chunks(step)
        .map(|chunk| {
            let t = chunk.last().map_or(0.0, |p| p.0);
            let values: Vec<f64> = chunk.iter().map(|p| p.1).filter(|v| !v.is_nan()).collect();
            let v = if values.is_empty() {
                f64::NAN
            } else {
                match how {
                    Fold::Max => values.iter().cloned().fold(f64::MIN, f64::max),
                    Fold::Mean => values.iter().sum::<f64>() / values.len() as f64,
                }
            };
            (t, v)
        })
        .collect()
}

/// A round upper bound for an axis.
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if max <= m * magnitude {
            return m * magnitude;
        }
    }
    10.0 * magnitude
}

fn format_time(seconds: f64) -> String {
    if seconds >= 7200.0 {
        format!("{:.1}h", seconds / 3600.0)
    } else if seconds >= 120.0 {
        format!("{:.0}m", seconds / 60.0)
    } else {
        format!("{seconds:.0}s")
    }
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 || v >= 100.0 {
        format!("{v:.0}")
    } else {
        let text = format!("{v:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Opens a chart's SVG element with its title.
fn svg_open(id: &str, title: &str) -> String {
    format!(
        "<svg id=\"{}\" class=\"chart\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" \
         aria-label=\"{t}\"><text x=\"{LEFT}\" y=\"16\" font-weight=\"bold\">{t}</text>",
        esc(id),
        t = esc(title)
    )
}

/// Horizontal grid lines with their value labels, at fifths of `y_max`.
fn y_grid(svg: &mut String, y_max: f64, y: impl Fn(f64) -> f64) {
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y(v) + 4.0,
            format_value(v),
            yy = y(v),
        );
    }
}

fn line_chart(
    id: &str,
    title: &str,
    unit: &str,
    series: &[Series],
    how: Fold,
    step: usize,
) -> String {
    let folded: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|s| (s.name.as_str(), fold(&s.points, step, how)))
        .collect();
    let x_max = folded
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let y_max = nice_max(
        folded
            .iter()
            .flat_map(|(_, p)| p.iter().map(|p| p.1))
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max),
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |t: f64| LEFT + t / x_max * plot_w;
    let y = |v: f64| TOP + plot_h - v / y_max * plot_h;
    let mut svg = svg_open(&format!("chart-{id}"), title);
    y_grid(&mut svg, y_max, y);
    for i in 0..=4 {
        let t = x_max * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x(t),
            HEIGHT - BOTTOM + 16.0,
            format_time(t)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"12\" y=\"{:.1}\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">{}</text>",
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        esc(unit)
    );
    for (i, (name, points)) in folded.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut d = String::new();
        let mut pen_down = false;
        for (t, v) in points {
            if v.is_nan() {
                pen_down = false;
                continue;
            }
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if pen_down { "L" } else { "M" },
                x(*t),
                y(*v)
            );
            pen_down = true;
        }
        if points.iter().filter(|p| !p.1.is_nan()).count() == 1 {
            // A lone point draws no line; mark it.
            if let Some((t, v)) = points.iter().find(|p| !p.1.is_nan()) {
                let _ = write!(
                    svg,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{color}\"/>",
                    x(*t),
                    y(*v)
                );
            }
        }
        let _ = write!(
            svg,
            "<path d=\"{d}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\"><title>{n}</title></path>\
             <rect x=\"{lx:.1}\" y=\"6\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{tx:.1}\" y=\"15\">{n}</text>",
            n = esc(name),
            lx = WIDTH - RIGHT - LEGEND * (folded.len() - i) as f64,
            tx = WIDTH - RIGHT - LEGEND * (folded.len() - i) as f64 + 14.0,
        );
    }
    let _ = writeln!(
        svg,
        "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{:.1}\"/></svg>",
        TOP + plot_h
    );
    svg
}

/// The classic HdrHistogram percentile curve: latency against percentile, with the
/// percentile axis stretched as 1 / (1 − q) so the tail gets the room.
fn percentile_chart(tag: &str, h: &Histogram<u64>) -> String {
    let max_nines = 6.0; // 99.9999%
    let points: Vec<(f64, f64)> = h
        .iter_quantiles(5)
        .map(|v| {
            let q = v.quantile_iterated_to();
            let nines = if q >= 1.0 {
                max_nines
            } else {
                (-(1.0 - q).log10()).min(max_nines)
            };
            (nines, v.value_iterated_to() as f64 / 1000.0)
        })
        .collect();
    let y_max = nice_max(points.iter().map(|p| p.1).fold(0.0, f64::max));
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |n: f64| LEFT + n / max_nines * plot_w;
    let y = |v: f64| TOP + plot_h - v / y_max * plot_h;
    let mut svg = svg_open(
        &format!("percentiles-{tag}"),
        &format!("{tag}: latency by percentile ({} samples)", h.len()),
    );
    for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"]
        .iter()
        .enumerate()
    {
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{TOP}\" y2=\"{:.1}\"/><text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            TOP + plot_h,
            HEIGHT - BOTTOM + 16.0,
            xx = x(i as f64)
        );
    }
    y_grid(&mut svg, y_max, y);
    let mut d = String::new();
    for (i, (n, v)) in points.iter().enumerate() {
        let _ = write!(
            d,
            "{}{:.1},{:.1}",
            if i == 0 { "M" } else { "L" },
            x(*n),
            y(*v)
        );
    }
    let _ = writeln!(
        svg,
        "<path d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\"/>\
         <text x=\"12\" y=\"{:.1}\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">ms</text></svg>",
        PALETTE[0],
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Recorder;
    use crate::report::{Footprint, Meta};
    use std::time::Duration;

    #[test]
    fn folding_keeps_spikes() {
        let mut points: Vec<(f64, f64)> = (0..10_000).map(|i| (i as f64, 1.0)).collect();
        points[4321].1 = 500.0;
        let folded = fold(&points, downsample_step(points.len()), Fold::Max);
        assert!(folded.len() <= MAX_POINTS);
        assert_eq!(folded.iter().map(|p| p.1).fold(0.0, f64::max), 500.0);
        let mean = fold(&points, 10, Fold::Mean);
        assert!((mean[432].1 - 50.9).abs() < 1e-9);
    }

    fn report(steps: &[std::sync::Arc<str>], fill: impl FnOnce(&mut Recorder)) -> Report {
        let meta = Meta {
            identity: Default::default(),
            scenario: "t".into(),
            target: "embedded".into(),
            planned: 4,
            shards: 1,
            workers: 0,
            lost_workers: Vec::new(),
            started_at: std::time::UNIX_EPOCH,
            elapsed: Duration::from_secs(1),
            peak_active: 0,
            interrupted: false,
            aborted_by: None,
        };
        let mut recorder = Recorder::for_steps(steps);
        fill(&mut recorder);
        Report::build(&recorder, &meta, None, Footprint::default())
    }

    #[test]
    fn steps_table_lists_each_step_in_order_with_its_counts_and_latency() {
        let r = report(&["auth".into(), "subscribe".into()], |r| {
            let auth = r.step(0);
            auth.reached = 4;
            auth.sessions = 4;
            for _ in 0..4 {
                r.step_accepted(0, Duration::from_micros(1500));
            }
            let subscribe = r.step(1);
            subscribe.reached = 4;
            subscribe.rejected = 1;
            subscribe.timed_out = 1;
            subscribe.sessions = 2;
            for _ in 0..2 {
                r.step_accepted(1, Duration::from_micros(2000));
            }
        });
        let html = render(&r, &[], &BTreeMap::new(), "4 sessions");
        let auth = "<tr><td>auth</td><td>4</td><td>4</td><td>0</td><td>0</td><td>4</td>\
                    <td>1.500</td><td>1.500</td></tr>";
        let subscribe = "<tr><td>subscribe</td><td>4</td><td>2</td><td>1</td><td>1</td>\
                         <td>2</td><td>2.000</td><td>2.000</td></tr>";
        let table = &html[html.find("<h2 id=\"steps\">").expect("a steps table")..];
        let table = &table[..table.find("</table>").unwrap()];
        let (at_auth, at_subscribe) = (table.find(auth), table.find(subscribe));
        assert!(at_auth.is_some() && at_subscribe.is_some(), "{table}");
        assert!(at_auth < at_subscribe, "scenario order: {table}");
    }

    #[test]
    fn no_steps_table_without_steps() {
        let r = report(&[], |_| {});
        let html = render(&r, &[], &BTreeMap::new(), "4 sessions");
        assert!(!html.contains("id=\"steps\""), "{html}");
        assert!(html.contains("<h2>Counts</h2>"));
    }

    #[test]
    fn nice_bounds() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.2), 5.0);
        assert_eq!(nice_max(180.0), 200.0);
        assert_eq!(nice_max(0.7), 1.0);
    }
}
