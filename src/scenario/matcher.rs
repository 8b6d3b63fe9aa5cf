//! Reply matchers: which incoming JSON message a step is waiting for.
//!
//! A matcher is a set of field predicates, all of which must hold: `{msgType: auth_ack,
//! code: "200", success: true}`. A key may be a dotted path into nested objects
//! (`data.code`). Equality is loose between strings and numbers, as the article's
//! JavaScript `==` is: `"200"` matches `200`. Booleans and null compare strictly.
//!
//! In the heartbeat's `expect`, one field may be `"{{ heartbeat.seq }}"`: that field must
//! hold a number (or a numeric string), and it tells which heartbeat the ack answers.
//!
//! A matcher judges a parsed [`Value`] ([`Matcher::matches`], [`Matcher::seq_of`]), or reads
//! the reply's text directly ([`Matcher::read`]): the same verdict, without building a
//! `Value`, for the heartbeat's acks, which arrive once per heartbeat per session.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

use super::template::HEARTBEAT_SEQ;

/// A compiled set of field predicates.
#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    fields: Vec<(Vec<String>, Value)>,
    /// The path of the field that echoes `{{ heartbeat.seq }}`, when there is one.
    seq: Option<Vec<String>>,
    /// The paths as a tree, for [`Matcher::read`]; node 0 is the message itself.
    tree: Vec<Node>,
}

/// One key of the matcher's paths, for reading a reply without building it.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    /// The key (empty for the message itself).
    key: String,
    /// The nodes of the keys below this one.
    children: Vec<usize>,
    /// The fields whose path ends here, by index in `fields`.
    ends: Vec<usize>,
    /// Whether the sequence number's path ends here.
    seq_ends: bool,
    /// The fields whose path passes through or ends here, as bits by index.
    below: u64,
    /// Whether the sequence number's path passes through or ends here.
    seq_below: bool,
}

/// What [`Matcher::read`] found in a reply: exactly what [`Matcher::matches`] and
/// [`Matcher::seq_of`] say of the parsed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Whether every predicate holds (and the sequence number, when read, is there).
    pub matches: bool,
    /// The sequence number the reply echoes, when the matcher reads one.
    pub seq: Option<u64>,
}

/// Most fields [`Matcher::read`] tracks (one bit each); a matcher with more reads
/// replies by parsing them.
const MAX_READ_FIELDS: usize = 64;

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
        let tree = tree(&fields, seq.as_deref());
        Ok(Matcher { fields, seq, tree })
    }

    /// Whether this matcher reads a heartbeat sequence number from replies.
    pub fn has_seq(&self) -> bool {
        self.seq.is_some()
    }

    /// The sequence number a matching reply echoes, when the matcher reads one. A reply
    /// without a whole, non-negative number there does not match.
    pub fn seq_of(&self, message: &Value) -> Option<u64> {
        seq_in(scalar(lookup(message, self.seq.as_ref()?)?))
    }

    /// Whether a parsed message satisfies every predicate (and, when the matcher reads a
    /// sequence number, carries one).
    pub fn matches(&self, message: &Value) -> bool {
        let fields = self.fields.iter().all(|(path, expected)| {
            lookup(message, path).is_some_and(|at| loose_eq(scalar(at), expected))
        });
        fields && (self.seq.is_none() || self.seq_of(message).is_some())
    }

    /// Reads a reply's JSON text: `Ok` with exactly what [`Matcher::matches`] and
    /// [`Matcher::seq_of`] say of `serde_json::from_slice::<Value>(json)` when that
    /// parses, the same failure when it does not. Only the fields the matcher names are
    /// looked at; nothing is allocated for the others (nor, mostly, for them).
    pub fn read(&self, json: &[u8]) -> Result<Reading, serde_json::Error> {
        if self.fields.len() > MAX_READ_FIELDS {
            let value: Value = serde_json::from_slice(json)?;
            return Ok(Reading {
                matches: self.matches(&value),
                seq: self.seq_of(&value),
            });
        }
        let mut found = Found::default();
        let mut de = serde_json::Deserializer::from_slice(json);
        Walk {
            matcher: self,
            node: 0,
            found: &mut found,
        }
        .deserialize(&mut de)?;
        de.end()?;
        let all = if self.fields.len() == MAX_READ_FIELDS {
            u64::MAX
        } else {
            (1u64 << self.fields.len()) - 1
        };
        let seq = found.seq.filter(|_| self.seq.is_some());
        Ok(Reading {
            matches: found.held == all && (self.seq.is_none() || seq.is_some()),
            seq,
        })
    }
}

