//! Threshold expressions: what a pass/fail check says, parsed and validated.
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
//! latencies (`200ms`, `1s`; a bare number means ms) or a percentage (`99.9%`).
//!
//! This is vocabulary shared by the input side (scenario files and `--threshold` flags
//! parse checks) and the output side (the report judges them), so it sits below both:
//! paths are checked against the names in [`crate::metrics`] and the report counts listed
//! here, never against a report. It must not import the scenario or the report.
//! Judging a check against a finished report is `report::threshold`'s job.

use std::time::Duration;

use crate::metrics::{Cause, Counter, ErrorKind, Metric};

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
    /// The value compared (the dividend of a ratio), by its path.
    left: String,
    /// The divisor of a ratio, by its path.
    divisor: Option<String>,
    /// How the observed value is compared with `value`.
    op: Op,
    /// The value compared against: ms for latencies, a fraction for percentages.
    value: f64,
    /// End the run early once this fails (after `delay`).
    pub abort_on_fail: bool,
    /// How long into the run before `abort_on_fail` may act.
    pub delay: Duration,
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

    /// The path of the value compared (of the dividend, for a ratio).
    pub fn left(&self) -> &str {
        &self.left
    }

    /// The path of the divisor, for a ratio.
    pub fn divisor(&self) -> Option<&str> {
        self.divisor.as_deref()
    }

    /// Whether an observed value (ms for latencies, a fraction for ratios) passes.
    pub fn holds(&self, observed: f64) -> bool {
        self.op.holds(observed, self.value)
    }
}

/// `heartbeat.p99` → ("heartbeat", "p99") when it names a latency statistic.
pub(crate) fn latency_path(path: &str) -> Option<(&str, &str)> {
    let (metric, stat) = path.split_once('.')?;
    if metric == "custom" {
        return None;
    }
    let known_metric = Metric::ALL.iter().any(|m| m.name() == metric);
    let known_stat = is_stat(stat);
    (known_metric && known_stat).then_some((metric, stat))
}

/// `order_push.p99` → ("order_push", "p99").
pub(crate) fn custom_latency(name: &str) -> Option<(&str, &str)> {
    let (metric, stat) = name.rsplit_once('.')?;
    is_stat(stat).then_some((metric, stat))
}

fn is_stat(stat: &str) -> bool {
    matches!(
        stat,
        "count" | "min" | "mean" | "p50" | "p90" | "p99" | "p999" | "max"
    )
}

/// Counts the report holds besides the [`Counter`]s, each in a section of the same name
/// (`sessions.planned` is the report's `sessions.planned`). `report::threshold` holds a
/// test that this list and the report's fields agree.
pub(crate) const REPORT_COUNTS: &[&str] = &[
    "sessions.planned",
    "sessions.peak_active",
    "connects.succeeded",
    "connects.failed",
    "reconnects.total",
    "tester.shards",
    "tester.peak_rss_kib",
    "tester.cpu_s",
];

/// Whether `path` names a count in the report: a [`Counter`], one of
/// [`REPORT_COUNTS`], `reconnects.<cause>` or `errors.<kind>`.
pub(crate) fn is_count(path: &str) -> bool {
    Counter::ALL.iter().any(|c| c.name() == path)
        || REPORT_COUNTS.contains(&path)
        || path
            .strip_prefix("reconnects.")
            .is_some_and(|name| Cause::ALL.iter().any(|c| c.name() == name))
        || path
            .strip_prefix("errors.")
            .is_some_and(|name| ErrorKind::ALL.iter().any(|k| k.name() == name))
}

fn check_path(path: &str) -> Result<(), String> {
    if latency_path(path).is_some() || matches!(path, "errors.total" | "errors.rate") {
        return Ok(());
    }
    if path.starts_with("custom.") {
        // Script metrics are named at run time; a counter never counted reads as zero.
        return Ok(());
    }
    if is_count(path) {
        return Ok(());
    }
    Err(format!(
        "unknown value `{path}`: use a latency such as heartbeat.p99, a count such as \
         sessions.bound, reconnects.total, reconnects.<cause> or errors.<kind>, or errors.rate"
    ))
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
