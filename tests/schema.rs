//! The committed JSON Schema (`schema/report.schema.json`) describes the reports wsoak
//! actually writes: a real report validates, and the validator rejects broken ones.
//!
//! The validator covers the subset of JSON Schema the file uses: `type`, `const`,
//! `required`, `properties`, `additionalProperties`, `items`, `minimum` and local `$ref`.

use clap::Parser;
use serde_json::{json, Value};
use wsoak::cli::{Cli, Command};

fn validate(schema: &Value, root: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.strip_prefix("#/$defs/").expect("local refs only");
        return validate(&root["$defs"][name], root, value, at, errors);
    }
    if let Some(expected) = schema.get("const") {
        if value != expected {
            errors.push(format!("{at}: {value} is not {expected}"));
        }
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => panic!("bad type in schema at {at}"),
        };
        let ok = types.iter().any(|t| match *t {
            "object" => value.is_object(),
            "string" => value.is_string(),
            "integer" => value.is_u64() || value.is_i64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            "null" => value.is_null(),
            other => panic!("unsupported type {other}"),
        });
        if !ok {
            errors.push(format!("{at}: {value} is not {types:?}"));
            return;
        }
    }
    if let (Some(min), Some(v)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) {
        if v < min {
            errors.push(format!("{at}: {v} < {min}"));
        }
    }
    let Some(object) = value.as_object() else {
        return;
    };
    for key in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = key.as_str().unwrap();
        if !object.contains_key(key) {
            errors.push(format!("{at}: missing `{key}`"));
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    for (key, child) in object {
        let path = format!("{at}.{key}");
        match (
            properties.and_then(|p| p.get(key)),
            schema.get("additionalProperties"),
        ) {
            (Some(sub), _) => validate(sub, root, child, &path, errors),
            (None, Some(Value::Bool(false))) => errors.push(format!("{path}: not in the schema")),
            (None, Some(sub)) if sub.is_object() => validate(sub, root, child, &path, errors),
            _ => {}
        }
    }
}

fn schema() -> Value {
    serde_json::from_str(&std::fs::read_to_string("schema/report.schema.json").unwrap()).unwrap()
}

fn errors_of(report: &Value) -> Vec<String> {
    let schema = schema();
    let mut errors = Vec::new();
    validate(&schema, &schema, report, "$", &mut errors);
    errors
}

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
    let errors = errors_of(&broken);
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
