//! Thresholds: pass/fail checks on a report, for CI and scheduled runs.
//!
//! A check reads `LEFT OP VALUE`, where LEFT is a report value or the ratio of two:
//!
//! - a latency statistic, in ms: `heartbeat.p99`, `connect.max`, `auth.mean`, …
//! - any count in the report by its path: `sessions.bound`, `heartbeats.failed`,
//!   `reconnects.total`, `reconnects.heartbeat` (a cause), `errors.tls` (a kind);
//! - `errors.total`, and `errors.rate` = errors.total / (connects.attempted +
//!   heartbeats.sent);
//! - a script's metrics: `custom.<name>` (a counter) or `custom.<name>.p99` (a latency);
//! - a ratio: `sessions.bound / sessions.started`.
//!
//! OP is one of `<`, `<=`, `>`, `>=`, `==`, `!=`. VALUE is a number, a duration for
//! latencies (`200ms`, `1s`; a bare number means ms) or a percentage (`99.9%`). A value
//! that has no data (a percentile of an empty histogram, a ratio over zero) fails: a
//! threshold passes only when the run proves it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::metrics::Metric;

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        // `99.9%` is 0.9990000000000001 in binary: compare with a relative tolerance so
        // that 999/1000 >= 99.9% holds.
        let eps = 1e-9 * b.abs().max(1.0);
        match self {
            Op::Lt => a < b - eps,
            Op::Le => a <= b + eps,
            Op::Gt => a > b + eps,
            Op::Ge => a >= b - eps,
            Op::Eq => (a - b).abs() <= eps,
            Op::Ne => (a - b).abs() > eps,
        }
    }
}

/// A parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The check as written.
    pub check: String,
    left: String,
    divisor: Option<String>,
    op: Op,
    value: f64,
    /// End the run early once this fails (after `delay`).
    pub abort_on_fail: bool,
    /// How long into the run before `abort_on_fail` may act.
    pub delay: Duration,
}

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
    /// Parses `LEFT OP VALUE`.
    pub fn parse(text: &str) -> Result<Threshold, String> {
        let ops = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let (at, token, op) = ops
            .iter()
            .filter_map(|(tok, op)| text.find(tok).map(|i| (i, *tok, *op)))
            .min_by_key(|(i, tok, _)| (*i, std::cmp::Reverse(tok.len())))
            .ok_or_else(|| {
                format!("`{text}`: no comparison; write e.g. `heartbeat.p99 < 200ms`")
            })?;
        let left_text = text[..at].trim();
        let right_text = text[at + token.len()..].trim();
        let (left, divisor) = match left_text.split_once('/') {
            Some((a, b)) => (a.trim().to_owned(), Some(b.trim().to_owned())),
            None => (left_text.to_owned(), None),
        };
        for path in std::iter::once(&left).chain(divisor.as_ref()) {
            check_path(path).map_err(|m| format!("`{text}`: {m}"))?;
        }
        let latency = divisor.is_none()
            && (latency_path(&left).is_some()
                || left
                    .strip_prefix("custom.")
                    .and_then(custom_latency)
                    .is_some());
        let value = parse_value(right_text, latency).map_err(|m| format!("`{text}`: {m}"))?;
        if !value.is_finite() {
            // Every comparison with NaN is false, and no measurement reaches infinity.
            return Err(format!(
                "`{text}`: `{right_text}` is not a finite number, so the check could never \
                 pass"
            ));
        }
        Ok(Threshold {
            check: text.trim().to_owned(),
            left,
            divisor,
            op,
            value,
            abort_on_fail: false,
            delay: Duration::ZERO,
        })
    }

    /// Evaluates against a report serialised as JSON.
    pub fn evaluate(&self, report: &Value) -> Verdict {
        let observed = match &self.divisor {
            None => lookup(report, &self.left),
            Some(divisor) => match (lookup(report, &self.left), lookup(report, divisor)) {
                (Some(a), Some(b)) if b != 0.0 => Some(a / b),
                _ => None,
            },
        };
        Verdict {
            check: self.check.clone(),
            observed,
            pass: observed.is_some_and(|v| self.op.holds(v, self.value)),
            abort_on_fail: self.abort_on_fail,
        }
    }
}

/// `heartbeat.p99` → ("heartbeat", "p99") when it names a latency statistic.
fn latency_path(path: &str) -> Option<(&str, &str)> {
    let (metric, stat) = path.split_once('.')?;
    if metric == "custom" {
        return None;
    }
    let known_metric = Metric::ALL.iter().any(|m| m.name() == metric);
    let known_stat = is_stat(stat);
    (known_metric && known_stat).then_some((metric, stat))
}

/// `order_push.p99` → ("order_push", "p99").
fn custom_latency(name: &str) -> Option<(&str, &str)> {
    let (metric, stat) = name.rsplit_once('.')?;
    is_stat(stat).then_some((metric, stat))
}

fn is_stat(stat: &str) -> bool {
    matches!(
        stat,
        "count" | "min" | "mean" | "p50" | "p90" | "p99" | "p999" | "max"
    )
}

fn check_path(path: &str) -> Result<(), String> {
    if latency_path(path).is_some() || matches!(path, "errors.total" | "errors.rate") {
        return Ok(());
    }
    if path
        .strip_prefix("custom.")
        .is_some_and(|name| !name.is_empty())
    {
        return Ok(()); // script metrics are named at run time
    }
    if lookup(&crate::report::Report::empty_json(), path).is_some() {
        return Ok(());
    }
    Err(format!(
        "unknown value `{path}`: use a latency such as heartbeat.p99, a count such as \
         sessions.bound, reconnects.total, reconnects.<cause> or errors.<kind>, or errors.rate"
    ))
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
        _ => &report[section][key],
    };
    found.as_f64()
}

fn parse_value(text: &str, latency: bool) -> Result<f64, String> {
    if let Some(pct) = text.strip_suffix('%') {
        return pct
            .trim()
            .parse::<f64>()
            .map(|p| p / 100.0)
            .map_err(|_| format!("`{text}` is not a percentage"));
    }
    if let Ok(number) = text.parse::<f64>() {
        return Ok(number);
    }
    if latency {
        return crate::units::parse_duration(text).map(|d| d.as_secs_f64() * 1000.0);
    }
    Err(format!("`{text}` is not a number"))
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

    #[test]
    fn bad_checks_are_explained() {
        assert!(Threshold::parse("heartbeat.p99 200ms")
            .unwrap_err()
            .contains("no comparison"));
        assert!(Threshold::parse("heartbeat.p42 < 1s")
            .unwrap_err()
            .contains("unknown value"));
        assert!(Threshold::parse("sessions.bound > lots")
            .unwrap_err()
            .contains("not a number"));
        assert!(Threshold::parse("nope.x < 1").is_err());
    }
}
