//! Reply matchers: which incoming JSON message a step is waiting for.
//!
//! A matcher is a set of field predicates, all of which must hold: `{msgType: auth_ack,
//! code: "200", success: true}`. A key may be a dotted path into nested objects
//! (`data.code`). Equality is loose between strings and numbers, as the article's
//! JavaScript `==` is: `"200"` matches `200`. Booleans and null compare strictly.

use serde_json::Value;

/// A compiled set of field predicates.
#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    fields: Vec<(Vec<String>, Value)>,
}

impl Matcher {
    /// Compiles a mapping of field (or dotted path) to expected scalar value.
    pub fn compile(spec: &serde_json::Map<String, Value>) -> Result<Matcher, String> {
        if spec.is_empty() {
            return Err("a matcher needs at least one field".into());
        }
        let mut fields = Vec::with_capacity(spec.len());
        for (key, expected) in spec {
            if matches!(expected, Value::Object(_) | Value::Array(_)) {
                return Err(format!(
                    "`{key}`: expected values are scalars (string, number, bool or null); \
                     use a dotted path such as `{key}.field` for nested fields"
                ));
            }
            let path: Vec<String> = key.split('.').map(str::to_owned).collect();
            if path.iter().any(String::is_empty) {
                return Err(format!("`{key}` is not a valid field path"));
            }
            fields.push((path, expected.clone()));
        }
        Ok(Matcher { fields })
    }

    /// Whether a parsed message satisfies every predicate.
    pub fn matches(&self, message: &Value) -> bool {
        self.fields.iter().all(|(path, expected)| {
            let mut at = message;
            for key in path {
                match at.get(key) {
                    Some(next) => at = next,
                    None => return false,
                }
            }
            loose_eq(at, expected)
        })
    }
}

/// JavaScript-like `==` for the cases scenario authors meet: numbers and numeric strings
/// compare by value; everything else compares strictly.
fn loose_eq(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::String(a), Value::Number(e)) | (Value::Number(e), Value::String(a)) => {
            match (a.trim().parse::<f64>(), e.as_f64()) {
                (Ok(a), Some(e)) => a == e,
                _ => false,
            }
        }
        (Value::Number(a), Value::Number(e)) => a.as_f64() == e.as_f64(),
        _ => actual == expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matcher(v: Value) -> Matcher {
        Matcher::compile(v.as_object().unwrap()).unwrap()
    }

    #[test]
    fn article_auth_ack_matches_loosely() {
        let m = matcher(json!({"code": "200", "success": true, "msgType": "auth_ack"}));
        assert!(m.matches(&json!({"code": "200", "success": true, "msgType": "auth_ack", "x": 1})));
        assert!(m.matches(&json!({"code": 200, "success": true, "msgType": "auth_ack"})));
        assert!(!m.matches(&json!({"code": "401", "success": false, "msgType": "auth_ack"})));
        assert!(!m.matches(&json!({"code": "200", "success": "true", "msgType": "auth_ack"})));
        assert!(!m.matches(&json!({"code": "200", "msgType": "auth_ack"})));
        assert!(!m.matches(&json!([1, 2])));
    }

    #[test]
    fn dotted_paths_reach_nested_fields() {
        let m = matcher(json!({"data.code": 0}));
        assert!(m.matches(&json!({"data": {"code": "0"}})));
        assert!(!m.matches(&json!({"data": 0})));
    }

    #[test]
    fn bad_specs_are_rejected() {
        assert!(Matcher::compile(json!({}).as_object().unwrap()).is_err());
        assert!(Matcher::compile(json!({"a": {"b": 1}}).as_object().unwrap()).is_err());
        assert!(Matcher::compile(json!({"a..b": 1}).as_object().unwrap()).is_err());
    }
}
