//! Errors found while reading a YAML file into the raw model (serde's errors): placed at
//! the offending key, named by its key path (`heartbeat.interval`), and worded for people
//! (`a whole number`, not `u32`). It turns errors into words and places; it must not
//! judge values (that is `compile`'s job).
//!
//! serde_yaml places a type error at the value, a missing key at the mapping, and an
//! error from our `units` readers at the start of the enclosing mapping, without naming
//! the key. serde_path_to_error gives the key path of every error, and `locate` finds
//! that key's own line and column.

use serde::de::DeserializeOwned;

use super::error::ScenarioError;
use super::locate::{locate_exact, shown_path};

/// Reads `text` into `T`; an error names the file as `shown`, and the key's place, path
/// and what to write instead.
pub(super) fn from_yaml<T: DeserializeOwned>(text: &str, shown: &str) -> Result<T, ScenarioError> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| placed(text, shown, &e))
}

/// The error `e` at its key's place, with the key path and words for people.
fn placed(
    text: &str,
    shown: &str,
    e: &serde_path_to_error::Error<serde_yaml::Error>,
) -> ScenarioError {
    let mut path: Vec<String> = Vec::new();
    for segment in e.path().iter() {
        match segment {
            serde_path_to_error::Segment::Map { key } => path.push(key.clone()),
            serde_path_to_error::Segment::Seq { index } => path.push(format!("[{index}]")),
            serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => {}
        }
    }
    let inner = e.inner();
    let mut path: Vec<&str> = path.iter().map(String::as_str).collect();
    let message = strip_location(&inner.to_string());
    let message = without_path(&message, &path);
    if message.starts_with("unknown field") {
        // The path ends at the unknown key, which the message names: say the mapping's.
        path.pop();
    }
    let serde_place = inner.location().map(|l| (l.line(), l.column()));
    // An unknown key is an error of the mapping that holds it, and serde_yaml already
    // points at the key itself; every other error belongs to the key at the end of the
    // path, whose own line and column `locate` finds (in block style; in a flow mapping
    // serde_yaml's place is the better one).
    let place = if message.starts_with("unknown field") || path.is_empty() {
        serde_place
    } else {
        locate_exact(text, &path).or(serde_place)
    };
    let message = in_words(message);
    let message = if path.is_empty() {
        message
    } else {
        format!("{}: {message}", shown_path(&path))
    };
    match place {
        Some((line, column)) => ScenarioError::At {
            path: shown.to_owned(),
            line,
            column,
            message,
        },
        None => ScenarioError::Invalid {
            path: shown.to_owned(),
            message,
        },
    }
}

/// serde_yaml starts a message with the path of the mapping it was reading (`heartbeat:
/// `); we write the whole key path ourselves.
fn without_path<'m>(message: &'m str, path: &[&str]) -> &'m str {
    (1..=path.len())
        .rev()
        .find_map(|depth| {
            message
                .strip_prefix(&shown_path(&path[..depth]))
                .and_then(|rest| rest.strip_prefix(": "))
        })
        .unwrap_or(message)
}

/// serde_yaml appends " at line L column C" to its messages; we print the place first.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// serde's message in the words of a scenario writer: what to write instead, in the
/// file's terms (a whole number, a list, a mapping), rather than Rust's.
fn in_words(message: &str) -> String {
    let found_expected = |rest: &str| {
        let (found, expected) = rest.split_once(", expected ")?;
        Some((found.to_owned(), expected.to_owned()))
    };
    if let Some((found, expected)) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(found_expected)
    {
        // A whole number out of range (a negative one, say) is told the range.
        let expected = match range_of(&expected) {
            Some(range) if found.starts_with("integer ") => {
                format!("{} {range}", expected_words(&expected))
            }
            _ => expected_words(&expected),
        };
        return format!("must be {expected}, not {}", found_words(&found));
    }
    if let Some((variant, expected)) = message
        .strip_prefix("unknown variant ")
        .and_then(|rest| rest.split_once(", expected "))
    {
        let expected = expected.strip_prefix("one of ").unwrap_or(expected);
        return format!("must be {expected}, not {variant}");
    }
    if let Some(key) = message.strip_prefix("missing field ") {
        return format!("needs the key {key}");
    }
    if let Some(name) = message.strip_prefix("data did not match any variant of untagged enum ") {
        return match name {
            "RawThreshold" => "must be a check such as `heartbeat.p99 < 200ms`, or a mapping \
                               with `check` (and optionally `abort_on_fail` and `delay`)"
                .into(),
            "RawScript" => "must be the path of a .rhai file, or a mapping with `file`, \
                            `on_error` and `limits`"
                .into(),
            _ => format!("is not any of the forms a {name} takes"),
        };
    }
    message.to_owned()
}

/// What serde expected, as a scenario writer says it.
fn expected_words(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64" | "i128"
        | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a string" | "string" => "text".into(),
        "a boolean" => "true or false".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping".into(),
        "a borrowed string" => "text".into(),
        _ if expected.starts_with("struct ") || expected.starts_with("a map") => "a mapping".into(),
        other => other.into(),
    }
}

/// The range of a whole-number type, for a value outside it.
fn range_of(expected: &str) -> Option<&'static str> {
    Some(match expected {
        "u8" => "from 0 to 255",
        "u16" => "from 0 to 65535",
        "u32" => "from 0 to 4294967295",
        "u64" | "usize" => "from 0 to 18446744073709551615",
        _ => return None,
    })
}

/// What serde found, as a scenario writer sees it in the file.
fn found_words(found: &str) -> String {
    let quoted = |prefix: &str| {
        found
            .strip_prefix(prefix)
            .map(|v| v.trim_matches('`').to_owned())
    };
    if let Some(text) = found.strip_prefix("string ") {
        return format!("the text {text}");
    }
    for prefix in ["integer ", "floating point ", "boolean "] {
        if let Some(value) = quoted(prefix) {
            return value;
        }
    }
    match found {
        "sequence" => "a list".into(),
        "map" => "a mapping".into(),
        "unit value" => "empty".into(),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_words_become_scenario_words() {
        assert_eq!(
            in_words("invalid type: string \"lots\", expected u32"),
            "must be a whole number, not the text \"lots\""
        );
        assert_eq!(
            in_words("invalid value: integer `-1`, expected u32"),
            "must be a whole number from 0 to 4294967295, not -1"
        );
        assert_eq!(
            in_words("invalid type: integer `-3`, expected u32"),
            "must be a whole number from 0 to 4294967295, not -3"
        );
        assert_eq!(
            in_words("invalid type: sequence, expected a map"),
            "must be a mapping, not a list"
        );
        assert_eq!(
            in_words("invalid type: map, expected a sequence"),
            "must be a list, not a mapping"
        );
        assert_eq!(
            in_words("invalid type: unit value, expected struct RawHeartbeat"),
            "must be a mapping, not empty"
        );
        assert_eq!(
            in_words("invalid type: floating point `1.5`, expected u64"),
            "must be a whole number, not 1.5"
        );
        assert_eq!(
            in_words("invalid type: string \"x\", expected f64"),
            "must be a number, not the text \"x\""
        );
        assert_eq!(
            in_words("unknown variant `linear`, expected `fixed` or `exponential`"),
            "must be `fixed` or `exponential`, not `linear`"
        );
        assert_eq!(
            in_words("missing field `max_sessions`"),
            "needs the key `max_sessions`"
        );
        // Our own messages pass through.
        assert_eq!(
            in_words("`30` has no unit: write e.g. 30ms or 30s"),
            "`30` has no unit: write e.g. 30ms or 30s"
        );
    }
}
