//! Scenario files: the face of loading. [`load`] and [`parse`] (and [`parse_rhai`]) read
//! a YAML file, or a `.rhai` script whose `scenario()` returns the same settings, and
//! hand back an immutable [`Scenario`], shared by every shard; nothing in it is parsed
//! again during the run.
//!
//! The parts, one job each, and each imports only those below it (never this face):
//! `raw` (the serde model of the file, `deny_unknown_fields`, so a typo is an error),
//! `compile` (raw + [`Overrides`] → model: every value checked, templates and matchers
//! compiled, card data loaded), `model` (the compiled [`Scenario`] and its parts),
//! `schema` (the file's JSON Schema, generated from `raw`), `syntax` (serde's errors at
//! the offending key, in a scenario writer's words),
//! `target` ([`Target`], [`redact`]), `cards` (the CSV feeder), `locate` (key path →
//! line and column), `error` ([`ScenarioError`]), `template`, `matcher` and [`input`]
//! (capped, regular-file reads).
//!
//! This module must not do network I/O or start anything, and must not import the
//! report or the server: thresholds and faults are shared vocabulary
//! ([`crate::threshold`], [`crate::faults`]).

mod cards;
mod compile;
mod error;
pub mod input;
mod locate;
mod matcher;
mod model;
mod raw;
mod schema;
mod syntax;
mod target;
mod template;

use std::path::Path;

pub use cards::Cards;
pub use compile::Overrides;
pub use error::ScenarioError;
pub use matcher::{Matcher, Reading};
pub use model::{Backoff, Connect, Heartbeat, Reconnect, Scenario, Step};
pub use schema::scenario_schema;
pub use target::{redact, Target, TargetUrl};
pub use template::{Template, Vars};

use crate::script::{Limits, OnError, Script};
use compile::compile;
use locate::{locate, shown_path};
use raw::{RawScenario, RawScript, RawScriptFull};

/// Reads, parses, compiles and validates a scenario file (YAML, or a `.rhai` script whose
/// `scenario()` returns the same settings), then applies `overrides`.
///
/// Only a regular file of at most [`input::SCENARIO_MAX_BYTES`] is read. Parsing runs on
/// a thread with the script stack ([`crate::script::on_script_stack`]): a `.rhai`
/// scenario's `scenario()` runs while loading.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Scenario, ScenarioError> {
    let read_error = |source| ScenarioError::Read {
        path: path.display().to_string(),
        source,
    };
    let text = input::read_text_capped(path, input::SCENARIO_MAX_BYTES).map_err(read_error)?;
    crate::script::on_script_stack(|| {
        if path.extension().is_some_and(|e| e == "rhai") {
            parse_rhai(&text, path, overrides)
        } else {
            parse(&text, path, overrides)
        }
    })
    .map_err(read_error)?
}

/// Refuses text past the size cap, for scenarios parsed from memory.
fn check_size(text: &str, shown: &str) -> Result<(), ScenarioError> {
    if text.len() as u64 > input::SCENARIO_MAX_BYTES {
        return Err(ScenarioError::Invalid {
            path: shown.to_owned(),
            message: format!(
                "is {} bytes, over the limit of {} ({} KiB)",
                text.len(),
                input::SCENARIO_MAX_BYTES,
                input::SCENARIO_MAX_BYTES / 1024
            ),
        });
    }
    Ok(())
}

/// The error for sandbox limits out of range, at `script.limits.<name>`.
fn limits_error(
    at: &dyn Fn(&[&str], String) -> ScenarioError,
    limits: Option<&Limits>,
) -> Result<(), ScenarioError> {
    match limits.map(Limits::validate) {
        Some(Err(e)) => Err(at(&["script", "limits", e.name], e.to_string())),
        _ => Ok(()),
    }
}

