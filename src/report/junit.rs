//! JUnit XML, the test-result format CI servers read (Jenkins, GitLab, GitHub Actions
//! through a reporter action): a finished run's threshold verdicts, and the judged rows
//! of `wsoak compare`, each as a test case that passes or fails.
//!
//! This module owns the XML's shape and its escaping. It judges nothing: a threshold's
//! verdict is the report's ([`Report::judge`]), a regression is
//! [`compare`](super::compare)'s, and the XML only says them, with the observed values in
//! their units. It writes no file: the command writes the text it returns, atomically.

use std::fmt::Write as _;

use super::compare::Row;
use super::threshold::{show, Threshold, Verdict};
use super::Report;
use crate::units::{format_number, format_percent};

/// The class name of a threshold's test case.
pub const THRESHOLDS_CLASS: &str = "wsoak.thresholds";
/// The class name of the test case that says whether the run itself held up.
pub const RUN_CLASS: &str = "wsoak.run";
/// The class name of a compared metric's test case.
pub const COMPARE_CLASS: &str = "wsoak.compare";

/// A finished run as JUnit XML: one suite, `wsoak.<scenario>`, with a test case per
/// threshold (in the order given) and a last one, `run`, that fails when the run was
/// interrupted, ended early by an `abort_on_fail` threshold, had internal errors, or is
/// a merge of only some of its shards.
pub fn run(report: &Report) -> String {
    let mut cases: Vec<Case> = report.thresholds.iter().map(threshold_case).collect();
    cases.push(run_case(report));
    let w = &report.wsoak;
    let mut properties = vec![
        ("scenario", report.scenario.clone()),
        ("target", report.target.clone()),
        ("started_at", report.started_at.clone()),
        ("wsoak.version", w.version.clone()),
    ];
    if let Some(sha) = &w.scenario_sha256 {
        properties.push(("wsoak.scenario_sha256", sha.clone()));
    }
    if !w.command.is_empty() {
        properties.push(("wsoak.command", super::shell_words(&w.command)));
    }
    Suite {
        name: format!("wsoak.{}", report.scenario),
        timestamp: report.started_at.clone(),
        time: report.duration_s,
        properties,
        cases,
    }
    .render()
}

/// `wsoak compare` as JUnit XML: one suite, `wsoak.compare.<scenario>` (the current
/// run's scenario), with a test case per judged row; a regression fails its case.
/// `baseline` and `current` are the reports' paths, as the table shows them.
pub fn compare(current_report: &Report, baseline: &str, current: &str, rows: &[Row]) -> String {
    let cases = rows
        .iter()
        .filter(|r| r.judged)
        .map(|row| {
            let said = format!(
                "baseline {}, current {}, change {}",
                row.show(row.baseline),
                row.show(row.current),
                row.show_delta()
            );
            let failure = row.regression.then(|| Failure {
                kind: "regression",
                message: format!(
                    "{} regressed: {said}, beyond the {} tolerance",
                    row.metric,
                    format_percent(row.tolerance)
                ),
            });
            Case {
                name: row.metric.clone(),
                class: COMPARE_CLASS,
                time: 0.0,
                failure,
                out: said,
            }
        })
        .collect();
    Suite {
        name: format!("wsoak.compare.{}", current_report.scenario),
        timestamp: current_report.started_at.clone(),
        time: 0.0,
        properties: vec![
            ("baseline", baseline.to_string()),
            ("current", current.to_string()),
        ],
        cases,
    }
    .render()
}

fn threshold_case(verdict: &Verdict) -> Case {
    // The check as written parses back to the threshold that was judged; a report edited
    // by hand may hold one that does not, which is then said without units.
    let threshold = Threshold::parse(&verdict.check).ok();
    let measure = threshold.as_ref().map(Threshold::measure);
    let observed = verdict.observed.map_or("no data".to_string(), |v| {
        format!("observed {}", show(measure, v))
    });
    let needs = threshold.as_ref().map_or(String::new(), |t| {
        format!(", needs {} {}", t.comparison(), show(measure, t.limit()))
    });
    let failure = (!verdict.pass).then(|| Failure {
        kind: "threshold",
        message: format!("{} failed: {observed}{needs}", verdict.check),
    });
    let mut out = format!("{observed}{needs}");
    if verdict.observed.is_none() {
        out.push_str(" (no samples, or a ratio over 0: a threshold passes only on data)");
    }
    if verdict.abort_on_fail {
        out.push_str("\nabort_on_fail: a failure ends the run early");
    }
    Case {
        name: verdict.check.clone(),
        class: THRESHOLDS_CLASS,
        time: 0.0,
        failure,
        out,
    }
}

