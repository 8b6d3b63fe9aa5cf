//! The committed JSON Schemas (`schema/report.schema.json`, `schema/scenario.schema.json`)
//! as checks any test can run on a report it produced or a scenario it reads.
//!
//! The validator covers the subset of JSON Schema those files use: `type`, `const`,
//! `enum`, `required`, `properties`, `additionalProperties`, `items`, `maxItems`,
//! `minimum`, `maximum`, `pattern`, `anyOf`, `oneOf` and local `$ref` into `$defs`.
//! Annotations (`description`, `default`, `title`, `format`, `examples`) are ignored.

use serde_json::Value;

fn validate(schema: &Value, root: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.strip_prefix("#/$defs/").expect("local refs only");
        let target = &root["$defs"][name];
        assert!(!target.is_null(), "{reference} is not in $defs");
        validate(target, root, value, at, errors);
    }
    if let Some(expected) = schema.get("const") {
        if value != expected {
            errors.push(format!("{at}: {value} is not {expected}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    if let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
        let failures = branch_errors(branches, root, value, at);
        if failures.iter().all(|f| !f.is_empty()) {
            errors.push(format!("{at}: {value} matches none of anyOf"));
            errors.extend(failures.into_iter().flatten());
        }
    }
    if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
        let failures = branch_errors(branches, root, value, at);
        let matched = failures.iter().filter(|f| f.is_empty()).count();
        if matched != 1 {
            errors.push(format!("{at}: {value} matches {matched} of oneOf, not 1"));
            if matched == 0 {
                errors.extend(failures.into_iter().flatten());
            }
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
    if let Some(v) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            if v < min {
                errors.push(format!("{at}: {v} < {min}"));
            }
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            if v > max {
                errors.push(format!("{at}: {v} > {max}"));
            }
        }
    }
    if let (Some(pattern), Some(text)) = (
        schema.get("pattern").and_then(Value::as_str),
        value.as_str(),
    ) {
        let regex = regex_lite::Regex::new(pattern).expect("a valid pattern in the schema");
        if !regex.is_match(text) {
            errors.push(format!("{at}: {value} does not match {pattern}"));
        }
    }
    if let Some(elements) = value.as_array() {
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
            if elements.len() as u64 > max {
                errors.push(format!("{at}: {} items, more than {max}", elements.len()));
            }
        }
        if let Some(items) = schema.get("items") {
            for (i, element) in elements.iter().enumerate() {
                validate(items, root, element, &format!("{at}[{i}]"), errors);
            }
        }
        return;
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

/// Each branch's errors for `value`, in order (empty for a branch that matches).
fn branch_errors(branches: &[Value], root: &Value, value: &Value, at: &str) -> Vec<Vec<String>> {
    branches
        .iter()
        .map(|branch| {
            let mut errors = Vec::new();
            validate(branch, root, value, at, &mut errors);
            errors
        })
        .collect()
}

/// The committed schema at `path` (relative to the crate root).
pub fn load(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every way `value` departs from `schema`; empty when it validates.
pub fn errors_against(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    validate(schema, schema, value, "$", &mut errors);
    errors
}

/// Every way `report` departs from the committed report schema; empty when it validates.
pub fn errors_of(report: &Value) -> Vec<String> {
    errors_against(&load("schema/report.schema.json"), report)
}
