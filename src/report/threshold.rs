//! Judging thresholds against a finished report, for CI and scheduled runs.
//!
//! What a check says, and which paths it may name, is [`crate::threshold`]'s: this module
//! reads those paths out of a report serialised as JSON and gives the [`Verdict`]. A
//! value that has no data (a percentile of an empty histogram, a ratio over zero) fails:
//! a threshold passes only when the run proves it.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Connects, Footprint, Latency, Meta};
use crate::metrics::{Counter, Recorder};

// Re-exported so that `report::threshold::Threshold` (the CLI, the runner, `lib.rs`) keeps
// naming it where it has always been found.
pub use crate::threshold::Threshold;
use crate::threshold::{custom_latency, latency_path, Measure};
use crate::units::{format_number, format_percent};

/// A threshold's verdict, as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The check as written.
    pub check: String,
    /// The observed left-hand value (ms for latencies, a fraction for ratios); null when
    /// there was no data.
    pub observed: Option<f64>,
    /// Whether it held.
    pub pass: bool,
    /// Whether it could end the run early.
    pub abort_on_fail: bool,
}

impl Verdict {
    /// What the check measures, which says the unit of `observed`. The check as written
    /// parses back to the threshold that was judged; a report edited by hand may hold one
    /// that does not: `None`, and its values are then said without units.
    pub fn measure(&self) -> Option<Measure> {
        Threshold::parse(&self.check).ok().map(|t| t.measure())
    }

    /// The observed value with its unit (`1.083 ms`, `99.8%`, `12`), or `no data`.
    pub fn observed_text(&self) -> String {
        self.observed
            .map_or("no data".to_string(), |v| show(self.measure(), v))
    }
}

/// A value a threshold observed or compares against, with its unit: latencies in ms,
/// ratios as a percentage, counts plain.
pub fn show(measure: Option<Measure>, value: f64) -> String {
    match measure {
        Some(Measure::Latency) => format!("{} ms", format_number(value, 3)),
        Some(Measure::Fraction) => format_percent(value),
        Some(Measure::Count) | None => format_number(value, 3),
    }
}

impl Threshold {
    /// Evaluates against a report serialised as JSON.
    pub fn evaluate(&self, report: &Value) -> Verdict {
        self.verdict(|path| lookup(report, path))
    }

    /// Evaluates against the run's totals so far, as an `abort_on_fail` check does every
    /// interval: the same value the finished report would give (`observe`), without
    /// building one.
    pub fn evaluate_live(&self, total: &Recorder, meta: &Meta) -> Verdict {
        self.verdict(|path| observe(path, total, meta))
    }

    /// The verdict on the values `value` reads by path: the left one, or the ratio of
    /// the two (no data when the divisor is zero).
    fn verdict(&self, value: impl Fn(&str) -> Option<f64>) -> Verdict {
        let observed = match self.divisor() {
            None => value(self.left()),
            Some(divisor) => match (value(self.left()), value(divisor)) {
                (Some(a), Some(b)) if b != 0.0 => Some(a / b),
                _ => None,
            },
        };
        Verdict {
            check: self.check.clone(),
            observed,
            pass: observed.is_some_and(|v| self.holds(v)),
            abort_on_fail: self.abort_on_fail,
        }
    }
}

