//! The committed JSON Schema (`schema/report.schema.json`) describes the reports wsoak
//! actually writes: a real report validates, and the validator rejects broken ones.
//!
//! The validator is in `common/schema.rs`, shared with the tests that check their own
//! reports.

use clap::Parser;
use serde_json::{json, Value};
use wsoak::cli::{Cli, Command};

mod common;

use common::schema::errors_of;

#[test]
fn a_real_report_matches_the_committed_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let argv = [
        "wsoak",
        "run",
        "--quiet",
        "scenarios/miniprogram.yaml",
        "--sessions",
        "5",
        "--duration",
        "1200ms",
        "--report",
        path.to_str().unwrap(),
        "--threshold",
        "heartbeat.p99 < 1s",
    ];
    let Command::Run(args) = Cli::parse_from(argv).command else {
        unreachable!()
    };
    wsoak::run_scenario(&args).unwrap();
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(errors_of(&report), Vec::<String>::new());

    // The server's hold summary and headers, which this run leaves empty, as a run with
    // held acks fills them.
    let mut held = report.clone();
    held["server"]["heartbeat_hold_ms"] = serde_json::to_value(wsoak::server::HoldSummary {
        count: 3,
        min: Some(50.08),
        p50: Some(50.112),
        p99: Some(51.2),
        max: Some(51.2),
    })
    .unwrap();
    held["server"]["headers"] = json!({"x-client: wsoak": 5});
    assert_eq!(errors_of(&held), Vec::<String>::new());

    // The validator can fail: a missing key, an unknown key and a wrong type are caught.
    let mut broken = report.clone();
    broken["sessions"].as_object_mut().unwrap().remove("bound");
    broken["surprise"] = json!(1);
    broken["latency_ms"]["auth"]["p99"] = json!("fast");
    // Array elements are checked too: a threshold verdict without `pass`, and too many
    // internal-error messages of the wrong type.
    broken["thresholds"][0]
        .as_object_mut()
        .unwrap()
        .remove("pass");
    broken["internal_errors"] = json!([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let errors = errors_of(&broken);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("thresholds[0]: missing `pass`")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("internal_errors: 9 items")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("internal_errors[0]")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("missing `bound`")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("$.surprise")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("latency_ms.auth.p99")),
        "{errors:?}"
    );
}
