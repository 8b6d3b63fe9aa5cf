//! `wsoak compare`: metric-by-metric deltas between two runs, for scheduled soaks.
//!
//! What is judged, and which way is worse:
//! - latency p50, p90 and p99 of every step and script latency: higher is worse, but only
//!   past both the tolerance and an absolute floor (sub-millisecond wobble on loopback is
//!   noise, not a regression); max is shown, never judged (one outlier is not a trend);
//! - the heartbeat ack rate (acked per second): lower is worse;
//! - the bound ratio (sessions bound / started): lower is worse;
//! - failures per 1,000 heartbeats sent (reconnects, errors, failed heartbeats): higher is
//!   worse, past an absolute floor of 0.1 per 1,000.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Report;

/// How strict to be.
#[derive(Debug, Clone)]
pub struct Options {
    /// Allowed worsening, as a fraction of the baseline.
    pub tolerance: f64,
    /// Per-metric tolerances, by row name (`heartbeat.p99`).
    pub per_metric: BTreeMap<String, f64>,
    /// Latency changes below this many ms are never regressions.
    pub latency_floor_ms: f64,
}

/// What a row's values are measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds (latency statistics).
    Ms,
    /// Per second (the ack rate).
    PerSecond,
    /// A fraction, shown as a percentage (the bound ratio).
    Fraction,
    /// Per 1,000 heartbeats sent (failures).
    PerThousandHeartbeats,
}

impl Unit {
    /// A value with its unit, for people: `41.2 ms`, `99.9%`.
    pub fn show(self, value: f64) -> String {
        use crate::units::{format_number, format_percent};
        match self {
            Unit::Ms => format!("{} ms", format_number(value, 3)),
            Unit::PerSecond => format!("{}/s", format_number(value, 3)),
            Unit::Fraction => format_percent(value),
            Unit::PerThousandHeartbeats => {
                format!("{} per 1,000 heartbeats", format_number(value, 3))
            }
        }
    }
}

/// One compared metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Metric name (`heartbeat.p99`, `heartbeats.ack_rate`, …).
    pub metric: String,
    /// Baseline value.
    pub baseline: Option<f64>,
    /// Current value.
    pub current: Option<f64>,
    /// Whether this row counts as a regression.
    pub regression: bool,
    /// Whether this row is judged at all.
    pub judged: bool,
    /// What the values are measured in.
    pub unit: Unit,
    /// The worsening allowed, as a fraction of the baseline (this metric's own, or the
    /// general one).
    pub tolerance: f64,
}

impl Row {
    /// Relative change, when both values exist and the baseline is not zero.
    pub fn delta(&self) -> Option<f64> {
        match (self.baseline, self.current) {
            (Some(b), Some(c)) if b != 0.0 => Some((c - b) / b),
            _ => None,
        }
    }

    /// A value of this row with its unit, or `no data`.
    pub fn show(&self, value: Option<f64>) -> String {
        value.map_or("no data".to_string(), |v| self.unit.show(v))
    }

    /// The relative change for people: `+25.3%`, or why there is none.
    pub fn show_delta(&self) -> String {
        match (self.delta(), self.baseline) {
            (Some(d), _) => format!("{:+.1}%", d * 100.0),
            (None, Some(b)) if b == 0.0 && self.current.is_some() => {
                "none relative to a baseline of 0".to_string()
            }
            _ => "none (no data)".to_string(),
        }
    }
}

#[derive(Clone, Copy)]
enum Worse {
    Higher { floor: f64 },
    Lower,
    Never,
}