fn run_case(report: &Report) -> Case {
    let mut why = Vec::new();
    if report.interrupted {
        why.push(
            "interrupted: the run ended before its duration (a signal, or a report rebuilt \
             from the logs of a run that never finished)"
                .to_string(),
        );
    }
    if let Some(check) = &report.aborted_by {
        why.push(format!("aborted by the abort_on_fail threshold `{check}`"));
    }
    if let Some(merged) = report.merged.as_ref().filter(|m| !m.missing.is_empty()) {
        let list: Vec<String> = merged.missing.iter().map(u32::to_string).collect();
        why.push(format!(
            "partial: shards {} of {} are missing (merged with --allow-partial), so this is \
             not the whole run",
            list.join(", "),
            merged.count
        ));
    }
    let internal = report
        .errors
        .get("internal")
        .copied()
        .unwrap_or(0)
        .max(report.internal_errors.len() as u64);
    if internal > 0 {
        let first = report
            .internal_errors
            .first()
            .map_or(String::new(), |e| format!(" First: {e}"));
        why.push(format!(
            "{internal} internal errors: wsoak itself failed, so this run's numbers are not \
             to be trusted.{first}"
        ));
    }
    let s = &report.sessions;
    let mut out = format!(
        "wsoak {} · {} · {} · {}s\nsessions planned {}  started {}  bound {}",
        report.wsoak.version,
        report.scenario,
        report.target,
        format_number(report.duration_s, 3),
        s.planned,
        s.started,
        s.bound
    );
    if !report.lost_workers.is_empty() {
        let _ = write!(
            out,
            "\nlost workers {} ({} sessions)",
            report.lost_workers.len(),
            s.lost
        );
    }
    Case {
        name: "run".to_string(),
        class: RUN_CLASS,
        time: report.duration_s,
        failure: (!why.is_empty()).then(|| Failure {
            kind: "run",
            message: why.join("; "),
        }),
        out,
    }
}

/// One `<testsuite>`, inside a `<testsuites>` that repeats its totals.
struct Suite {
    name: String,
    /// When the run started (RFC 3339, UTC).
    timestamp: String,
    /// Seconds.
    time: f64,
    properties: Vec<(&'static str, String)>,
    cases: Vec<Case>,
}

/// One `<testcase>`.
struct Case {
    name: String,
    class: &'static str,
    /// Seconds.
    time: f64,
    failure: Option<Failure>,
    /// What was observed, for `<system-out>`.
    out: String,
}

/// A failed case's `<failure>`: the message is both the attribute (which CI servers show
/// in their lists) and the element's text (which they show when it is opened).
struct Failure {
    kind: &'static str,
    message: String,
}

impl Suite {
    fn render(&self) -> String {
        let tests = self.cases.len();
        let failures = self.cases.iter().filter(|c| c.failure.is_some()).count();
        let time = format_number(self.time, 3);
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            x,
            "<testsuites name=\"wsoak\" tests=\"{tests}\" failures=\"{failures}\" \
             errors=\"0\" time=\"{time}\">"
        );
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" \
             skipped=\"0\" time=\"{time}\" timestamp=\"{}\">",
            attr(&self.name),
            attr(&self.timestamp)
        );
        x.push_str("    <properties>\n");
        for (name, value) in &self.properties {
            let _ = writeln!(
                x,
                "      <property name=\"{}\" value=\"{}\"/>",
                attr(name),
                attr(value)
            );
        }
        x.push_str("    </properties>\n");
        for case in &self.cases {
            let _ = writeln!(
                x,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\">",
                attr(&case.name),
                attr(case.class),
                format_number(case.time, 3)
            );
            if let Some(f) = &case.failure {
                let _ = writeln!(
                    x,
                    "      <failure message=\"{}\" type=\"{}\">{}</failure>",
                    attr(&f.message),
                    f.kind,
                    text(&f.message)
                );
            }
            let _ = writeln!(x, "      <system-out>{}</system-out>", text(&case.out));
            x.push_str("    </testcase>\n");
        }
        x.push_str("  </testsuite>\n</testsuites>\n");
        x
    }
}

/// Escapes an attribute value. Line breaks and tabs are written as character references,
/// which a parser keeps; written as they are, it would turn them into spaces.
fn attr(value: &str) -> String {
    escape(value, true)
}

/// Escapes element text.
fn text(value: &str) -> String {
    escape(value, false)
}