/// The matcher's paths as a tree of keys, node 0 the message itself.
fn tree(fields: &[(Vec<String>, Value)], seq: Option<&[String]>) -> Vec<Node> {
    let mut tree = vec![Node {
        key: String::new(),
        children: Vec::new(),
        ends: Vec::new(),
        seq_ends: false,
        below: 0,
        seq_below: false,
    }];
    let paths = fields
        .iter()
        .enumerate()
        .map(|(i, (path, _))| (Some(i), path.as_slice()))
        .chain(seq.map(|path| (None, path)));
    for (field, path) in paths {
        let mut at = 0;
        for key in path {
            let child = tree[at]
                .children
                .iter()
                .copied()
                .find(|&c| tree[c].key == *key);
            at = match child {
                Some(c) => c,
                None => {
                    tree.push(Node {
                        key: key.clone(),
                        children: Vec::new(),
                        ends: Vec::new(),
                        seq_ends: false,
                        below: 0,
                        seq_below: false,
                    });
                    let c = tree.len() - 1;
                    tree[at].children.push(c);
                    c
                }
            };
            match field {
                Some(i) if i < MAX_READ_FIELDS => tree[at].below |= 1 << i,
                Some(_) => {}
                None => tree[at].seq_below = true,
            }
        }
        match field {
            Some(i) => tree[at].ends.push(i),
            None => tree[at].seq_ends = true,
        }
    }
    tree
}

fn lookup<'v>(message: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut at = message;
    for key in path {
        at = at.get(key)?;
    }
    Some(at)
}

/// A value as the predicates see it: a scalar, or something they never equal.
#[derive(Debug, Clone, Copy)]
enum Scalar<'a> {
    Null,
    Bool(bool),
    Number(&'a Number),
    String(&'a str),
    /// An object or an array.
    Compound,
}

fn scalar(value: &Value) -> Scalar<'_> {
    match value {
        Value::Null => Scalar::Null,
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => Scalar::Number(n),
        Value::String(s) => Scalar::String(s),
        Value::Array(_) | Value::Object(_) => Scalar::Compound,
    }
}

