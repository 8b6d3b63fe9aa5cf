//! The committed JSON Schema (`schema/report.schema.json`) as a check any test can run
//! on a report it produced.
//!
//! The validator covers the subset of JSON Schema the file uses: `type`, `const`,
//! `required`, `properties`, `additionalProperties`, `items`, `maxItems`, `minimum` and
//! local `$ref`.

use serde_json::Value;

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

pub fn schema() -> Value {
    serde_json::from_str(&std::fs::read_to_string("schema/report.schema.json").unwrap()).unwrap()
}

/// Every way `report` departs from the committed schema; empty when it validates.
pub fn errors_of(report: &Value) -> Vec<String> {
    let schema = schema();
    let mut errors = Vec::new();
    validate(&schema, &schema, report, "$", &mut errors);
    errors
}
