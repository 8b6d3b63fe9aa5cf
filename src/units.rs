//! Units that people write: durations such as `250ms`, `30s`, `5m`, `1h30m`, and
//! fractions such as `0.1` or `10%`. Shared by scenario files and CLI flags so that both
//! accept exactly the same spellings.

use std::time::Duration;

/// Parses a duration with a unit: `250ms`, `30s`, `5m`, `2h`, `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{text}` has no unit: write e.g. {text}ms or {text}s"
        ));
    }
    let duration = humantime::parse_duration(text).map_err(|e| {
        format!("`{text}` is not a duration ({e}): write e.g. 250ms, 30s, 5m or 1h")
    })?;
    if duration > MAX_DURATION {
        return Err(format!("`{text}` is longer than a year"));
    }
    Ok(duration)
}

/// The longest duration accepted anywhere: a year. Longer ones are typos, and clocks
/// overflow on far larger ones.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// The one reader of percentages: `25%` is 0.25. `None` when `text` has no `%` sign (it
/// is then not a percentage, but may be a plain number); an error when what precedes the
/// sign is not a finite number.
pub fn parse_percent(text: &str) -> Option<Result<f64, String>> {
    let text = text.trim();
    let number = text.strip_suffix('%')?;
    Some(match number.trim().parse::<f64>() {
        Ok(p) if p.is_finite() => Ok(p / 100.0),
        Ok(_) => Err(format!("`{text}` is not a finite number")),
        Err(_) => Err(format!("`{text}` is not a percentage: write e.g. 99.9%")),
    })
}

/// A fraction written as `0.25` or `25%`, any finite value.
pub fn parse_ratio(text: &str) -> Result<f64, String> {
    let text = text.trim();
    match parse_percent(text) {
        Some(value) => value,
        None => text
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("`{text}` is not a fraction: write e.g. 0.1 or 10%")),
    }
}

/// Parses a fraction in [0, 1], written as `0.25` or `25%`.
pub fn parse_fraction(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let value = parse_ratio(text)?;
    if !(0.0..=1.0).contains(&value) {
        return Err(format!("`{text}` is outside 0..1 (0% to 100%)"));
    }
    Ok(value)
}

/// Writes a duration compactly for people: `1.5s`, `250ms`, `2m`.
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
}

/// Writes a number for people with at most `decimals` decimals, trailing zeros dropped:
/// `12`, `0.142`, `99.9`.
pub fn format_number(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// Writes a fraction as a percentage: 0.999 is `99.9%`. Four decimals, so that a ratio
/// of counts short of 100% by one in a million does not read as 100%.
pub fn format_percent(fraction: f64) -> String {
    format!("{}%", format_number(fraction * 100.0, 4))
}

/// Serde support for `Option<Duration>` fields written as duration strings.
pub mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Deserialises an optional duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| super::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
    /// Writes an optional duration as a file would (the scenario schema's defaults).
    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        value.map(super::format_duration).serialize(s)
    }
}

/// Serde support for `Duration` fields written as duration strings.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Deserialises a duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
    /// Writes a duration as a file would (the scenario schema's defaults).
    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*value))
    }
}

/// Serde support for fractions written as `0.1` or `10%`.
pub mod fraction {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(f64),
        Text(String),
    }

    /// Deserialises a fraction.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let text = match Raw::deserialize(d)? {
            Raw::Number(n) => n.to_string(),
            Raw::Text(t) => t,
        };
        super::parse_fraction(&text).map_err(serde::de::Error::custom)
    }
    /// Writes a fraction as a number (the scenario schema's defaults).
    pub fn serialize<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(*value)
    }
}

/// The JSON Schema of a duration written with a unit, for `#[schemars(with = ...)]` on
/// fields read through [`duration`] or [`opt_duration`].
pub struct DurationText;

impl schemars::JsonSchema for DurationText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration with a unit: `250ms`, `30s`, `5m`, `2h`, `1h30m` (also \
                            `us` and `d`). A bare number is an error: write `30s`, not `30`.",
            "type": "string",
            // Numbers, each followed by a unit; the units themselves are humantime's to judge.
            "pattern": DURATION_PATTERN,
            "examples": ["250ms", "30s", "5m", "1h30m"]
        })
    }
}

/// What a duration looks like in the scenario schema: numbers, each with a unit.
pub const DURATION_PATTERN: &str = r"^\s*([0-9]+\s*[a-zA-Zµ]+\s*)+$";

/// The JSON Schema of a fraction, for `#[schemars(with = ...)]` on fields read through
/// [`fraction`]: a number in 0..1, or a percentage string.
pub struct FractionText;

impl schemars::JsonSchema for FractionText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Fraction".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A fraction: a number from 0 to 1 (`0.25`) or a percentage from 0% \
                            to 100% (`25%`).",
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": 1},
                {"type": "string", "pattern": PERCENT_PATTERN}
            ]
        })
    }
}

/// What a percentage from 0% to 100% looks like in the scenario schema.
pub const PERCENT_PATTERN: &str = r"^\s*(100(\.0+)?|[0-9]{1,2}(\.[0-9]+)?)\s*%\s*$";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_drop_trailing_zeros() {
        assert_eq!(format_number(12.0, 3), "12");
        assert_eq!(format_number(0.1420004, 3), "0.142");
        assert_eq!(format_number(1500.5, 3), "1500.5");
        assert_eq!(format_number(-0.0001, 3), "0");
        assert_eq!(format_number(40.0, 0), "40");
        assert_eq!(format_percent(0.999), "99.9%");
        assert_eq!(format_percent(0.999999), "99.9999%");
        assert_eq!(format_percent(1.0), "100%");
        assert_eq!(format_percent(0.001), "0.1%");
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("5x").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn one_reader_of_percentages() {
        assert_eq!(parse_percent("99.9%").unwrap().unwrap(), 99.9 / 100.0);
        assert_eq!(parse_percent(" 150 % ").unwrap().unwrap(), 1.5);
        assert!(parse_percent("0.5").is_none());
        assert!(parse_percent("x%")
            .unwrap()
            .unwrap_err()
            .contains("not a percentage"));
        assert!(parse_percent("inf%")
            .unwrap()
            .unwrap_err()
            .contains("not a finite"));
        assert_eq!(parse_ratio("25%").unwrap(), 0.25);
        assert_eq!(parse_ratio("2.5").unwrap(), 2.5);
        assert!(parse_ratio("NaN").is_err());
    }

    #[test]
    fn fractions_accept_percent() {
        assert_eq!(parse_fraction("25%").unwrap(), 0.25);
        assert_eq!(parse_fraction("0.5").unwrap(), 0.5);
        assert!(parse_fraction("150%").is_err());
        assert!(parse_fraction("x").is_err());
    }
}