fn escape(value: &str, in_attribute: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // A parser turns a raw CR (or CR LF) into LF, in text too.
            '\r' => out.push_str("&#13;"),
            '\n' if in_attribute => out.push_str("&#10;"),
            '\t' if in_attribute => out.push_str("&#9;"),
            '\n' | '\t' => out.push(c),
            // XML 1.0 has no way to write other control characters, not even as a
            // reference; an internal error's message could hold one.
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut json = Report::empty_json();
        json["scenario"] = "nightly".into();
        json["started_at"] = "2026-11-29T02:00:00Z".into();
        json["duration_s"] = 30.25.into();
        let mut report: Report = serde_json::from_value(json).unwrap();
        report.thresholds = vec![
            Verdict {
                check: "heartbeat.p99 < 200ms".into(),
                observed: Some(1.083),
                pass: true,
                abort_on_fail: false,
            },
            Verdict {
                check: "sessions.bound / sessions.started >= 99.9%".into(),
                observed: Some(0.998),
                pass: false,
                abort_on_fail: false,
            },
            Verdict {
                check: "connect.p99 < 1s".into(),
                observed: None,
                pass: false,
                abort_on_fail: true,
            },
            Verdict {
                check: "custom.r&d >= 2".into(),
                observed: Some(1.0),
                pass: false,
                abort_on_fail: false,
            },
        ];
        report
    }

    fn case<'a>(doc: &'a roxmltree::Document, name: &str) -> roxmltree::Node<'a, 'a> {
        doc.descendants()
            .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
            .unwrap_or_else(|| panic!("no testcase {name}"))
    }

    fn failure(case: roxmltree::Node) -> Option<String> {
        let f = case.children().find(|n| n.has_tag_name("failure"))?;
        assert_eq!(
            f.text(),
            f.attribute("message"),
            "the text repeats the message"
        );
        f.attribute("message").map(str::to_string)
    }

    fn out(case: roxmltree::Node) -> String {
        let o = case.children().find(|n| n.has_tag_name("system-out"));
        o.and_then(|n| n.text()).unwrap_or_default().to_string()
    }

    #[test]
    fn verdicts_become_cases_with_units_and_reasons() {
        let xml = run(&report());
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let suite = doc
            .descendants()
            .find(|n| n.has_tag_name("testsuite"))
            .unwrap();
        for (attribute, value) in [
            ("name", "wsoak.nightly"),
            ("tests", "5"),
            ("failures", "3"),
            ("errors", "0"),
            ("time", "30.25"),
            ("timestamp", "2026-11-29T02:00:00Z"),
        ] {
            assert_eq!(suite.attribute(attribute), Some(value), "{attribute}");
        }
        let p99 = case(&doc, "heartbeat.p99 < 200ms");
        assert_eq!(p99.attribute("classname"), Some(THRESHOLDS_CLASS));
        assert_eq!(failure(p99), None);
        assert_eq!(out(p99), "observed 1.083 ms, needs < 200 ms");
        let ratio = case(&doc, "sessions.bound / sessions.started >= 99.9%");
        assert_eq!(
            failure(ratio).unwrap(),
            "sessions.bound / sessions.started >= 99.9% failed: observed 99.8%, needs >= 99.9%"
        );
        let empty = case(&doc, "connect.p99 < 1s");
        assert_eq!(
            failure(empty).unwrap(),
            "connect.p99 < 1s failed: no data, needs < 1000 ms"
        );
        assert!(out(empty).contains("abort_on_fail"), "{}", out(empty));
        // `&`, `<` and `>` in a check survive the trip through a parser.
        let odd = case(&doc, "custom.r&d >= 2");
        assert_eq!(
            failure(odd).unwrap(),
            "custom.r&d >= 2 failed: observed 1, needs >= 2"
        );
        let run = case(&doc, "run");
        assert_eq!(run.attribute("classname"), Some(RUN_CLASS));
        assert_eq!(failure(run), None);
    }

    #[test]
    fn the_run_case_fails_for_each_reason_and_names_them() {
        let mut r = report();
        r.thresholds.clear();
        let xml = run(&r);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("testcase"))
                .count(),
            1,
            "no thresholds: only the run"
        );
        r.interrupted = true;
        r.aborted_by = Some("errors.rate < 0.1%".into());
        r.errors.insert("internal".into(), 2);
        r.internal_errors = vec!["panic in shard 1: \"boom\"\n\u{1}at <here>".into()];
        let xml = run(&r);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let message = failure(case(&doc, "run")).unwrap();
        assert!(message.starts_with("interrupted: "), "{message}");
        assert!(
            message.contains("aborted by the abort_on_fail threshold `errors.rate < 0.1%`"),
            "{message}"
        );
        assert!(
            message.contains(
                "2 internal errors: wsoak itself failed, so this run's numbers are not to be \
                 trusted. First: panic in shard 1: \"boom\"\n\u{FFFD}at <here>"
            ),
            "{message}"
        );
    }

    #[test]
    fn attributes_keep_line_breaks_and_tabs() {
        let value = "a\tb\nc\r\nd & \"e\" 'f' <g>";
        let xml = format!("<x v=\"{}\">{}</x>", attr(value), text(value));
        let doc = roxmltree::Document::parse(&xml).unwrap();
        assert_eq!(doc.root_element().attribute("v"), Some(value));
        assert_eq!(doc.root_element().text(), Some(value));
    }
}