/// Compares `current` against `baseline`.
pub fn compare(baseline: &Report, current: &Report, options: &Options) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut push = |metric: String, b: Option<f64>, c: Option<f64>, worse: Worse, unit: Unit| {
        let tolerance = options
            .per_metric
            .get(&metric)
            .copied()
            .unwrap_or(options.tolerance);
        let regression = match (b, c, worse) {
            (Some(b), Some(c), Worse::Higher { floor }) => {
                c > b * (1.0 + tolerance) && c - b > floor
            }
            (Some(b), Some(c), Worse::Lower) => c < b * (1.0 - tolerance),
            _ => false,
        };
        rows.push(Row {
            metric,
            baseline: b,
            current: c,
            regression,
            judged: !matches!(worse, Worse::Never),
            unit,
            tolerance,
        });
    };
    let latency = Worse::Higher {
        floor: options.latency_floor_ms,
    };
    let latencies = |r: &Report| -> BTreeMap<String, super::Latency> {
        r.latency_ms
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(
                r.custom
                    .latency_ms
                    .iter()
                    .map(|(k, v)| (format!("custom.{k}"), v.clone())),
            )
            .collect()
    };
    let (base_lat, cur_lat) = (latencies(baseline), latencies(current));
    let mut names: Vec<&String> = base_lat.keys().chain(cur_lat.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let (b, c) = (base_lat.get(name), cur_lat.get(name));
        if b.is_none_or(|l| l.count == 0) && c.is_none_or(|l| l.count == 0) {
            continue;
        }
        type Stat = fn(&super::Latency) -> Option<f64>;
        let stats: [(&str, Stat, Worse); 4] = [
            ("p50", |l| l.p50, latency),
            ("p90", |l| l.p90, latency),
            ("p99", |l| l.p99, latency),
            ("max", |l| l.max, Worse::Never),
        ];
        for (stat, get, worse) in stats {
            push(
                format!("{name}.{stat}"),
                b.and_then(get),
                c.and_then(get),
                worse,
                Unit::Ms,
            );
        }
    }
    let ack_rate =
        |r: &Report| (r.duration_s > 0.0).then(|| r.heartbeats.acked as f64 / r.duration_s);
    push(
        "heartbeats.ack_rate".into(),
        ack_rate(baseline),
        ack_rate(current),
        Worse::Lower,
        Unit::PerSecond,
    );
    let bound = |r: &Report| {
        (r.sessions.started > 0).then(|| r.sessions.bound as f64 / r.sessions.started as f64)
    };
    push(
        "sessions.bound_ratio".into(),
        bound(baseline),
        bound(current),
        Worse::Lower,
        Unit::Fraction,
    );
    let per_k = |r: &Report, n: u64| {
        (r.heartbeats.sent > 0).then(|| n as f64 * 1000.0 / r.heartbeats.sent as f64)
    };
    let failures = Worse::Higher { floor: 0.1 };
    let errors = |r: &Report| r.errors.values().sum::<u64>();
    push(
        "reconnects.per_1k_heartbeats".into(),
        per_k(baseline, baseline.reconnects.total),
        per_k(current, current.reconnects.total),
        failures,
        Unit::PerThousandHeartbeats,
    );
    push(
        "errors.per_1k_heartbeats".into(),
        per_k(baseline, errors(baseline)),
        per_k(current, errors(current)),
        failures,
        Unit::PerThousandHeartbeats,
    );
    push(
        "heartbeats.failed_per_1k".into(),
        per_k(baseline, baseline.heartbeats.failed),
        per_k(current, current.heartbeats.failed),
        failures,
        Unit::PerThousandHeartbeats,
    );
    rows
}

/// The comparison as a table.
pub fn render(baseline: &str, current: &str, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "baseline  {baseline}\ncurrent   {current}\n");
    let _ = writeln!(
        out,
        "{:<34} {:>12} {:>12} {:>9}  verdict",
        "metric", "baseline", "current", "change"
    );
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    for row in rows {
        let verdict = match (row.judged, row.regression) {
            (false, _) => "info",
            (true, true) => "REGRESSION",
            (true, false) => "ok",
        };
        let _ = writeln!(
            out,
            "{:<34} {:>12} {:>12} {:>9}  {verdict}",
            row.metric,
            f(row.baseline),
            f(row.current),
            row.delta()
                .map_or("-".into(), |d| format!("{:+.1}%", d * 100.0)),
        );
    }
    let regressions = rows.iter().filter(|r| r.regression).count();
    let _ = writeln!(
        out,
        "\n{}",
        if regressions == 0 {
            "no regression beyond tolerance".to_string()
        } else {
            format!("{regressions} regression(s) beyond tolerance")
        }
    );
    out
}

