//! Judging thresholds against a finished report, for CI and scheduled runs.
//!
//! What a check says, and which paths it may name, is [`crate::threshold`]'s: this module
//! reads those paths out of a report serialised as JSON and gives the [`Verdict`]. A
//! value that has no data (a percentile of an empty histogram, a ratio over zero) fails:
//! a threshold passes only when the run proves it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

// Re-exported so that `report::threshold::Threshold` (the CLI, the runner, `lib.rs`) keeps
// naming it where it has always been found.
pub use crate::threshold::Threshold;
use crate::threshold::{custom_latency, latency_path};

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

impl Threshold {
    /// Evaluates against a report serialised as JSON.
    pub fn evaluate(&self, report: &Value) -> Verdict {
        let observed = match self.divisor() {
            None => lookup(report, self.left()),
            Some(divisor) => match (lookup(report, self.left()), lookup(report, divisor)) {
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
