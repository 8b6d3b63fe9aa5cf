//! `report.html`: one self-contained file (inline SVG, CSS and script, no network) that
//! shows a run: a summary of the key numbers, thresholds, charts over time, percentile
//! curves, and tables.
//!
//! The page reads without script: every chart is inline SVG drawn here. A small inline
//! script (`assets/charts.js`) adds what SVG alone cannot: the values under the pointer,
//! and zoom (drag across a chart; double-click to zoom out), redrawing the charts over
//! time from the same series, embedded as JSON. It loads nothing.
//!
//! Charts stay readable, and the file small, for a 3-day run at 10 s intervals: series
//! are downsampled to at most [`MAX_POINTS`] points, and a point that stands for several
//! intervals shows their maximum for latencies, states and errors (so spikes are never
//! averaged away) and their mean for rates and other per-interval counts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::{IntervalLine, Report};
use crate::units::{format_number, format_percent};

/// Most points drawn per series.
pub const MAX_POINTS: usize = 1200;

/// The charts' coordinate system (the SVG viewBox); CSS scales it to the window's width.
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 250.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 40.0;
/// Rough width of one character of the charts' 11px labels, to keep labels inside.
const CHAR: f64 = 6.5;
/// Most ticks on a time axis.
const MAX_TICKS: usize = 7;
/// Round steps between time ticks, in seconds: 1, 2, 5 × 10^k below a minute, then
/// minutes, hours and days (a longer span multiplies the last by 10).
const TIME_STEPS: [f64; 31] = [
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    20.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1200.0,
    1800.0,
    3600.0,
    7200.0,
    10800.0,
    21600.0,
    43200.0,
    86400.0,
    172_800.0,
    432_000.0,
    864_000.0,
    1_728_000.0,
    4_320_000.0,
];
/// The Okabe–Ito palette, in the order a chart's series take them: told apart with every
/// common colour-vision deficiency, and with no red and no green in it, so no chart ever
/// pairs the two. Yellow last: it is the faintest on white.
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442",
];
/// The inline script: hover values and zoom.
const SCRIPT: &str = include_str!("assets/charts.js");

/// How a series is downsampled.
#[derive(Clone, Copy)]
enum Fold {
    Max,
    Mean,
}

/// One line of a chart over time.
struct Series {
    name: String,
    /// One value per interval; NaN where an interval has no data.
    values: Vec<f64>,
}

/// A chart over time, before downsampling.
struct TimeChart {
    /// The element id, `chart-…`.
    id: String,
    title: String,
    /// The value axis's label, with its unit.
    axis: String,
    /// What follows a value in the hover tooltip: its unit.
    suffix: &'static str,
    series: Vec<Series>,
    fold: Fold,
}

