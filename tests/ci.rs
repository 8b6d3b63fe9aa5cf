//! Verdicts for CI servers: `--junit` on `run`, `report` and `compare`, read back with a
//! real XML parser (roxmltree) as a CI server reads it, and `--format json` on `report`
//! and `compare`, read back with serde_json. Each checks the values against the report
//! they come from, exactly.

use std::path::{Path, PathBuf};

use wsoak::report::Report;
use wsoak::units::format_number;

mod common;
use common::{wsoak, FLOW};

/// A small, steady run against the embedded server: nothing drops, so nothing
/// reconnects.
fn scenario(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!("sessions: 5\nduration: 1500ms\n{FLOW}{extra}"),
    )
    .unwrap();
    path
}

fn read_report(path: &Path) -> Report {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The one `<testsuite>` of a JUnit file, checked to be the only one, inside
/// `<testsuites>` with the same totals.
fn the_suite<'a>(doc: &'a roxmltree::Document<'a>) -> roxmltree::Node<'a, 'a> {
    let root = doc.root_element();
    assert!(root.has_tag_name("testsuites"));
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 1);
    for attribute in ["tests", "failures", "errors", "time"] {
        assert_eq!(
            root.attribute(attribute),
            suites[0].attribute(attribute),
            "{attribute}"
        );
    }
    suites[0]
}

/// A test case as CI servers see it.
#[derive(Debug, PartialEq)]
struct Case {
    name: String,
    class: String,
    failure: Option<String>,
    out: String,
}

fn cases(suite: roxmltree::Node) -> Vec<Case> {
    suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| {
            let child = |tag: &str| n.children().find(|c| c.has_tag_name(tag));
            let failure = child("failure").map(|f| {
                let message = f.attribute("message").expect("a failure has a message");
                assert_eq!(f.text(), Some(message), "the text repeats the message");
                message.to_string()
            });
            Case {
                name: n.attribute("name").unwrap().to_string(),
                class: n.attribute("classname").unwrap().to_string(),
                failure,
                out: child("system-out")
                    .and_then(|o| o.text())
                    .unwrap_or_default()
                    .to_string(),
            }
        })
        .collect()
}

#[test]
fn run_junit_has_a_case_per_threshold_and_one_for_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(dir.path(), "steady", "");
    let run_dir = dir.path().join("run");
    // In a directory that does not exist yet, as CI configurations name them.
    let junit = dir.path().join("results/junit.xml");
    let out = wsoak()
        .args(["run", "--quiet"])
        .arg(&s)
        .arg("--report")
        .arg(run_dir.join("report.json"))
        .args(["--threshold", "heartbeats.sent > 0"])
        .args(["--threshold", "reconnects.total > 5"])
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("junit       {}", junit.display())),
        "{stdout}"
    );
    let report = read_report(&run_dir.join("report.json"));
    assert_eq!(
        report.reconnects.total, 0,
        "a steady run: nothing reconnects"
    );
    assert!(report.heartbeats.sent > 0);
    assert!(!report.interrupted && report.aborted_by.is_none());
    assert_eq!(report.errors["internal"], 0);

    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = the_suite(&doc);
    for (attribute, value) in [
        ("name", "wsoak.steady".to_string()),
        ("tests", "3".to_string()),
        ("failures", "1".to_string()),
        ("errors", "0".to_string()),
        ("time", format_number(report.duration_s, 3)),
        ("timestamp", report.started_at.clone()),
    ] {
        assert_eq!(
            suite.attribute(attribute),
            Some(value.as_str()),
            "{attribute}"
        );
    }
    assert_eq!(
        cases(suite),
        [
            Case {
                name: "heartbeats.sent > 0".into(),
                class: "wsoak.thresholds".into(),
                failure: None,
                out: format!("observed {}, needs > 0", report.heartbeats.sent),
            },
            Case {
                name: "reconnects.total > 5".into(),
                class: "wsoak.thresholds".into(),
                failure: Some("reconnects.total > 5 failed: observed 0, needs > 5".into()),
                out: "observed 0, needs > 5".into(),
            },
            Case {
                name: "run".into(),
                class: "wsoak.run".into(),
                failure: None,
                out: format!(
                    "wsoak {} · steady · {} · {}s\nsessions planned 5  started 5  bound 5",
                    env!("CARGO_PKG_VERSION"),
                    report.target,
                    format_number(report.duration_s, 3)
                ),
            },
        ]
    );
    // Written through a temporary file that was renamed, not left beside it.
    let left: Vec<_> = std::fs::read_dir(junit.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["junit.xml"]);

    // `wsoak report` finishes the same way, so it writes the same verdicts.
    let again = dir.path().join("again.xml");
    let out = wsoak()
        .arg("report")
        .arg(&run_dir)
        .arg("--junit")
        .arg(&again)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&again).unwrap(), xml);
}

