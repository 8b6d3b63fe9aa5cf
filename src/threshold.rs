//! Threshold expressions: what a pass/fail check says, parsed and validated.
//!
//! A check reads `LEFT OP VALUE`, where LEFT is a report value or the ratio of two:
//!
//! - a latency statistic, in ms: `heartbeat.p99`, `connect.max`, `auth.mean`, and any
//!   step's by its name (`subscribe.p99`);
//! - any count in the report by its path: `sessions.bound`, `heartbeats.failed`,
//!   `reconnects.total`, `reconnects.heartbeat` (a cause), `errors.tls` (a kind), a step's
//!   `errors.<step>_timeout`, `errors.<step>_rejected`, `reconnects.<step>_rejected` and
//!   `steps.<step>.<count>` (reached, accepted, rejected, timed_out, sessions);
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
//! here, never against a report. A check is parsed without knowing the scenario's steps
//! (`--threshold` is parsed with the command line); a path that names a step is checked
//! against the steps once they are known ([`Threshold::check_names`]). It must not import
//! the scenario or the report.
//! Judging a check against a finished report is `report::threshold`'s job.

use std::time::Duration;

use crate::metrics::{check_step_name, Cause, Counter, ErrorKind, Metric};

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
    /// The comparison as written.
    fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

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

/// What a check's value measures, which says its unit: a latency in ms, a fraction (a
/// ratio, or `errors.rate`), or a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// A latency statistic, in milliseconds.
    Latency,
    /// A ratio of two values, or `errors.rate`: a fraction, shown as a percentage.
    Fraction,
    /// A count, or another plain number (`tester.cpu_s`).
    Count,
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

    /// Checks the steps the check names (`subscribe.p99`, `errors.subscribe_timeout`)
    /// against the scenario's, given in order.
    pub fn check_names(&self, steps: &[&str]) -> Result<(), String> {
        for path in std::iter::once(&self.left).chain(&self.divisor) {
            if let Some(step) = step_of(path) {
                if !steps.contains(&step) {
                    let known = if steps.is_empty() {
                        "the scenario has no steps".to_string()
                    } else {
                        format!("the scenario's steps are {}", steps.join(", "))
                    };
                    return Err(format!(
                        "`{}`: `{path}` names a step `{step}`, but {known}",
                        self.check
                    ));
                }
            }
        }
        Ok(())
    }

    /// The path of the value compared (of the dividend, for a ratio).
    pub fn left(&self) -> &str {
        &self.left
    }

    /// The path of the divisor, for a ratio.
    pub fn divisor(&self) -> Option<&str> {
        self.divisor.as_deref()
    }

    /// What the observed value and [`Threshold::limit`] measure. A latency's `count` is a
    /// count, not a time.
    pub fn measure(&self) -> Measure {
        if self.divisor.is_some() || self.left == "errors.rate" {
            return Measure::Fraction;
        }
        let stat = latency_path(&self.left)
            .or_else(|| self.left.strip_prefix("custom.").and_then(custom_latency))
            .map(|(_, stat)| stat);
        match stat {
            Some(stat) if stat != "count" => Measure::Latency,
            _ => Measure::Count,
        }
    }

    /// The comparison, as written (`<`, `>=`, …).
    pub fn comparison(&self) -> &'static str {
        self.op.symbol()
    }

    /// The value compared against, in the unit of [`Threshold::measure`]: ms for
    /// latencies, a fraction for ratios (`99.9%` is 0.999).
    pub fn limit(&self) -> f64 {
        self.value
    }

    /// Whether an observed value (ms for latencies, a fraction for ratios) passes.
    pub fn holds(&self, observed: f64) -> bool {
        self.op.holds(observed, self.value)
    }
}

/// `heartbeat.p99` → ("heartbeat", "p99") when it names a latency statistic: of a
/// built-in metric, or of a step (any well-formed step name: which steps there are is
/// [`Threshold::check_names`]' business).
pub(crate) fn latency_path(path: &str) -> Option<(&str, &str)> {
    let (metric, stat) = path.split_once('.')?;
    let known_metric =
        Metric::ALL.iter().any(|m| m.name() == metric) || check_step_name(metric).is_ok();
    (known_metric && is_stat(stat)).then_some((metric, stat))
}

/// The counts of a step's report section, `steps.<step>.<count>`.
const STEP_COUNTS: &[&str] = &["reached", "accepted", "rejected", "timed_out", "sessions"];