/// The run details' row for a shard (`run --shard`) or a merged run (`merge`), if either.
fn shards_row(report: &Report) -> String {
    if let Some(shard) = &report.shard {
        return format!(
            "<tr><th>shard</th><td>{} of {} (from 0), started at {}</td></tr>",
            shard.index,
            shard.count,
            esc(&shard.start_at)
        );
    }
    let Some(merged) = &report.merged else {
        return String::new();
    };
    let missing = if merged.missing.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = merged.missing.iter().map(u32::to_string).collect();
        format!(" · <b>missing {}</b>: not the whole run", list.join(", "))
    };
    format!(
        "<tr><th>shards</th><td>{} of {} merged{missing}</td></tr>",
        merged.shards.len(),
        merged.count
    )
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
    let (verdict_class, verdict) = verdict(report);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>wsoak · {name}</title><style>{CSS}</style></head><body>\n\
         <h1>wsoak · {name} <span class=\"{verdict_class}\">{verdict}</span></h1>\n",
        name = esc(&report.scenario),
    );
    html.push_str(&summary(report));
    let _ = writeln!(
        html,
        "<details class=\"meta\"><summary>Run details</summary><table>\
         <tr><th>target</th><td>{target}</td></tr>\
         <tr><th>started</th><td>{started}</td></tr>\
         <tr><th>duration</th><td>{duration} s{interrupted}</td></tr>\
         <tr><th>load shape</th><td>{shape}</td></tr>{shards}\
         <tr><th>build</th><td>wsoak {version} · scenario sha256 <code>{hash}</code></td></tr>\
         <tr><th>command</th><td><code>{command}</code></td></tr></table></details>",
        target = esc(&report.target),
        started = esc(&report.started_at),
        duration = format_number(report.duration_s, 1),
        interrupted = match (&report.aborted_by, report.interrupted) {
            (Some(check), _) => format!(" · aborted: {}", esc(check)),
            (None, true) => " · interrupted".to_string(),
            _ => String::new(),
        },
        shape = esc(shape),
        shards = shards_row(report),
        version = esc(&report.wsoak.version),
        hash = esc(report.wsoak.scenario_sha256.as_deref().unwrap_or("-")),
        command = esc(&super::shell_words(&report.wsoak.command)),
    );
    html.push_str(&thresholds_table(report));

    let step = downsample_step(lines.len());
    html.push_str("<h2>Over time</h2>\n<p class=\"note\" id=\"zoom-note\"></p>\n");
    if step > 1 {
        let _ = writeln!(
            html,
            "<p class=\"note\">{} intervals, drawn as {} points: each point covers {step} \
             intervals and shows their maximum for latencies, sessions and errors, their \
             mean for rates and other counts.</p>",
            lines.len(),
            lines.len().div_ceil(step)
        );
    }
    let times: Vec<f64> = fold(
        &lines.iter().map(|l| (l.t, l.t)).collect::<Vec<_>>(),
        step,
        Fold::Max,
    )
    .into_iter()
    .map(|p| p.0)
    .collect();
    let end = times.last().copied().unwrap_or(0.0).max(1.0);
    let mut embedded = Vec::new();
    for chart in time_charts(lines) {
        let folded: Vec<(&str, Vec<f64>)> = chart
            .series
            .iter()
            .map(|s| {
                let points: Vec<(f64, f64)> = lines
                    .iter()
                    .map(|l| l.t)
                    .zip(s.values.iter().copied())
                    .collect();
                let values = fold(&points, step, chart.fold).into_iter().map(|p| p.1);
                (s.name.as_str(), values.collect())
            })
            .collect();
        html.push_str(&time_figure(&chart, &times, &folded, end));
        embedded.push(json!({
            "id": chart.id,
            "axis": chart.axis,
            "suffix": chart.suffix,
            "series": folded.iter().enumerate().map(|(i, (name, values))| json!({
                "name": name,
                "color": PALETTE[i % PALETTE.len()],
                "v": values.iter().map(|v| rounded(*v)).collect::<Vec<Value>>(),
            })).collect::<Vec<Value>>(),
        }));
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
         <p class=\"note\">wsoak report schema {}</p>\n",
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
    let _ = writeln!(
        html,
        "<script type=\"application/json\" id=\"wsoak-series\">{}</script>\
         <script>{SCRIPT}</script></body></html>",
        embed(&times, end, embedded)
    );
    html
}

/// The verdict's CSS class and words.
fn verdict(report: &Report) -> (&'static str, &'static str) {
    if report.thresholds.is_empty() {
        ("none", "no thresholds")
    } else if report.thresholds.iter().all(|t| t.pass) {
        ("pass", "PASS")
    } else {
        ("fail", "FAIL")
    }
}