/// Reads a value by threshold path straight from measurements: what [`lookup`] reads from
/// the report [`Report::build`](super::Report::build) would make of them. A test holds
/// the two to the same answer for every path.
fn observe(path: &str, r: &Recorder, meta: &Meta) -> Option<f64> {
    let stat = |h: &Histogram<u64>, stat: &str| Latency::from_histogram(h).stat(stat);
    if let Some((metric, name)) = latency_path(path) {
        let (_, h) = r.latencies().find(|(m, _)| *m == metric)?;
        return stat(h, name);
    }
    if let Some(name) = path.strip_prefix("custom.") {
        if let Some((metric, name)) = custom_latency(name) {
            return stat(r.custom_latencies.get(metric)?, name);
        }
        return Some(r.custom_counters.get(name).copied().unwrap_or(0) as f64);
    }
    let errors_total = || {
        r.error_counts().iter().map(|(_, n)| n).sum::<u64>() + r.script_errors.values().sum::<u64>()
    };
    if let Some(c) = Counter::ALL.iter().find(|c| c.name() == path) {
        return Some(r.counter(*c) as f64);
    }
    let n = match path {
        "errors.total" => errors_total(),
        "errors.rate" => {
            let ops = r.counter(Counter::ConnectsAttempted) + r.counter(Counter::HeartbeatsSent);
            return (ops > 0).then(|| errors_total() as f64 / ops as f64);
        }
        "sessions.planned" => u64::from(meta.planned),
        "sessions.peak_active" => meta.peak_active.max(0) as u64,
        "sessions.lost" => meta.lost_workers.iter().map(|w| w.sessions).sum(),
        "tester.workers" => meta.workers as u64,
        "reconnects.total" => r.reconnects_total(),
        "tester.shards" => meta.shards as u64,
        "connects.succeeded" | "connects.failed" => {
            let c = Connects::from_recorder(r);
            if path == "connects.succeeded" {
                c.succeeded
            } else {
                c.failed
            }
        }
        "tester.peak_rss_kib" => return Footprint::measure().peak_rss_kib.map(|k| k as f64),
        "tester.cpu_s" => return Footprint::measure().cpu_s,
        _ => {
            let (section, key) = path.split_once('.')?;
            let counts = match section {
                "errors" => r.error_counts(),
                "reconnects" => r.reconnect_counts(),
                "steps" => {
                    let (step, count) = key.split_once('.')?;
                    let step = r.steps.iter().find(|s| &*s.name == step)?;
                    let (_, n) = step.counts().into_iter().find(|(c, _)| *c == count)?;
                    return Some(n as f64);
                }
                _ => return None,
            };
            counts.into_iter().find(|(name, _)| name == key)?.1
        }
    };
    Some(n as f64)
}