/// The step a path names, if it names one: its latency (`subscribe.p99`), its errors
/// (`errors.subscribe_timeout`), its rejection cause (`reconnects.subscribe_rejected`) or
/// its counts (`steps.subscribe.reached`).
fn step_of(path: &str) -> Option<&str> {
    let named = |name: &str| check_step_name(name).is_ok();
    if let Some((metric, _)) = latency_path(path) {
        return (!Metric::ALL.iter().any(|m| m.name() == metric)).then_some(metric);
    }
    if let Some(rest) = path.strip_prefix("steps.") {
        let (step, count) = rest.split_once('.')?;
        return (named(step) && STEP_COUNTS.contains(&count)).then_some(step);
    }
    if let Some(kind) = path.strip_prefix("errors.") {
        if ErrorKind::ALL.iter().any(|k| k.name() == kind) {
            return None;
        }
        let step = kind
            .strip_suffix("_timeout")
            .or_else(|| kind.strip_suffix("_rejected"))?;
        return named(step).then_some(step);
    }
    if let Some(cause) = path.strip_prefix("reconnects.") {
        if Cause::ALL.iter().any(|c| c.name() == cause) {
            return None;
        }
        let step = cause.strip_suffix("_rejected")?;
        return named(step).then_some(step);
    }
    None
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
    "sessions.lost",
    "connects.succeeded",
    "connects.failed",
    "reconnects.total",
    "tester.shards",
    "tester.workers",
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
    if is_count(path) || step_of(path).is_some() {
        return Ok(());
    }
    Err(format!(
        "unknown value `{path}`: use a latency such as heartbeat.p99 or <step>.p99, a count \
         such as sessions.bound, reconnects.total, reconnects.<cause>, errors.<kind> or \
         steps.<step>.rejected, or errors.rate"
    ))
}

fn parse_value(text: &str, latency: bool) -> Result<f64, String> {
    if let Some(percent) = crate::units::parse_percent(text) {
        return percent;
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
        assert!(Threshold::parse("sessions.p99 < 1").is_err());
    }

    #[test]
    fn paths_that_name_a_step_are_checked_against_the_steps() {
        let steps = ["auth", "subscribe"];
        for check in [
            "subscribe.p99 < 50ms",
            "errors.subscribe_timeout == 0",
            "errors.auth_rejected == 0",
            "reconnects.subscribe_rejected == 0",
            "steps.subscribe.accepted / steps.subscribe.reached >= 99%",
            "heartbeat.p99 < 1s",
            "errors.connect_timeout == 0",
        ] {
            let t = Threshold::parse(check).unwrap();
            assert!(t.check_names(&steps).is_ok(), "{check}");
        }
        for check in [
            "order.p99 < 50ms",
            "errors.order_timeout == 0",
            "reconnects.order_rejected == 0",
            "steps.order.reached > 0",
            "sessions.bound / steps.order.sessions > 0",
        ] {
            let t = Threshold::parse(check).unwrap();
            let e = t.check_names(&steps).unwrap_err();
            assert!(
                e.contains("names a step `order`") && e.contains("auth, subscribe"),
                "{e}"
            );
        }
        assert!(Threshold::parse("steps.order.nope > 0").is_err());
        assert!(Threshold::parse("errors.order_nope > 0").is_err());
    }

    #[test]
    fn a_check_knows_what_it_measures() {
        let t = |check: &str| Threshold::parse(check).unwrap();
        for (check, measure, comparison, limit) in [
            ("heartbeat.p99 < 200ms", Measure::Latency, "<", 200.0),
            ("subscribe.max <= 1s", Measure::Latency, "<=", 1000.0),
            ("custom.order_push.p50 < 5", Measure::Latency, "<", 5.0),
            ("heartbeat.count > 10", Measure::Count, ">", 10.0),
            ("custom.order_push.count >= 1", Measure::Count, ">=", 1.0),
            ("custom.kicked == 0", Measure::Count, "==", 0.0),
            ("reconnects.total != 3", Measure::Count, "!=", 3.0),
            ("errors.rate < 0.1%", Measure::Fraction, "<", 0.001),
            (
                "sessions.bound / sessions.started >= 99.9%",
                Measure::Fraction,
                ">=",
                0.999,
            ),
        ] {
            let t = t(check);
            assert_eq!(t.measure(), measure, "{check}");
            assert_eq!(t.comparison(), comparison, "{check}");
            assert!((t.limit() - limit).abs() < 1e-12, "{check}: {}", t.limit());
        }
    }
}