/// The key numbers, each with its unit, as cards at the top of the page.
fn summary(report: &Report) -> String {
    let per_second = |n: u64| {
        if report.duration_s > 0.0 {
            format!("{} /s", format_number(n as f64 / report.duration_s, 2))
        } else {
            "-".to_string()
        }
    };
    let errors: u64 = report.errors.values().sum();
    let operations = report.connects.attempted + report.heartbeats.sent;
    let error_rate = if operations > 0 {
        format_percent(errors as f64 / operations as f64)
    } else {
        "-".to_string()
    };
    let (verdict_class, verdict) = verdict(report);
    let failed = report.thresholds.iter().filter(|t| !t.pass).count();
    let mut cards = vec![
        (
            "summary-verdict".to_string(),
            "verdict".to_string(),
            format!("<span class=\"{verdict_class}\">{verdict}</span>"),
            if report.thresholds.is_empty() {
                "no thresholds set".to_string()
            } else {
                format!("{failed} of {} thresholds failed", report.thresholds.len())
            },
        ),
        (
            "summary-sessions".to_string(),
            "sessions bound".to_string(),
            format!("{} of {}", report.sessions.bound, report.sessions.planned),
            format!("peak {} active at once", report.sessions.peak_active),
        ),
        (
            "summary-heartbeats".to_string(),
            "heartbeats".to_string(),
            per_second(report.heartbeats.sent),
            format!(
                "{} sent, {} acked, {} failed",
                report.heartbeats.sent, report.heartbeats.acked, report.heartbeats.failed
            ),
        ),
        (
            "summary-messages".to_string(),
            "messages received".to_string(),
            per_second(report.messages.received),
            format!(
                "{} in {} s",
                report.messages.received,
                format_number(report.duration_s, 1)
            ),
        ),
        (
            "summary-errors".to_string(),
            "error rate".to_string(),
            error_rate,
            format!("{errors} errors in {operations} connects and heartbeats"),
        ),
    ];
    let steps = report.steps.0.iter().map(|(name, _)| name.as_str());
    for name in steps.chain(std::iter::once("heartbeat")) {
        let p99 = report.latency_ms.get(name).and_then(|l| l.p99);
        cards.push((
            format!("summary-p99-{name}"),
            format!("{name} p99"),
            p99.map_or("-".to_string(), |v| format!("{} ms", format_number(v, 3))),
            report
                .latency_ms
                .get(name)
                .map_or("no samples".to_string(), |l| format!("{} samples", l.count)),
        ));
    }
    let mut html = String::from("<div class=\"summary\" id=\"summary\">");
    for (id, label, value, detail) in cards {
        let _ = write!(
            html,
            "<div class=\"card\" id=\"{}\"><div class=\"label\">{}</div>\
             <div class=\"value\">{value}</div><div class=\"detail\">{}</div></div>",
            esc(&id),
            esc(&label),
            esc(&detail)
        );
    }
    html.push_str("</div>\n");
    html
}

/// Each threshold with its observed value in its unit.
fn thresholds_table(report: &Report) -> String {
    if report.thresholds.is_empty() {
        return String::new();
    }
    let mut html = String::from(
        "<h2>Thresholds</h2><table id=\"thresholds\"><tr><th>check</th><th>observed</th>\
         <th>result</th></tr>",
    );
    for t in &report.thresholds {
        let _ = write!(
            html,
            "<tr><td><code>{}</code></td><td>{}</td><td class=\"{}\">{}</td></tr>",
            esc(&t.check),
            esc(&t.observed_text()),
            if t.pass { "pass" } else { "fail" },
            if t.pass { "pass" } else { "FAIL" }
        );
    }
    html.push_str("</table>\n");
    html
}

/// The charts over time, in page order, each series one value per interval.
fn time_charts(lines: &[IntervalLine]) -> Vec<TimeChart> {
    let mut charts = Vec::new();
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
    charts.push(TimeChart {
        id: "chart-sessions".into(),
        title: "Active sessions by state".into(),
        axis: "sessions".into(),
        suffix: " sessions",
        series: states
            .iter()
            .map(|s| series(lines, s, |l| l.states.get(*s).map(|v| *v as f64)))
            .filter(|s| s.values.iter().any(|v| *v > 0.0))
            .collect(),
        fold: Fold::Max,
    });

    // Per second, not per interval: an interval cut short at the end would read as a dip.
    let seconds: Vec<f64> = lines
        .iter()
        .scan(0.0, |before, l| {
            let dt = l.t - *before;
            *before = l.t;
            Some(dt)
        })
        .collect();
    let rate = |name: &str, counter: &str| Series {
        name: name.to_string(),
        values: lines
            .iter()
            .zip(&seconds)
            .map(|(l, dt)| {
                if *dt > 0.0 {
                    *l.counts.get(counter).unwrap_or(&0) as f64 / dt
                } else {
                    f64::NAN
                }
            })
            .collect(),
    };
    charts.push(TimeChart {
        id: "chart-heartbeats".into(),
        title: "Heartbeats per second".into(),
        axis: "heartbeats/s".into(),
        suffix: " /s",
        series: vec![
            rate("sent", "heartbeats.sent"),
            rate("acked", "heartbeats.acked"),
            rate("failed", "heartbeats.failed"),
        ],
        fold: Fold::Mean,
    });
    charts.push(TimeChart {
        id: "chart-messages".into(),
        title: "Messages received per second".into(),
        axis: "messages/s".into(),
        suffix: " /s",
        series: vec![rate("received", "messages.received")],
        fold: Fold::Mean,
    });

    let mut connects = vec![series(lines, "connects", |l| {
        Some(*l.counts.get("connects.attempted").unwrap_or(&0) as f64)
    })];
    for cause in keys(lines, |l| &l.reconnects) {
        connects.push(series(lines, &format!("reconnect: {cause}"), |l| {
            Some(*l.reconnects.get(&cause).unwrap_or(&0) as f64)
        }));
    }
    charts.push(TimeChart {
        id: "chart-connects".into(),
        title: "Connects and reconnects (by cause) per interval".into(),
        axis: "per interval".into(),
        suffix: "",
        series: connects,
        fold: Fold::Mean,
    });

    let kinds = keys(lines, |l| &l.errors);
    let errors = if kinds.is_empty() {
        vec![series(lines, "errors (none in any interval)", |_| {
            Some(0.0)
        })]
    } else {
        kinds
            .iter()
            .map(|kind| {
                series(lines, kind, |l| {
                    Some(*l.errors.get(kind).unwrap_or(&0) as f64)
                })
            })
            .collect()
    };
    charts.push(TimeChart {
        id: "chart-errors".into(),
        title: "Errors by kind per interval".into(),
        axis: "errors per interval".into(),
        suffix: "",
        series: errors,
        fold: Fold::Max,
    });

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
        charts.push(TimeChart {
            id: if is_custom {
                format!("chart-latency-custom-{metric}")
            } else {
                format!("chart-latency-{metric}")
            },
            title: if is_custom {
                format!("{metric} (script) latency per interval")
            } else {
                format!("{metric} latency per interval")
            },
            axis: "latency (ms)".into(),
            suffix: " ms",
            series: stats
                .iter()
                .map(|(name, get)| series(lines, name, |l| pick(l).and_then(|x| get(&x))))
                .collect(),
            fold: Fold::Max,
        });
    }
    charts
}