/// A `.rhai` scenario: `fn scenario()` returns the settings a YAML file would hold, and
/// the same file defines the hooks.
pub fn parse_rhai(
    text: &str,
    path: &Path,
    overrides: &Overrides,
) -> Result<Scenario, ScenarioError> {
    let shown = path.display().to_string();
    check_size(text, &shown)?;
    let compile_error = |e: crate::script::CompileError| match e.line {
        Some(line) => ScenarioError::At {
            path: shown.clone(),
            line,
            column: e.column.unwrap_or(1),
            message: e.message,
        },
        None => ScenarioError::Invalid {
            path: shown.clone(),
            message: e.message,
        },
    };
    let probe =
        Script::compile(text, Limits::default(), OnError::default()).map_err(compile_error)?;
    if !probe.defines("scenario") {
        return Err(ScenarioError::Invalid {
            path: shown,
            message: "a .rhai scenario defines `fn scenario()` returning its settings as a map \
                      (the same keys as a YAML scenario)"
                .into(),
        });
    }
    let settings = probe
        .call_plain("scenario")
        .map_err(|m| ScenarioError::Invalid {
            path: shown.clone(),
            message: format!("scenario(): {m}"),
        })?;
    let raw: RawScenario =
        rhai::serde::from_dynamic(&settings).map_err(|e| ScenarioError::Invalid {
            path: shown.clone(),
            message: format!("scenario(): {e}"),
        })?;
    let options = match &raw.script {
        None => RawScriptFull::default(),
        Some(RawScript::Full(full)) if full.file.is_none() => RawScriptFull {
            file: None,
            on_error: full.on_error,
            limits: full.limits,
        },
        Some(_) => {
            return Err(ScenarioError::Invalid {
                path: shown,
                message: "scenario(): a .rhai scenario is its own script: `script` may set \
                          `on_error` and `limits`, not a file"
                    .into(),
            })
        }
    };
    let at = |field: &[&str], message: String| ScenarioError::Invalid {
        path: shown.clone(),
        message: format!("scenario() → {}: {message}", field.join(".")),
    };
    limits_error(&at, options.limits.as_ref())?;
    let script = Script::compile(text, options.limits.unwrap_or_default(), options.on_error)
        .map_err(compile_error)?;
    compile(raw, path, overrides, &at, Some(script))
}

/// Parses scenario text; `path` names it in errors and anchors relative data files.
pub fn parse(text: &str, path: &Path, overrides: &Overrides) -> Result<Scenario, ScenarioError> {
    let shown = path.display().to_string();
    check_size(text, &shown)?;
    if let Some((line, column)) = input::too_deep(text, input::MAX_NESTING) {
        return Err(ScenarioError::At {
            path: shown,
            line,
            column,
            message: format!(
                "nests deeper than {} levels (indentation and brackets together): no \
                 scenario needs that",
                input::MAX_NESTING
            ),
        });
    }
    let raw: RawScenario = syntax::from_yaml(text, &shown)?;
    let at = |field: &[&str], message: String| match locate(text, field) {
        Some((line, column)) => ScenarioError::At {
            path: shown.clone(),
            line,
            column,
            message: format!("{}: {message}", shown_path(field)),
        },
        None => ScenarioError::Invalid {
            path: shown.clone(),
            message: format!("{}: {message}", shown_path(field)),
        },
    };
    let script = match &raw.script {
        None => None,
        Some(RawScript::File(file)) => Some(load_script(path, file, &RawScriptFull::default())?),
        Some(RawScript::Full(full)) => match &full.file {
            Some(file) => {
                limits_error(&at, full.limits.as_ref())?;
                Some(load_script(path, file, full)?)
            }
            None => {
                return Err(at(
                    &["script", "file"],
                    "names the .rhai file with the hooks".into(),
                ))
            }
        },
    };
    compile(raw, path, overrides, &at, script)
}