/// The sequence number a field holds: a whole, non-negative number, or a string of one.
fn seq_in(value: Scalar<'_>) -> Option<u64> {
    match value {
        Scalar::Number(n) => n.as_u64(),
        Scalar::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// JavaScript-like `==` for the cases scenario authors meet: numbers and numeric strings
/// compare by value; everything else compares strictly. `expected` is a scalar.
fn loose_eq(actual: Scalar<'_>, expected: &Value) -> bool {
    let by_value = |text: &str, number: &Number| match (text.trim().parse::<f64>(), number.as_f64())
    {
        (Ok(a), Some(e)) => a == e,
        _ => false,
    };
    match (actual, expected) {
        (Scalar::String(a), Value::Number(e)) => by_value(a, e),
        (Scalar::Number(a), Value::String(e)) => by_value(e, a),
        (Scalar::Number(a), Value::Number(e)) => a.as_f64() == e.as_f64(),
        (Scalar::String(a), Value::String(e)) => a == e,
        (Scalar::Bool(a), Value::Bool(e)) => a == *e,
        (Scalar::Null, Value::Null) => true,
        _ => false,
    }
}

/// What a [`Walk`] found so far.
#[derive(Debug, Default)]
struct Found {
    /// The fields whose predicate holds, as bits by index.
    held: u64,
    /// The sequence number, when its field holds one.
    seq: Option<u64>,
}

/// Reads one value of a reply at a node of the matcher's tree: judges the fields whose
/// path ends there, and walks on into the keys below it when it is an object. Every
/// other value is skipped, but parsed as strictly as `Value` parses it.
struct Walk<'a> {
    matcher: &'a Matcher,
    node: usize,
    found: &'a mut Found,
}

impl Walk<'_> {
    /// Judges the fields whose path ends at this node against its value.
    fn judge(&mut self, value: Scalar<'_>) {
        let node = &self.matcher.tree[self.node];
        for &i in &node.ends {
            if i < MAX_READ_FIELDS && loose_eq(value, &self.matcher.fields[i].1) {
                self.found.held |= 1 << i;
            }
        }
        if node.seq_ends {
            self.found.seq = seq_in(value);
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(mut self, v: bool) -> Result<(), E> {
        self.judge(Scalar::Bool(v));
        Ok(())
    }

    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<(), E> {
        self.judge(Scalar::Number(&Number::from(v)));
        Ok(())
    }

    fn visit_u64<E: de::Error>(mut self, v: u64) -> Result<(), E> {
        self.judge(Scalar::Number(&Number::from(v)));
        Ok(())
    }

    fn visit_f64<E: de::Error>(mut self, v: f64) -> Result<(), E> {
        // As `Value` keeps it: a number that is not finite becomes null.
        match Number::from_f64(v) {
            Some(n) => self.judge(Scalar::Number(&n)),
            None => self.judge(Scalar::Null),
        }
        Ok(())
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<(), E> {
        self.judge(Scalar::String(v));
        Ok(())
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<(), E> {
        self.judge(Scalar::Null);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.judge(Scalar::Compound);
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.judge(Scalar::Compound);
        let (matcher, node) = (self.matcher, &self.matcher.tree[self.node]);
        while let Some(child) = map.next_key_seed(Key { matcher, node })? {
            match child {
                Some(c) => {
                    // A repeated key replaces the earlier value, as in `Value`: what was
                    // found under the earlier one no longer holds.
                    let below = &matcher.tree[c];
                    self.found.held &= !below.below;
                    if below.seq_below {
                        self.found.seq = None;
                    }
                    map.next_value_seed(Walk {
                        matcher,
                        node: c,
                        found: self.found,
                    })?;
                }
                None => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(())
    }
}

/// Reads an object's key: which child of `node` it names, if any.
struct Key<'a> {
    matcher: &'a Matcher,
    node: &'a Node,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        let tree = &self.matcher.tree;
        Ok(self
            .node
            .children
            .iter()
            .copied()
            .find(|&c| tree[c].key == v))
    }
}

/// A value (or key) that is not looked at, parsed as strictly as `Value` parses it
/// (numbers out of range and invalid UTF-8 are errors), kept nowhere.
struct Skip;

impl<'de> de::Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Skip, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_key::<Skip>()?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok(Skip)
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

    /// `read` says of the text exactly what `matches` and `seq_of` say of its `Value`,
    /// and fails exactly where parsing it into a `Value` fails.
    fn assert_reads_as_parsed(m: &Matcher, text: &[u8]) -> Option<Reading> {
        let parsed = serde_json::from_slice::<Value>(text).map(|v| Reading {
            matches: m.matches(&v),
            seq: m.seq_of(&v),
        });
        let read = m.read(text);
        assert_eq!(
            read.as_ref().ok(),
            parsed.as_ref().ok(),
            "{m:?} on {:?}: read {read:?}, parsed {parsed:?}",
            String::from_utf8_lossy(text)
        );
        read.ok()
    }

    #[test]
    fn reading_the_text_agrees_with_the_parsed_value() {
        let matchers = [
            json!({"msgType": "heartBeat_ack"}),
            json!({"msgType": "heartBeat_ack", "seq": "{{ heartbeat.seq }}"}),
            json!({"code": "200", "success": true, "msgType": "auth_ack"}),
            json!({"data.code": 0, "data.ok": null, "n": 2.5}),
            json!({"a": 1, "a.b": 2}),
            json!({"data.seq": "{{ heartbeat.seq }}", "data.kind": "ack"}),
        ]
        .map(matcher);
        let texts: &[&[u8]] = &[
            br#"{"msgType":"heartBeat_ack"}"#,
            br#" {"x": [1, {"msgType": "no"}], "msgType" : "heartBeat_ack" } "#,
            br#"{"msgType":"heartBeat_ack","seq":17}"#,
            br#"{"msgType":"heartBeat_ack","seq":" 18 "}"#,
            br#"{"msgType":"heartBeat_ack","seq":-1}"#,
            br#"{"msgType":"heartBeat_ack","seq":17.0}"#,
            br#"{"msgType":"heartBeat_ack","seq":"x"}"#,
            br#"{"msgType":"heartBeat_ack","seq":17,"seq":null}"#,
            br#"{"msgType":"heart\u0042eat_ack","s\u0065q":"1\u0039"}"#,
            br#"{"msgType":"heartBeat_ack","msgType":"other"}"#,
            br#"{"msgType":"other","msgType":"heartBeat_ack"}"#,
            br#"{"msgType":["heartBeat_ack"]}"#,
            br#"{"msgType":{"msgType":"heartBeat_ack"}}"#,
            br#"["msgType","heartBeat_ack"]"#,
            br#""heartBeat_ack""#,
            br#"null"#,
            br#"{"code":200,"success":true,"msgType":"auth_ack"}"#,
            br#"{"code":"200.0 ","success":true,"msgType":"auth_ack"}"#,
            br#"{"code":2e2,"success":true,"msgType":"auth_ack"}"#,
            br#"{"code":"2e2","success":"true","msgType":"auth_ack"}"#,
            br#"{"code":"0x200","success":true,"msgType":"auth_ack"}"#,
            br#"{"data":{"code":"0","ok":null},"n":"2.5"}"#,
            br#"{"data":{"code":-0,"ok":null},"n":2.50}"#,
            br#"{"data":{"code":0,"ok":null},"data":{"code":0},"n":2.5}"#,
            br#"{"data":{"code":0},"data":{"code":0,"ok":null},"n":2.5}"#,
            br#"{"data":{"code":0,"ok":false},"n":2.5}"#,
            br#"{"data":[{"code":0,"ok":null}],"n":2.5}"#,
            br#"{"a":1}"#,
            br#"{"a":{"b":2}}"#,
            br#"{"data":{"seq":3,"kind":"ack"}}"#,
            br#"{"data":{"seq":3,"kind":"ack"},"data":{"kind":"ack"}}"#,
            br#"{"data":{"seq":3,"kind":"ack","seq":4}}"#,
            // Not JSON, or not a `Value`: each fails in both.
            br#"{"msgType":"heartBeat_ack"} x"#,
            br#"{"msgType":"heartBeat_ack""#,
            br#"{"msgType":"heartBeat_ack","n":1e400}"#,
            br#"{"msgType":"heartBeat_ack","n":[1,]}"#,
            br#"{"msgType":"heartBeat_ack",}"#,
            b"{\"msgType\":\"heartBeat_ack\",\"n\":\"\xff\"}",
            b"{\"msgType\":\"heartBeat_ack\",\"\xc3\":1}",
            br#"{msgType:"heartBeat_ack"}"#,
            b"",
        ];
        let mut outcomes = [0; 3]; // failed, read and not matched, matched
        for m in &matchers {
            for text in texts {
                match assert_reads_as_parsed(m, text) {
                    None => outcomes[0] += 1,
                    Some(r) => outcomes[1 + usize::from(r.matches)] += 1,
                }
            }
        }
        // Nested too deep for either: serde_json's recursion limit, the same in both.
        let deep = format!(
            "{{\"msgType\":\"heartBeat_ack\",\"x\":{}1{}}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(assert_reads_as_parsed(&matchers[0], deep.as_bytes()).is_none());
        let fine = format!(
            "{{\"msgType\":\"heartBeat_ack\",\"x\":{}1{}}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(assert_reads_as_parsed(&matchers[0], fine.as_bytes()).is_some_and(|r| r.matches));
        // Every case is exercised: the corpus is not all failures or all misses.
        assert_eq!(outcomes, [54, 172, 20]);
        let m = &matchers[1];
        assert_eq!(
            m.read(br#"{"msgType":"heartBeat_ack","seq":" 18 "}"#)
                .unwrap(),
            Reading {
                matches: true,
                seq: Some(18)
            }
        );
        assert_eq!(
            m.read(br#"{"msgType":"heartBeat_ack","seq":17,"seq":null}"#)
                .unwrap(),
            Reading {
                matches: false,
                seq: None
            }
        );
    }
}