/// The keys any interval has in one of its maps, sorted.
fn keys(
    lines: &[IntervalLine],
    map: impl Fn(&IntervalLine) -> &BTreeMap<String, u64>,
) -> Vec<String> {
    let mut keys: Vec<String> = lines.iter().flat_map(|l| map(l).keys().cloned()).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// A value for the embedded series: `null` for no data, else rounded to what a reader
/// can use, so that a 24-hour run's page stays small.
fn rounded(v: f64) -> Value {
    if !v.is_finite() {
        return Value::Null;
    }
    let decimals = if v.abs() >= 100.0 { 1 } else { 3 };
    let factor = 10f64.powi(decimals);
    json!((v * factor).round() / factor)
}

/// The series embedded for the script, as JSON that cannot end its `<script>` element.
fn embed(times: &[f64], end: f64, charts: Vec<Value>) -> String {
    let data = json!({
        "geometry": {"w": WIDTH, "h": HEIGHT, "l": LEFT, "r": RIGHT, "t": TOP, "b": BOTTOM, "char": CHAR},
        "steps": TIME_STEPS,
        "maxTicks": MAX_TICKS,
        "end": end,
        "t": times.iter().map(|t| rounded(*t)).collect::<Vec<Value>>(),
        "charts": charts,
    });
    // `<` only appears inside names; escaped, no `</script>` can close the element early.
    data.to_string().replace('<', "\\u003c")
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

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:16px 24px;color:#222}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:8px 0;display:block;overflow-x:auto;max-width:100%}\
td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}\
.pass{color:#fff;background:#0072B2;padding:1px 8px;border-radius:3px}\
.fail{color:#fff;background:#D55E00;padding:1px 8px;border-radius:3px}\
.none{color:#fff;background:#666;padding:1px 8px;border-radius:3px}\
.summary{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}\
.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:150px}\
.card .label{color:#555;font-size:12px}.card .value{font-size:22px;font-weight:600}\
.card .detail{color:#666;font-size:12px}.meta summary{cursor:pointer;color:#444}\
.note{color:#666;font-size:12px}figure{margin:6px 0 22px}\
figcaption{font-weight:600;margin-bottom:2px}\
svg.chart{display:block;width:100%;height:auto;cursor:crosshair;user-select:none}\
svg text{font:11px system-ui,sans-serif;fill:#444}.grid{stroke:#eee}.axis{stroke:#999}\
.cursor{stroke:#444;stroke-dasharray:3 3;visibility:hidden}\
.sel{fill:#0072B2;opacity:.15;visibility:hidden}\
.legend{font-size:12px;color:#333}.legend span{margin-right:14px;white-space:nowrap}\
.legend i,.tip i{display:inline-block;width:10px;height:10px;margin-right:4px}\
.tip{position:fixed;display:none;pointer-events:none;background:#fff;border:1px solid #999;\
border-radius:4px;padding:4px 8px;font-size:12px;box-shadow:0 1px 4px rgba(0,0,0,.2);z-index:1}";

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
        values: lines.iter().map(|l| value(l).unwrap_or(f64::NAN)).collect(),
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

/// The time axis's ticks over `[t0, t1]` seconds: the smallest round step of
/// [`TIME_STEPS`] that gives at most [`MAX_TICKS`] ticks, and every whole multiple of it
/// in the range. The script's `ticks` follows the same rule when it zooms.
fn time_ticks(t0: f64, t1: f64) -> (f64, Vec<f64>) {
    let span = (t1 - t0).max(0.0);
    let fits = |step: f64| ((span / step).floor() as usize) < MAX_TICKS;
    let step = match TIME_STEPS.iter().copied().find(|s| fits(*s)) {
        Some(step) => step,
        None => {
            let mut step = TIME_STEPS[TIME_STEPS.len() - 1];
            while !fits(step) {
                step *= 10.0;
            }
            step
        }
    };
    let first = (t0 / step - 1e-9).ceil() as i64;
    let last = (t1 / step + 1e-9).floor() as i64;
    // Multiplied, not summed: 0.1 added thirty times is not 3.
    (step, (first..=last).map(|k| k as f64 * step).collect())
}

/// A tick's label, in the unit its step is round in: `0.5s`, `20s`, `5m`, `1h30m`, `6h`,
/// `2d`.
fn tick_label(t: f64, step: f64) -> String {
    if step < 60.0 {
        let decimals = (-step.log10() + 0.75).floor().max(0.0) as usize;
        format!("{}s", format_number(t, decimals))
    } else if step < 3600.0 {
        let minutes = (t / 60.0).round() as u64;
        match (minutes / 60, minutes % 60) {
            (0, m) => format!("{m}m"),
            (h, 0) => format!("{h}h"),
            (h, m) => format!("{h}h{m}m"),
        }
    } else if step < 86400.0 {
        format!("{}h", (t / 3600.0).round() as u64)
    } else {
        format!("{}d", (t / 86400.0).round() as u64)
    }
}

/// The text-anchor that keeps a label at `x` inside the chart: centred where it fits,
/// else flush against the edge it would cross, so no label is ever clipped.
fn anchor(x: f64, text: &str) -> &'static str {
    let half = text.chars().count() as f64 * CHAR / 2.0;
    if x + half > WIDTH - 2.0 {
        "end"
    } else if x - half < 2.0 {
        "start"
    } else {
        "middle"
    }
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 || v >= 100.0 {
        format!("{v:.0}")
    } else {
        format_number(v, 2)
    }
}

/// Opens a chart's figure: its caption and SVG element.
fn svg_open(id: &str, title: &str) -> String {
    format!(
        "<figure><figcaption>{t}</figcaption><svg id=\"{}\" class=\"chart\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" \
         aria-label=\"{t}\">",
        esc(id),
        t = esc(title)
    )
}

/// Horizontal grid lines with their value labels, at quarters of `y_max`, and the value
/// axis's label.
fn y_grid(svg: &mut String, y_max: f64, y: impl Fn(f64) -> f64, axis: &str) {
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
    let middle = TOP + (HEIGHT - TOP - BOTTOM) / 2.0;
    let _ = write!(
        svg,
        "<text x=\"12\" y=\"{middle:.1}\" transform=\"rotate(-90 12 {middle:.1})\" \
         text-anchor=\"middle\">{}</text>",
        esc(axis)
    );
}

/// A label under the horizontal axis at `x`, kept inside the chart.
fn x_label(svg: &mut String, x: f64, text: &str) {
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{b:.1}\" y2=\"{:.1}\"/>\
         <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{}\">{}</text>",
        HEIGHT - BOTTOM + 4.0,
        HEIGHT - BOTTOM + 16.0,
        anchor(x, text),
        esc(text),
        b = HEIGHT - BOTTOM,
    );
}

/// Closes a chart: the axes, the script's cursor and selection, the legend.
fn svg_close(svg: &mut String, names: &[&str]) {
    let bottom = HEIGHT - BOTTOM;
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{bottom}\"/>\
         <line class=\"axis\" x1=\"{LEFT}\" x2=\"{r}\" y1=\"{bottom}\" y2=\"{bottom}\"/>\
         <line class=\"cursor\" x1=\"0\" x2=\"0\" y1=\"{TOP}\" y2=\"{bottom}\"/>\
         <rect class=\"sel\" x=\"0\" y=\"{TOP}\" width=\"0\" height=\"{h}\"/></svg>",
        r = WIDTH - RIGHT,
        h = bottom - TOP,
    );
    if names.len() > 1 {
        svg.push_str("<div class=\"legend\">");
        for (i, name) in names.iter().enumerate() {
            let _ = write!(
                svg,
                "<span><i style=\"background:{}\"></i>{}</span>",
                PALETTE[i % PALETTE.len()],
                esc(name)
            );
        }
        svg.push_str("</div>");
    }
    svg.push_str("</figure>\n");
}

/// A chart over time as a figure: `times` and each series' values are downsampled
/// already, and the time axis runs from the load's start to `end` seconds.
fn time_figure(chart: &TimeChart, times: &[f64], series: &[(&str, Vec<f64>)], end: f64) -> String {
    let y_max = nice_max(
        series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max),
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |t: f64| LEFT + t / end * plot_w;
    let y = |v: f64| TOP + plot_h - v / y_max * plot_h;
    let mut svg = svg_open(&chart.id, &chart.title);
    y_grid(&mut svg, y_max, y, &chart.axis);
    let (step, ticks) = time_ticks(0.0, end);
    for t in ticks {
        x_label(&mut svg, x(t), &tick_label(t, step));
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">time since start</text>",
        WIDTH - RIGHT,
        HEIGHT - 3.0
    );
    for (i, (name, values)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut d = String::new();
        let mut pen_down = false;
        for (t, v) in times.iter().zip(values) {
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
        let drawn: Vec<(f64, f64)> = times
            .iter()
            .zip(values)
            .filter(|(_, v)| !v.is_nan())
            .map(|(t, v)| (*t, *v))
            .collect();
        if let [(t, v)] = drawn[..] {
            // A lone point draws no line; mark it.
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{color}\"/>",
                x(t),
                y(v)
            );
        }
        if d.is_empty() {
            d.push_str("M0,0");
        }
        let _ = write!(
            svg,
            "<path d=\"{d}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\">\
             <title>{}</title></path>",
            esc(name)
        );
    }
    let names: Vec<&str> = series.iter().map(|(n, _)| *n).collect();
    svg_close(&mut svg, &names);
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
            "<line class=\"grid\" x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{TOP}\" y2=\"{:.1}\"/>",
            TOP + plot_h,
            xx = x(i as f64)
        );
        x_label(&mut svg, x(i as f64), label);
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">percentile</text>",
        WIDTH - RIGHT,
        HEIGHT - 3.0
    );
    y_grid(&mut svg, y_max, y, "latency (ms)");
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
    let _ = write!(
        svg,
        "<path d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\"/>",
        PALETTE[0],
    );
    svg_close(&mut svg, &[tag]);
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
            shard: None,
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

    #[test]
    fn time_ticks_land_exactly_on_round_times() {
        // The review's case: a 3.76 s run gets 0, 1, 2, 3 s, and no "4s" at 3.76 s.
        let (step, ticks) = time_ticks(0.0, 3.76);
        assert_eq!(step, 1.0);
        assert_eq!(ticks, [0.0, 1.0, 2.0, 3.0]);
        let labels: Vec<String> = ticks.iter().map(|t| tick_label(*t, step)).collect();
        assert_eq!(labels, ["0s", "1s", "2s", "3s"]);
        // Each tick is drawn at its time: x is linear in t over [0, end].
        let end = 3.76;
        let plot_w = WIDTH - LEFT - RIGHT;
        let x = |t: f64| LEFT + t / end * plot_w;
        assert!((x(3.0) - (LEFT + 3.0 / 3.76 * plot_w)).abs() < 1e-9);

        let cases: [(f64, f64, &[&str]); 6] = [
            (0.45, 0.1, &["0s", "0.1s", "0.2s", "0.3s", "0.4s"]),
            (30.0, 5.0, &["0s", "5s", "10s", "15s", "20s", "25s", "30s"]),
            (600.0, 120.0, &["0m", "2m", "4m", "6m", "8m", "10m"]),
            (5400.0, 1200.0, &["0m", "20m", "40m", "1h", "1h20m"]),
            (86_400.0, 21_600.0, &["0h", "6h", "12h", "18h", "24h"]),
            (
                3.0 * 86_400.0,
                43_200.0,
                &["0h", "12h", "24h", "36h", "48h", "60h", "72h"],
            ),
        ];
        for (end, want_step, want) in cases {
            let (step, ticks) = time_ticks(0.0, end);
            assert_eq!(step, want_step, "{end} s");
            let labels: Vec<String> = ticks.iter().map(|t| tick_label(*t, step)).collect();
            assert_eq!(labels, want, "{end} s");
            assert!(ticks.len() <= MAX_TICKS && *ticks.last().unwrap() <= end);
        }
        // Zoomed: only whole multiples of the step inside the range.
        let (step, ticks) = time_ticks(12.3, 17.9);
        assert_eq!((step, ticks), (1.0, vec![13.0, 14.0, 15.0, 16.0, 17.0]));
    }

    #[test]
    fn no_label_is_clipped() {
        // The last tick at the right edge, and the percentile chart's last label.
        for text in ["24h", "99.9999%", "1h20m"] {
            let x = WIDTH - RIGHT;
            let half = text.len() as f64 * CHAR / 2.0;
            let (left, right) = match anchor(x, text) {
                "end" => (x - 2.0 * half, x),
                "start" => (x, x + 2.0 * half),
                _ => (x - half, x + half),
            };
            assert!(left >= 0.0 && right <= WIDTH, "{text}: {left}..{right}");
        }
        assert_eq!(anchor(WIDTH / 2.0, "12s"), "middle");
        let h = {
            let mut h = Histogram::<u64>::new(3).unwrap();
            for v in 1..1000 {
                h.record(v * 1000).unwrap();
            }
            h
        };
        let svg = percentile_chart("heartbeat", &h);
        assert!(svg.contains("text-anchor=\"end\">99.9999%</text>"), "{svg}");
    }

    /// Hue in degrees of a `#RRGGBB` colour, and whether it is saturated enough to read
    /// as a hue at all.
    fn hue(color: &str) -> (f64, bool) {
        let c = |i: usize| f64::from(u8::from_str_radix(&color[i..i + 2], 16).unwrap()) / 255.0;
        let (r, g, b) = (c(1), c(3), c(5));
        let (max, min) = (r.max(g).max(b), r.min(g).min(b));
        if max - min < 0.2 {
            return (0.0, false);
        }
        let d = max - min;
        let h = if max == r {
            60.0 * ((g - b) / d).rem_euclid(6.0)
        } else if max == g {
            60.0 * ((b - r) / d + 2.0)
        } else {
            60.0 * ((r - g) / d + 4.0)
        };
        (h, true)
    }

    fn red_green_pair(colors: &[&str]) -> bool {
        let hues: Vec<f64> = colors
            .iter()
            .map(|c| hue(c))
            .filter(|h| h.1)
            .map(|h| h.0)
            .collect();
        let red = hues.iter().any(|h| !(20.0..=340.0).contains(h));
        let green = hues.iter().any(|h| (80.0..=155.0).contains(h));
        red && green
    }

    #[test]
    fn the_palette_never_pairs_red_with_green() {
        assert!(!red_green_pair(&PALETTE), "{PALETTE:?}");
        // The palette before: matplotlib's, whose first three are blue, red, green.
        assert!(red_green_pair(&["#1f77b4", "#d62728", "#2ca02c"]));
        // Every chart draws its series from the palette, and so do the badges.
        let html = render(&report(&[], |_| {}), &[], &BTreeMap::new(), "4 sessions");
        let colors: Vec<&str> = html
            .match_indices('#')
            .filter_map(|(at, _)| html.get(at..at + 7))
            .filter(|c| c[1..].chars().all(|ch| ch.is_ascii_hexdigit()))
            .collect();
        assert!(!colors.is_empty());
        assert!(!red_green_pair(&colors), "{colors:?}");
    }

    #[test]
    fn thresholds_show_observed_values_in_their_units() {
        let mut r = report(&[], |_| {});
        let verdict = |check: &str, observed: Option<f64>| crate::report::threshold::Verdict {
            check: check.into(),
            observed,
            pass: true,
            abort_on_fail: false,
        };
        r.thresholds = vec![
            verdict("heartbeat.p99 < 200ms", Some(5.259)),
            verdict("sessions.bound / sessions.started >= 99%", Some(0.9975)),
            verdict("reconnects.total < 500", Some(429.0)),
            verdict("errors.rate < 1%", None),
        ];
        let html = render(&r, &[], &BTreeMap::new(), "4 sessions");
        let table = &html[html.find("id=\"thresholds\"").expect("a thresholds table")..];
        let table = &table[..table.find("</table>").unwrap()];
        for cell in [
            "<td>5.259 ms</td>",
            "<td>99.75%</td>",
            "<td>429</td>",
            "<td>no data</td>",
        ] {
            assert!(table.contains(cell), "{cell} in {table}");
        }
        assert!(
            !table.contains("429.0000") && !table.contains("5.2590"),
            "{table}"
        );
    }

    #[test]
    fn the_summary_says_the_key_numbers_with_units() {
        let mut r = report(&["auth".into()], |r| {
            r.step_accepted(0, Duration::from_micros(1500));
        });
        r.duration_s = 10.0;
        r.heartbeats.sent = 200;
        r.messages.received = 50;
        r.connects.attempted = 50;
        r.errors.insert("heartbeat_timeout".into(), 5);
        let html = render(&r, &[], &BTreeMap::new(), "4 sessions");
        let summary = &html[html.find("id=\"summary\"").unwrap()..];
        let summary = &summary[..summary.find("</div>\n").unwrap()];
        for text in [
            "20 /s",
            "5 /s",
            "2%",
            "1.5 ms",
            "of 4",
            "no thresholds",
            "id=\"summary-p99-auth\"",
            "id=\"summary-p99-heartbeat\"",
        ] {
            assert!(summary.contains(text), "{text} in {summary}");
        }
    }

    /// A 24-hour soak at a 10 s interval, with a step, heartbeats, errors and reconnects.
    fn day_of_intervals() -> Vec<IntervalLine> {
        let latency = |base: f64| crate::report::Latency {
            count: 250,
            min: Some(base * 0.5),
            mean: Some(base),
            p50: Some(base * 0.9),
            p90: Some(base * 1.7),
            p99: Some(base * 3.1),
            p999: Some(base * 5.3),
            max: Some(base * 7.9),
        };
        (0..8640u64)
            .map(|i| {
                let wobble = (i % 37) as f64 / 37.0;
                let count = |names: &[(&str, u64)]| {
                    names.iter().map(|(k, v)| (k.to_string(), *v)).collect()
                };
                IntervalLine {
                    t: (i + 1) as f64 * 10.0 + wobble * 0.01,
                    seq: i,
                    counts: count(&[
                        ("connects.attempted", i % 7),
                        ("heartbeats.sent", 1000 + i % 13),
                        ("heartbeats.acked", 998 + i % 11),
                        ("heartbeats.failed", i % 3),
                        ("messages.received", 480 + i % 29),
                    ]),
                    reconnects: count(&[("heartbeat", i % 5), ("server_close", i % 2)]),
                    errors: count(&[("heartbeat_timeout", i % 3), ("auth_rejected", i % 2)]),
                    states: count(&[("bound", 10_000 - (i % 50)), ("reconnecting", i % 50)])
                        .into_iter()
                        .map(|(k, v): (String, u64)| (k, v as i64))
                        .collect(),
                    peak_active: Some(10_000),
                    latency_ms: [
                        ("connect".to_string(), latency(12.0 + wobble)),
                        ("auth".to_string(), latency(3.0 + wobble)),
                        ("heartbeat".to_string(), latency(1.0 + wobble)),
                    ]
                    .into_iter()
                    .collect(),
                    custom: Default::default(),
                    rss_kib: Some(180_000 + i),
                    cpu_ms: Some(900.0),
                }
            })
            .collect()
    }

    #[test]
    fn a_day_at_10s_intervals_stays_small() {
        let lines = day_of_intervals();
        let html = render(
            &report(&["auth".into()], |_| {}),
            &lines,
            &BTreeMap::new(),
            "s",
        );
        // Measured 483 KB (README, "Run output"); the bound leaves room for more metrics.
        assert!(html.len() < 1_000_000, "{} bytes", html.len());
        eprintln!(
            "24 h at 10 s intervals: report.html is {} bytes",
            html.len()
        );
        for id in [
            "chart-heartbeats",
            "chart-messages",
            "chart-errors",
            "chart-latency-auth",
        ] {
            assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
        }
        assert!(html.contains("8640 intervals, drawn as 1080 points"));
        let ticks: Vec<&str> = ["0h", "6h", "12h", "18h", "24h"]
            .into_iter()
            .filter(|t| html.contains(&format!(">{t}</text>")))
            .collect();
        assert_eq!(ticks.len(), 5, "{ticks:?}");
    }
}