/// The comparison as JSON, for programs: the two reports' paths, the number of
/// regressions, and every row with its relative `delta` (0.25 is 25% worse or better;
/// null when there is no data or the baseline is 0).
pub fn to_json(baseline: &str, current: &str, rows: &[Row]) -> serde_json::Value {
    serde_json::json!({
        "baseline": baseline,
        "current": current,
        "regressions": rows.iter().filter(|r| r.regression).count(),
        "rows": rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "metric": r.metric,
                    "baseline": r.baseline,
                    "current": r.current,
                    "delta": r.delta(),
                    "judged": r.judged,
                    "regression": r.regression,
                })
            })
            .collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(p99: f64, acked: u64, reconnects: u64) -> Report {
        let mut json = Report::empty_json();
        json["latency_ms"]["heartbeat"]["count"] = 100.into();
        json["latency_ms"]["heartbeat"]["p50"] = (p99 / 2.0).into();
        json["latency_ms"]["heartbeat"]["p90"] = (p99 / 1.5).into();
        json["latency_ms"]["heartbeat"]["p99"] = p99.into();
        json["latency_ms"]["heartbeat"]["max"] = (p99 * 3.0).into();
        json["heartbeats"]["acked"] = acked.into();
        json["heartbeats"]["sent"] = acked.into();
        json["reconnects"]["total"] = reconnects.into();
        json["duration_s"] = 10.0.into();
        serde_json::from_value(json).unwrap()
    }

    fn options() -> Options {
        Options {
            tolerance: 0.1,
            per_metric: BTreeMap::new(),
            latency_floor_ms: 1.0,
        }
    }

    fn regressions(b: &Report, c: &Report, o: &Options) -> Vec<String> {
        compare(b, c, o)
            .into_iter()
            .filter(|r| r.regression)
            .map(|r| r.metric)
            .collect()
    }

    #[test]
    fn a_slower_p99_is_a_regression() {
        let r = regressions(&report(10.0, 1000, 0), &report(20.0, 1000, 0), &options());
        assert!(r.contains(&"heartbeat.p99".to_string()), "{r:?}");
        assert!(
            !r.contains(&"heartbeat.max".to_string()),
            "max is never judged"
        );
    }

    #[test]
    fn noise_below_the_floor_or_tolerance_is_not() {
        assert!(regressions(&report(0.4, 1000, 0), &report(0.9, 1000, 0), &options()).is_empty());
        assert!(regressions(&report(10.0, 1000, 0), &report(10.9, 1000, 0), &options()).is_empty());
    }

    #[test]
    fn fewer_acks_and_more_reconnects_are_regressions() {
        let r = regressions(&report(1.0, 1000, 0), &report(1.0, 800, 5), &options());
        assert!(r.contains(&"heartbeats.ack_rate".to_string()), "{r:?}");
        assert!(
            r.contains(&"reconnects.per_1k_heartbeats".to_string()),
            "{r:?}"
        );
    }

    #[test]
    fn json_has_every_row_and_counts_the_regressions() {
        let rows = compare(&report(10.0, 1000, 0), &report(20.0, 1000, 0), &options());
        let json = to_json("a/report.json", "b/report.json", &rows);
        assert_eq!(json["baseline"], "a/report.json");
        assert_eq!(json["current"], "b/report.json");
        let listed = json["rows"].as_array().unwrap();
        assert_eq!(listed.len(), rows.len());
        let p99 = listed
            .iter()
            .find(|r| r["metric"] == "heartbeat.p99")
            .unwrap();
        assert_eq!(
            p99,
            &serde_json::json!({"metric": "heartbeat.p99", "baseline": 10.0, "current": 20.0,
                "delta": 1.0, "judged": true, "regression": true})
        );
        let regressions = rows.iter().filter(|r| r.regression).count();
        assert!(regressions > 0);
        assert_eq!(json["regressions"], regressions);
        let bound = listed
            .iter()
            .find(|r| r["metric"] == "sessions.bound_ratio")
            .unwrap();
        assert_eq!(
            bound["baseline"],
            serde_json::Value::Null,
            "no sessions started"
        );
        assert_eq!(bound["delta"], serde_json::Value::Null);
    }

    #[test]
    fn rows_show_their_units() {
        let rows = compare(&report(10.0, 1000, 0), &report(20.0, 1000, 2), &options());
        let row = |m: &str| rows.iter().find(|r| r.metric == m).unwrap();
        let p99 = row("heartbeat.p99");
        assert_eq!(
            (p99.show(p99.current), p99.show_delta(), p99.tolerance),
            ("20 ms".to_string(), "+100.0%".to_string(), 0.1)
        );
        let rate = row("heartbeats.ack_rate");
        assert_eq!(rate.show(rate.baseline), "100/s");
        let reconnects = row("reconnects.per_1k_heartbeats");
        assert_eq!(
            reconnects.show(reconnects.current),
            "2 per 1,000 heartbeats"
        );
        assert_eq!(reconnects.show_delta(), "none relative to a baseline of 0");
        let bound = row("sessions.bound_ratio");
        assert_eq!(bound.show(bound.current), "no data");
        assert_eq!(Unit::Fraction.show(0.999), "99.9%");
    }

    #[test]
    fn per_metric_tolerance_wins() {
        let mut o = options();
        o.per_metric.insert("heartbeat.p99".into(), 1.5);
        let r = regressions(&report(10.0, 1000, 0), &report(20.0, 1000, 0), &o);
        assert!(!r.contains(&"heartbeat.p99".to_string()), "{r:?}");
        let rows = compare(&report(10.0, 1000, 0), &report(20.0, 1000, 0), &o);
        let tolerance = |m: &str| rows.iter().find(|r| r.metric == m).unwrap().tolerance;
        assert_eq!(
            (tolerance("heartbeat.p99"), tolerance("heartbeat.p90")),
            (1.5, 0.1)
        );
    }
}
