//! The committed JSON Schemas describe what wsoak actually reads and writes:
//! `schema/report.schema.json` the reports (a real report validates, and the validator
//! rejects broken ones), and `schema/scenario.schema.json` the scenario files (it is
//! exactly what `wsoak schema scenario` generates from the model, every shipped scenario
//! validates, and a misspelled key is caught and named).
//!
//! The validator is in `common/schema.rs`, shared with the tests that check their own
//! reports.

use std::path::Path;

use clap::Parser;
use serde_json::{json, Value};
use wsoak::cli::{Cli, Command};

mod common;

use common::schema::{errors_against, errors_of, load};

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

/// `wsoak schema NAME`'s stdout.
fn printed_schema(name: &str) -> String {
    let out = common::wsoak().args(["schema", name]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_committed_scenario_schema_is_what_the_model_generates() {
    let committed = std::fs::read_to_string("schema/scenario.schema.json").unwrap();
    assert!(
        committed == printed_schema("scenario"),
        "schema/scenario.schema.json is out of step with the scenario model \
         (src/scenario/raw.rs and the types it uses): regenerate it with\n  \
         cargo run -- schema scenario > schema/scenario.schema.json\n\
         (that is, `wsoak schema scenario > schema/scenario.schema.json`) and commit it"
    );
}

#[test]
fn wsoak_schema_report_prints_the_committed_report_schema() {
    let committed = std::fs::read_to_string("schema/report.schema.json").unwrap();
    assert_eq!(printed_schema("report"), committed);
    let out = common::wsoak().args(["schema", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for word in ["scenario", "report", "Examples", "yaml-language-server"] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
}

/// A YAML scenario as the JSON the schema describes.
fn yaml_to_json(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

/// The shipped YAML scenarios: `scenarios/*.yaml` and `benches/*.yaml`.
fn shipped_scenarios() -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for dir in ["scenarios", "benches"] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_shipped_scenario_validates_and_names_the_schema() {
    let schema = load("schema/scenario.schema.json");
    let files = shipped_scenarios();
    assert!(files.len() >= 8, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            errors_against(&schema, &yaml_to_json(&text)),
            Vec::<String>::new(),
            "{}",
            path.display()
        );
        // The modeline editors read, pointing at the committed schema from the file's own
        // folder.
        let first = text.lines().next().unwrap_or_default();
        let relative = first
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| panic!("{}: no modeline on line 1", path.display()));
        let target = path.parent().unwrap().join(relative);
        assert_eq!(
            std::fs::canonicalize(&target).unwrap(),
            std::fs::canonicalize(Path::new("schema/scenario.schema.json")).unwrap(),
            "{}",
            path.display()
        );
        // And wsoak itself agrees that the file is valid.
        let scenario = wsoak::scenario::load(&path, &Default::default());
        assert!(scenario.is_ok(), "{}: {scenario:?}", path.display());
    }
}

#[test]
fn a_misspelled_key_fails_validation_and_is_named() {
    let schema = load("schema/scenario.schema.json");
    let at_top = yaml_to_json("heartbeet:\n  interval: 1s\n  send: {type: heartBeat}\n");
    let errors = errors_against(&schema, &at_top);
    assert!(
        errors.iter().any(|e| e == "$.heartbeet: not in the schema"),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e == "$: missing `heartbeat`"),
        "{errors:?}"
    );

    let inside = yaml_to_json("heartbeat:\n  intervall: 1s\n  send: {type: heartBeat}\n");
    let errors = errors_against(&schema, &inside);
    assert_eq!(
        errors,
        vec!["$.heartbeat.intervall: not in the schema".to_string()]
    );

    // Deeper, under an optional section (an anyOf of the section and null): still named.
    let nested = yaml_to_json("heartbeat: {}\nload:\n  arrival: {rate: 5, max_sesions: 10}\n");
    let errors = errors_against(&schema, &nested);
    assert!(
        errors
            .iter()
            .any(|e| e == "$.load.arrival.max_sesions: not in the schema"),
        "{errors:?}"
    );
}

#[test]
fn the_scenario_schema_checks_the_forms_of_values() {
    let schema = load("schema/scenario.schema.json");
    let errors_in = |yaml: &str| errors_against(&schema, &yaml_to_json(yaml));
    let good = "heartbeat: {interval: 1h30m}\nchurn: {dwell: 5m, hidden: 25%}\n\
                reconnect: {backoff: exponential, jitter: 0.2}\nserver: {reject_auth: 0.5}\n";
    assert_eq!(errors_in(good), Vec::<String>::new());
    for (yaml, wrong) in [
        ("heartbeat: {interval: '30'}", "$.heartbeat.interval"),
        ("heartbeat: {interval: 30}", "$.heartbeat.interval"),
        (
            "heartbeat: {}\nchurn: {dwell: 5m, hidden: 150%}",
            "$.churn.hidden",
        ),
        (
            "heartbeat: {}\nchurn: {dwell: 5m, hidden: 1.5}",
            "$.churn.hidden",
        ),
        (
            "heartbeat: {}\nreconnect: {backoff: linear}",
            "$.reconnect.backoff",
        ),
        (
            "heartbeat: {}\nreconnect: {jitter: 2}",
            "$.reconnect.jitter",
        ),
        ("heartbeat: {}\nsessions: 0", "$.sessions"),
        ("heartbeat: {}\nsessions: lots", "$.sessions"),
        (
            "heartbeat: {}\nscript: {limits: {max_call_levels: 65}}",
            "$.script",
        ),
    ] {
        let errors = errors_in(yaml);
        assert!(
            errors.iter().any(|e| e.starts_with(wrong)),
            "{yaml}: {errors:?}"
        );
    }
}