/// Reads and compiles the hooks file a YAML scenario names: relative to the scenario, a
/// regular file of at most [`input::SCRIPT_MAX_BYTES`].
fn load_script(
    scenario: &Path,
    file: &Path,
    options: &RawScriptFull,
) -> Result<Script, ScenarioError> {
    let path = scenario.parent().unwrap_or(Path::new(".")).join(file);
    let text = input::read_text_capped(&path, input::SCRIPT_MAX_BYTES).map_err(|source| {
        ScenarioError::Read {
            path: path.display().to_string(),
            source,
        }
    })?;
    Script::compile(&text, options.limits.unwrap_or_default(), options.on_error).map_err(
        |e| match e.line {
            Some(line) => ScenarioError::At {
                path: path.display().to_string(),
                line,
                column: e.column.unwrap_or(1),
                message: e.message,
            },
            None => ScenarioError::Invalid {
                path: path.display().to_string(),
                message: e.message,
            },
        },
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The smallest scenario that parses.
    pub(super) const MINIMAL: &str = "\
heartbeat:
  interval: 1s
  send: {type: heartBeat}
";

    /// Parses `text` as `test.yaml`, without overrides.
    pub(super) fn parse_str(text: &str) -> Result<Scenario, ScenarioError> {
        parse(text, Path::new("test.yaml"), &Overrides::default())
    }

    #[test]
    fn unknown_field_names_its_line() {
        let text = "heartbeat:\n  interval: 1s\n  send: {type: heartBeat}\n  intervall: 2s\n";
        let e = parse_str(text).unwrap_err().to_string();
        assert!(e.starts_with("test.yaml:4:"), "{e}");
        assert!(e.contains("intervall"), "{e}");
    }
    #[test]
    fn bad_duration_names_its_line() {
        let text = "duration: 10\nheartbeat:\n  send: {type: heartBeat}\n";
        let e = parse_str(text).unwrap_err().to_string();
        assert!(e.starts_with("test.yaml:1:"), "{e}");
        assert!(e.contains("no unit"), "{e}");
    }
    #[test]
    fn a_reading_error_is_at_its_key_with_its_path_in_a_writers_words() {
        // A duration without a unit: at `interval`'s own line and column, not at
        // `heartbeat:`, and saying what to write.
        let text = "name: x\nheartbeat:\n  send: {type: heartBeat}\n\n  interval: 30\n";
        let e = parse_str(text).unwrap_err().to_string();
        assert_eq!(
            e,
            "test.yaml:5:3: heartbeat.interval: `30` has no unit: write e.g. 30ms or 30s"
        );
        let e = parse_str(&format!("{MINIMAL}sessions: lots\n"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "test.yaml:4:1: sessions: must be a whole number, not the text \"lots\""
        );
        // In a list item, with its index.
        let text = format!("{MINIMAL}steps:\n  - name: a\n    send: x\n    timeout: 5\n");
        let e = parse_str(&text).unwrap_err().to_string();
        assert!(
            e.starts_with("test.yaml:7:5: steps[0].timeout: `5` has no unit"),
            "{e}"
        );
        // A wrong shape, and a missing key.
        let e = parse_str(&format!("{MINIMAL}thresholds: {{a: b}}\n"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "test.yaml:4:1: thresholds: must be a list, not a mapping"
        );
        let text = format!("{MINIMAL}load:\n  arrival:\n    rate: 5\n");
        let e = parse_str(&text).unwrap_err().to_string();
        assert_eq!(
            e,
            "test.yaml:5:3: load.arrival: needs the key `max_sessions`"
        );
        // An unknown key, under its mapping's path; in a flow mapping, serde_yaml's place.
        let text = "heartbeat: {send: x}\nreconnect:\n  delai: 1s\n";
        let e = parse_str(text).unwrap_err().to_string();
        assert!(
            e.starts_with("test.yaml:3:3: reconnect: unknown field `delai`"),
            "{e}"
        );
        let e = parse_str("heartbeat: {send: x, interval: 30}\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("test.yaml:1:") && e.contains("heartbeat.interval: `30` has no unit"),
            "{e}"
        );
    }
    #[test]
    fn semantic_error_is_located() {
        let text = "heartbeat:\n  interval: 1s\n  send: {type: heartBeat}\n  timeout: 2s\n";
        let e = parse_str(text).unwrap_err().to_string();
        assert!(e.starts_with("test.yaml:4:3: heartbeat.timeout"), "{e}");
    }
    #[test]
    fn script_limits_out_of_range_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("h.rhai"), "fn heartbeat(s) { \"x\" }").unwrap();
        let scenario = dir.path().join("s.yaml");
        for (limits, line, says) in [
            (
                "{max_operations: 0}",
                3,
                "max_operations: must be between 100 and 1000000",
            ),
            (
                "\n    max_string_size: 0",
                4,
                "max_string_size: must be between 64",
            ),
            (
                "\n    max_call_levels: 500",
                4,
                "max_call_levels: must be between 1 and 64",
            ),
        ] {
            let text = format!("heartbeat: {{}}\nscript:\n  limits: {limits}\n  file: h.rhai\n");
            std::fs::write(&scenario, &text).unwrap();
            let e = load(&scenario, &Overrides::default())
                .unwrap_err()
                .to_string();
            let place = format!("s.yaml:{line}:");
            assert!(e.contains(&place) && e.contains(says), "{text}\n{e}");
        }
    }
    #[test]
    fn oversized_and_overnested_scenarios_are_refused_quickly() {
        let started = std::time::Instant::now();
        let deep = format!("heartbeat:\n  send: {}\n", "[".repeat(200_000));
        let e = parse_str(&deep).unwrap_err().to_string();
        assert!(e.starts_with("test.yaml:2:"), "{e}");
        assert!(e.contains("deeper than 64"), "{e}");
        let big = format!("# {}\n{MINIMAL}", "x".repeat(1024 * 1024));
        let e = parse_str(&big).unwrap_err().to_string();
        assert!(e.contains("over the limit of 1048576"), "{e}");
        // A generous bound: the quadratic parse took over 20 s on 200 KB of `[`.
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
