//! Reply matchers: which incoming JSON message a step is waiting for.
//!
//! A matcher is a set of field predicates, all of which must hold: `{msgType: auth_ack,
//! code: "200", success: true}`. A key may be a dotted path into nested objects
//! (`data.code`). Equality is loose between strings and numbers, as the article's
//! JavaScript `==` is: `"200"` matches `200`. Booleans and null compare strictly.
//!
//! In the heartbeat's `expect`, one field may be `"{{ heartbeat.seq }}"`: that field must
//! hold a number (or a numeric string), and it tells which heartbeat the ack answers.

use serde_json::Value;

use super::template::HEARTBEAT_SEQ;

/// A compiled set of field predicates.
#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    fields: Vec<(Vec<String>, Value)>,
    /// The path of the field that echoes `{{ heartbeat.seq }}`, when there is one.
    seq: Option<Vec<String>>,
}

impl Matcher {
    /// Compiles a mapping of field (or dotted path) to expected scalar value.
    pub fn compile(spec: &serde_json::Map<String, Value>) -> Result<Matcher, String> {
        if spec.is_empty() {
            return Err("a matcher needs at least one field".into());
        }
        let mut fields = Vec::with_capacity(spec.len());
        let mut seq = None;
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
            if expected.as_str().map(str::trim) == Some(HEARTBEAT_SEQ) {
                if seq.is_some() {
                    return Err(format!("only one field may hold `{HEARTBEAT_SEQ}`"));
                }
                seq = Some(path);
                continue;
            }
            if expected.as_str().is_some_and(|s| s.contains("{{")) {
                return Err(format!(
                    "`{key}`: an expected value can be `{HEARTBEAT_SEQ}` (in the heartbeat) \
                     but no other placeholder"
                ));
            }
            fields.push((path, expected.clone()));
        }
        Ok(Matcher { fields, seq })
    }

    /// Whether this matcher reads a heartbeat sequence number from replies.
    pub fn has_seq(&self) -> bool {
        self.seq.is_some()
    }

    /// The sequence number a matching reply echoes, when the matcher reads one. A reply
    /// without a whole, non-negative number there does not match.
    pub fn seq_of(&self, message: &Value) -> Option<u64> {
        let value = lookup(message, self.seq.as_ref()?)?;
        match value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Whether a parsed message satisfies every predicate (and, when the matcher reads a
    /// sequence number, carries one).
    pub fn matches(&self, message: &Value) -> bool {
        let fields = self
            .fields
            .iter()
            .all(|(path, expected)| lookup(message, path).is_some_and(|at| loose_eq(at, expected)));
        fields && (self.seq.is_none() || self.seq_of(message).is_some())
    }
}

fn lookup<'v>(message: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut at = message;
    for key in path {
        at = at.get(key)?;
    }
    Some(at)
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
    fn a_seq_field_is_read_not_compared() {
        let m = matcher(json!({"msgType": "heartBeat_ack", "seq": "{{ heartbeat.seq }}"}));
        assert!(m.has_seq());
        let ack = json!({"msgType": "heartBeat_ack", "seq": 17});
        assert!(m.matches(&ack));
        assert_eq!(m.seq_of(&ack), Some(17));
        assert_eq!(
            m.seq_of(&json!({"msgType": "heartBeat_ack", "seq": "18"})),
            Some(18)
        );
        assert!(!m.matches(&json!({"msgType": "heartBeat_ack"})));
        assert!(!m.matches(&json!({"msgType": "heartBeat_ack", "seq": "x"})));
        assert!(!m.matches(&json!({"msgType": "other", "seq": 1})));
        assert!(!matcher(json!({"msgType": "a"})).has_seq());
        let e = Matcher::compile(json!({"a": "{{ session.id }}"}).as_object().unwrap());
        assert!(e.unwrap_err().contains("no other placeholder"));
    }

    #[test]
    fn bad_specs_are_rejected() {
        assert!(Matcher::compile(json!({}).as_object().unwrap()).is_err());
        assert!(Matcher::compile(json!({"a": {"b": 1}}).as_object().unwrap()).is_err());
        assert!(Matcher::compile(json!({"a..b": 1}).as_object().unwrap()).is_err());
    }
}