/// Reads a value from the report JSON by threshold path.
fn lookup(report: &Value, path: &str) -> Option<f64> {
    if let Some((metric, stat)) = latency_path(path) {
        return report["latency_ms"][metric][stat].as_f64();
    }
    if let Some(name) = path.strip_prefix("custom.") {
        if let Some((metric, stat)) = custom_latency(name) {
            return report["custom"]["latency_ms"][metric][stat].as_f64();
        }
        // A counter a script never counted is a count of zero, not missing data.
        return Some(report["custom"]["counters"][name].as_f64().unwrap_or(0.0));
    }
    let errors_total = || -> Option<f64> {
        Some(
            report["errors"]
                .as_object()?
                .values()
                .filter_map(Value::as_f64)
                .sum(),
        )
    };
    match path {
        "errors.total" => return errors_total(),
        "errors.rate" => {
            let ops = report["connects"]["attempted"].as_f64()?
                + report["heartbeats"]["sent"].as_f64()?;
            return (ops > 0.0).then(|| errors_total().unwrap_or(0.0) / ops);
        }
        _ => {}
    }
    let (section, key) = path.split_once('.')?;
    let found = match section {
        "reconnects" if key != "total" => &report["reconnects"]["by_cause"][key],
        "steps" => {
            let (step, count) = key.split_once('.')?;
            &report["steps"][step][count]
        }
        _ => &report[section][key],
    };
    found.as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report() -> Value {
        let mut r = crate::report::Report::empty_json();
        r["latency_ms"]["heartbeat"]["p99"] = json!(150.0);
        r["sessions"]["started"] = json!(1000);
        r["sessions"]["bound"] = json!(999);
        r["reconnects"]["total"] = json!(12);
        r["reconnects"]["by_cause"]["heartbeat"] = json!(7);
        r["errors"]["tls"] = json!(3);
        r["connects"]["attempted"] = json!(1000);
        r["heartbeats"]["sent"] = json!(2000);
        r
    }

    fn verdict(check: &str) -> Verdict {
        Threshold::parse(check).unwrap().evaluate(&report())
    }

    #[test]
    fn latencies_take_durations() {
        assert!(verdict("heartbeat.p99 < 200ms").pass);
        assert!(!verdict("heartbeat.p99 < 0.1s").pass);
        assert!(verdict("heartbeat.p99 <= 150").pass);
        assert_eq!(verdict("heartbeat.p99 < 200ms").observed, Some(150.0));
    }

    #[test]
    fn ratios_counts_and_rates() {
        assert!(verdict("sessions.bound / sessions.started >= 99.9%").pass);
        assert!(!verdict("sessions.bound / sessions.started >= 99.95%").pass);
        assert!(!verdict("reconnects.total < 10").pass);
        assert!(verdict("reconnects.heartbeat == 7").pass);
        assert!(verdict("errors.total == 3").pass);
        assert_eq!(verdict("errors.rate < 0.1%").observed, Some(0.001));
        assert!(!verdict("errors.rate < 0.1%").pass);
    }

    #[test]
    fn custom_metrics_are_reachable() {
        let mut r = report();
        r["custom"]["latency_ms"]["order_push"] = json!({"count": 3, "p99": 40.0});
        r["custom"]["counters"]["kicked"] = json!(2);
        let check = |c: &str| Threshold::parse(c).unwrap().evaluate(&r);
        assert!(check("custom.order_push.p99 < 50ms").pass);
        assert!(!check("custom.order_push.p99 < 0.03s").pass);
        assert!(check("custom.kicked == 2").pass);
        assert!(check("custom.never_counted == 0").pass);
        assert!(!check("custom.absent.p99 < 1s").pass, "no samples: fails");
    }

    #[test]
    fn no_data_fails() {
        let v = verdict("connect.p99 < 1s");
        assert_eq!(v.observed, None);
        assert!(!v.pass);
        let v = verdict("sessions.bound / sessions.closed > 0");
        assert!(!v.pass);
    }

    /// An `abort_on_fail` check reads the totals live; the verdict reads the finished
    /// report. For every path a threshold may name, both must read the same value.
    #[test]
    fn live_values_agree_with_the_report() {
        use crate::metrics::{Cause, ErrorKind, Metric};
        use std::time::{Duration, UNIX_EPOCH};
        let mut r = Recorder::for_steps(&["auth".into(), "subscribe".into()]);
        for (i, c) in Counter::ALL.iter().enumerate() {
            for _ in 0..=i {
                r.count(*c);
            }
        }
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            r.errors[k.index()] = 3 * i as u64 + 1;
        }
        for (i, c) in Cause::ALL.iter().enumerate() {
            r.reconnects[c.index()] = 5 * i as u64 + 2;
        }
        for (i, m) in Metric::ALL.iter().enumerate() {
            for us in [100, 2_500, 40_000 + 7 * i as u64] {
                r.record(*m, Duration::from_micros(us));
            }
        }
        for (i, step) in r.steps.iter_mut().enumerate() {
            step.reached = 10 + i as u64;
            step.rejected = 2 + i as u64;
            step.timed_out = 1;
            step.rejected_reconnects = 1 + i as u64;
            step.sessions = 7;
            step.latency.record(1_234 * (i as u64 + 1)).unwrap();
        }
        r.script_error("on_message", false);
        r.custom_count("kicked");
        r.custom_record("order_push", Duration::from_micros(3_300));
        let meta = Meta {
            identity: Default::default(),
            scenario: "s".into(),
            target: "t".into(),
            planned: 40,
            shards: 2,
            workers: 2,
            lost_workers: vec![crate::report::LostWorker {
                worker: 1,
                pid: 4242,
                at_s: 1.5,
                sessions: 17,
                cause: "signal: 9 (SIGKILL)".into(),
            }],
            started_at: UNIX_EPOCH,
            elapsed: Duration::from_secs(3),
            peak_active: 33,
            interrupted: false,
            aborted_by: None,
            shard: None,
        };
        let report = super::super::Report::build(&r, &meta, None, Footprint::default());
        let json = serde_json::to_value(&report).unwrap();

        let mut paths: Vec<String> = Counter::ALL.iter().map(|c| c.name().into()).collect();
        paths.extend(
            crate::threshold::REPORT_COUNTS
                .iter()
                .filter(|p| {
                    !p.starts_with("tester.") || matches!(**p, "tester.shards" | "tester.workers")
                })
                .map(|p| p.to_string()),
        );
        paths.extend(
            Cause::ALL
                .iter()
                .map(|c| format!("reconnects.{}", c.name())),
        );
        paths.extend(
            ErrorKind::ALL
                .iter()
                .map(|k| format!("errors.{}", k.name())),
        );
        for step in ["auth", "subscribe"] {
            paths.push(format!("errors.{step}_timeout"));
            paths.push(format!("errors.{step}_rejected"));
            paths.push(format!("reconnects.{step}_rejected"));
            for count in ["reached", "accepted", "rejected", "timed_out", "sessions"] {
                paths.push(format!("steps.{step}.{count}"));
            }
        }
        let stats = ["count", "min", "mean", "p50", "p90", "p99", "p999", "max"];
        let metrics: Vec<String> = r.latencies().map(|(m, _)| m.to_string()).collect();
        assert_eq!(metrics.len(), Metric::COUNT + 2);
        for metric in metrics
            .iter()
            .map(String::as_str)
            .chain(["custom.order_push"])
        {
            paths.extend(stats.iter().map(|s| format!("{metric}.{s}")));
        }
        paths.extend(
            [
                "custom.kicked",
                "custom.never",
                "errors.total",
                "errors.rate",
            ]
            .map(String::from),
        );
        for path in &paths {
            let check = format!("{path} >= 0");
            let t = Threshold::parse(&check).unwrap();
            let live = t.evaluate_live(&r, &meta).observed;
            let judged = t.evaluate(&json).observed;
            assert!(judged.is_some(), "{path}: the report has no value");
            assert_eq!(live, judged, "{path}");
        }
    }

    /// Threshold paths are checked against names (`crate::threshold`), not against a
    /// report: every count the report holds must be a name a threshold may use, and every
    /// such name must be in the report.
    #[test]
    fn count_paths_agree_with_the_report() {
        use crate::metrics::{Cause, Counter, ErrorKind};
        use crate::threshold::{is_count, REPORT_COUNTS};
        let r = crate::report::Report::empty_json();
        let mut in_report = Vec::new();
        for (section, fields) in r.as_object().unwrap() {
            if matches!(section.as_str(), "latency_ms" | "custom") {
                continue; // latencies and script metrics have rules of their own
            }
            if section == "wsoak" {
                continue; // what produced the run: names, not counts
            }
            let Some(fields) = fields.as_object() else {
                continue;
            };
            for (key, value) in fields {
                if section == "reconnects" && key == "by_cause" {
                    let causes = value.as_object().unwrap().keys();
                    in_report.extend(causes.map(|c| format!("reconnects.{c}")));
                } else if value.is_number() || value.is_null() {
                    in_report.push(format!("{section}.{key}"));
                }
            }
        }
        for path in &in_report {
            assert!(
                is_count(path),
                "the report has `{path}`; thresholds cannot name it"
            );
        }
        let named = Counter::ALL
            .iter()
            .map(|c| c.name().to_owned())
            .chain(REPORT_COUNTS.iter().map(|p| p.to_string()))
            .chain(
                Cause::ALL
                    .iter()
                    .map(|c| format!("reconnects.{}", c.name())),
            )
            .chain(
                ErrorKind::ALL
                    .iter()
                    .map(|k| format!("errors.{}", k.name())),
            );
        for path in named {
            assert!(
                in_report.contains(&path),
                "thresholds name `{path}`; the report has no such count"
            );
        }
    }
}