#[test]
fn report_format_json_prints_the_finished_report() {
    let dir = tempfile::tempdir().unwrap();
    let s = scenario(
        dir.path(),
        "steady",
        "thresholds: [\"heartbeat.p99 < 1s\", \"reconnects.total > 5\"]\n",
    );
    let run_dir = dir.path().join("run");
    let out = wsoak()
        .args(["run", "--quiet"])
        .arg(&s)
        .arg("--report")
        .arg(run_dir.join("report.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let written = std::fs::read_to_string(run_dir.join("report.json")).unwrap();

    let out = wsoak()
        .arg("report")
        .arg(&run_dir)
        .args(["--format", "json"])
        .output()
        .unwrap();
    // The exit code is the verdicts', whatever the format.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let printed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let file: serde_json::Value = serde_json::from_str(&written).unwrap();
    assert_eq!(printed, file);
    // The thresholds were judged, and the file was rewritten with the same text.
    assert_eq!(printed["thresholds"][0]["pass"], true);
    assert_eq!(printed["thresholds"][1]["pass"], false);
    assert_eq!(printed["thresholds"][1]["observed"], 0.0);
    assert_eq!(
        std::fs::read_to_string(run_dir.join("report.json")).unwrap(),
        stdout
    );
    // Where the files are goes to stderr, leaving stdout to the program.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("report      "), "{stderr}");

    // The default is still the summary.
    let out = wsoak().arg("report").arg(&run_dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("latency (ms)"), "{stdout}");
    assert!(serde_json::from_str::<serde_json::Value>(&stdout).is_err());
}

#[test]
fn compare_junit_and_json_agree_on_the_regressions() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &str| {
        // As tests/reports.rs's compare test: a 250 ms heartbeat with a 240 ms window,
        // so that a loaded test machine does not fail a heartbeat the other run kept.
        let flow = FLOW
            .replace("interval: 100ms", "interval: 250ms")
            .replace("timeout: 90ms", "timeout: 240ms");
        let s = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&s, format!("sessions: 30\nduration: 2500ms\n{flow}{extra}")).unwrap();
        let report = dir.path().join(name).join("report.json");
        common::run(&[s.to_str().unwrap(), "--report", report.to_str().unwrap()]).unwrap();
        dir.path().join(name)
    };
    let base = run("base", "");
    let slow = run("slow", "server: {delay: 40ms}\n");
    let compare = |a: &Path, b: &Path, extra: &[&str]| {
        wsoak()
            .arg("compare")
            .arg(a)
            .arg(b)
            // As in tests/reports.rs: the injected 40 ms cannot hide under 25.
            .args(["--latency-floor", "25ms", "--tolerance", "20%"])
            .args(extra)
            .output()
            .unwrap()
    };

    let junit = dir.path().join("compare.xml");
    let out = compare(&base, &slow, &["--junit", junit.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = the_suite(&doc);
    assert_eq!(suite.attribute("name"), Some("wsoak.compare.slow"));
    assert_eq!(suite.attribute("errors"), Some("0"));
    let slow_report = read_report(&slow.join("report.json"));
    let base_report = read_report(&base.join("report.json"));
    assert_eq!(
        suite.attribute("timestamp"),
        Some(slow_report.started_at.as_str())
    );
    let cases = cases(suite);
    assert!(cases.iter().all(|c| c.class == "wsoak.compare"));
    let failed: Vec<&Case> = cases.iter().filter(|c| c.failure.is_some()).collect();
    assert_eq!(
        suite.attribute("tests"),
        Some(cases.len().to_string().as_str())
    );
    assert_eq!(
        suite.attribute("failures"),
        Some(failed.len().to_string().as_str())
    );
    // heartbeat.p99 regressed, and its message says from what to what, exactly.
    let (b, c) = (
        base_report.latency_ms["heartbeat"].p99.unwrap(),
        slow_report.latency_ms["heartbeat"].p99.unwrap(),
    );
    let p99 = failed
        .iter()
        .find(|c| c.name == "heartbeat.p99")
        .unwrap_or_else(|| panic!("heartbeat.p99 did not fail: {xml}"));
    assert_eq!(
        p99.failure.as_deref().unwrap(),
        format!(
            "heartbeat.p99 regressed: baseline {} ms, current {} ms, change {:+.1}%, beyond \
             the 20% tolerance",
            format_number(b, 3),
            format_number(c, 3),
            (c - b) / b * 100.0
        )
    );
    // `max` is shown in the table but never judged, so it is no test case.
    assert!(!cases.iter().any(|c| c.name.ends_with(".max")), "{xml}");

    let out = compare(&base, &slow, &["--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["baseline"], base.join("report.json").to_str().unwrap());
    assert_eq!(json["current"], slow.join("report.json").to_str().unwrap());
    let rows = json["rows"].as_array().unwrap();
    let regressed: Vec<&str> = rows
        .iter()
        .filter(|r| r["regression"] == true)
        .map(|r| r["metric"].as_str().unwrap())
        .collect();
    assert_eq!(json["regressions"], regressed.len());
    let failed_names: Vec<&str> = failed.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(regressed, failed_names);
    let judged: Vec<&str> = rows
        .iter()
        .filter(|r| r["judged"] == true)
        .map(|r| r["metric"].as_str().unwrap())
        .collect();
    let case_names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(judged, case_names);
    let row = rows
        .iter()
        .find(|r| r["metric"] == "heartbeat.p99")
        .unwrap();
    assert_eq!(
        (&row["baseline"], &row["current"]),
        (&serde_json::json!(b), &serde_json::json!(c))
    );
    // serde_json reads a float back within one unit in the last place.
    let delta = row["delta"].as_f64().unwrap();
    assert!(
        (delta - (c - b) / b).abs() <= 1e-12 * delta.abs().max(1.0),
        "{delta} vs {}",
        (c - b) / b
    );
    for row in rows {
        let keys: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "metric",
                "baseline",
                "current",
                "delta",
                "judged",
                "regression"
            ]
        );
    }

    // A run against itself: every case passes, and the exit code says so.
    let out = compare(
        &base,
        &base,
        &["--junit", junit.to_str().unwrap(), "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["regressions"], 0);
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suite = the_suite(&doc);
    assert_eq!(suite.attribute("failures"), Some("0"));
    assert_eq!(
        suite.attribute("tests"),
        Some(judged.len().to_string().as_str())
    );
}
