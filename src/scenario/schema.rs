//! The JSON Schema of scenario files, generated from the serde model in `raw`, so that
//! it cannot describe a file the loader would read differently. `wsoak schema scenario`
//! prints it, and `schema/scenario.schema.json` is a committed copy that a test keeps
//! equal to it. Editors (yaml-language-server) use it for completion, hover text and
//! validation while a scenario is written.
//!
//! It describes the file's shape and each value's form; the checks that need more than
//! one value (`timeout` at most `interval`, a step's `reject` needing `expect`, …) stay
//! `compile`'s, and `wsoak check` reports them.

use serde_json::Value;

use super::raw::RawScenario;

/// The scenario schema (JSON Schema draft 2020-12), as a JSON value.
pub fn scenario_schema() -> Value {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<RawScenario>();
    let mut value = schema.to_value();
    if let Value::Object(root) = &mut value {
        root.insert("$id".into(), "wsoak.scenario/1".into());
    }
    drop_null_defaults(&mut value);
    value
}

/// Removes `"default": null`: an optional key left out is not a key set to null, and
/// its description says what leaving it out means (often not "nothing": a reconnect's
/// delay defaults to the heartbeat interval).
fn drop_null_defaults(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            map.values_mut().for_each(drop_null_defaults);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null_defaults),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_limits_have_the_ranges_the_loader_enforces() {
        let schema = scenario_schema();
        let limits = &schema["$defs"]["Limits"]["properties"];
        for (name, floor, ceiling, _) in crate::script::LIMIT_RANGES {
            assert_eq!(limits[name]["minimum"], floor, "{name}");
            assert_eq!(limits[name]["maximum"], ceiling, "{name}");
        }
    }

    #[test]
    fn unknown_keys_are_refused_everywhere_serde_refuses_them() {
        let schema = scenario_schema();
        assert_eq!(schema["additionalProperties"], false);
        for (name, def) in schema["$defs"].as_object().unwrap() {
            if def.get("properties").is_some() {
                assert_eq!(def["additionalProperties"], false, "{name}");
            }
        }
        assert_eq!(schema["required"], serde_json::json!(["heartbeat"]));
    }
}
