//! Message templates: a JSON (or plain text) message with `{{ … }}` placeholders, compiled
//! once at load and rendered per session.
//!
//! Placeholders: `{{ session.id }}`, `{{ card.<column> }}` (the session's row of the card
//! data file), `{{ env.NAME }}` (resolved once, at load) and, in the heartbeat only,
//! `{{ heartbeat.seq }}` (the heartbeat's number within its session, from 1). A rendered value is escaped
//! for the JSON string it sits in, so data can never break a message's structure.

use std::fmt::Write as _;

use tokio_tungstenite::tungstenite::Utf8Bytes;

/// One piece of a compiled template.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// Text copied as is.
    Literal(String),
    /// The session's id.
    SessionId,
    /// A column of the session's card row, by column index.
    Card(usize),
    /// The heartbeat's sequence number.
    HeartbeatSeq,
}

/// The placeholder that numbers heartbeats, as written in `send` and `expect`.
pub const HEARTBEAT_SEQ: &str = "{{ heartbeat.seq }}";

/// What a template needs from the session it renders for.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    /// The session's id, from 0.
    pub session_id: u32,
    /// The session's card row, when the scenario has card data.
    pub card: Option<&'a [String]>,
    /// The heartbeat's sequence number (heartbeat messages only; 0 elsewhere).
    pub heartbeat_seq: u64,
}

/// A compiled message template.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
    /// Whether values are escaped for a JSON string (true when `send` was a mapping).
    json: bool,
    /// The whole message, when it has no per-session placeholder: shared by every session
    /// without copying.
    fixed: Option<Utf8Bytes>,
}

impl Template {
    /// Compiles a `send` value. A mapping or list becomes a JSON text message; a string is
    /// sent as it is written. `columns` are the card data's column names; `env` looks up
    /// environment variables.
    pub fn compile(
        send: &serde_json::Value,
        columns: &[String],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Template, String> {
        let (text, json) = match send {
            serde_json::Value::String(s) => (s.clone(), false),
            serde_json::Value::Object(_) | serde_json::Value::Array(_) => (
                serde_json::to_string(send).map_err(|e| e.to_string())?,
                true,
            ),
            other => {
                return Err(format!(
                    "`send` must be a mapping (sent as JSON) or a string, not {other}"
                ))
            }
        };
        let mut parts = Vec::new();
        let mut rest = text.as_str();
        while let Some(open) = rest.find("{{") {
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("unclosed `{{{{` in `{}`", truncate(rest)))?;
            push_literal(&mut parts, &rest[..open]);
            let name = after[..close].trim();
            match name.split_once('.') {
                Some(("session", "id")) => parts.push(Part::SessionId),
                Some(("heartbeat", "seq")) => parts.push(Part::HeartbeatSeq),
                Some(("card", column)) => {
                    let index = columns.iter().position(|c| c == column).ok_or_else(|| {
                        if columns.is_empty() {
                            format!("`{{{{ {name} }}}}` needs card data: add `data: {{cards: FILE.csv}}`")
                        } else {
                            format!(
                                "`{{{{ {name} }}}}`: the card data has no column `{column}` (it has: {})",
                                columns.join(", ")
                            )
                        }
                    })?;
                    parts.push(Part::Card(index));
                }
                Some(("env", var)) => {
                    let value = env(var)
                        .ok_or_else(|| format!("`{{{{ {name} }}}}`: environment variable {var} is not set"))?;
                    push_literal(&mut parts, &escape(&value, json));
                }
                _ => {
                    return Err(format!(
                        "unknown placeholder `{{{{ {name} }}}}`: use session.id, card.<column>, env.<NAME> or (in the heartbeat) heartbeat.seq"
                    ))
                }
            }
            rest = &after[close + 2..];
        }
        push_literal(&mut parts, rest);
        let fixed = match parts.as_slice() {
            [] => Some(Utf8Bytes::from_static("")),
            [Part::Literal(text)] => Some(Utf8Bytes::from(text.clone())),
            _ => None,
        };
        Ok(Template { parts, json, fixed })
    }

    /// Whether the message carries `{{ heartbeat.seq }}`.
    pub fn uses_heartbeat_seq(&self) -> bool {
        self.parts.contains(&Part::HeartbeatSeq)
    }

    /// The message when it is the same for every session.
    pub fn fixed(&self) -> Option<&Utf8Bytes> {
        self.fixed.as_ref()
    }

    /// Renders the message for one session.
    pub fn render(&self, vars: Vars<'_>) -> Utf8Bytes {
        if let Some(fixed) = &self.fixed {
            return fixed.clone();
        }
        let mut out = String::with_capacity(128);
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::SessionId => {
                    let _ = write!(out, "{}", vars.session_id);
                }
                Part::Card(index) => {
                    let value = vars
                        .card
                        .and_then(|row| row.get(*index))
                        .map(String::as_str)
                        .unwrap_or("");
                    out.push_str(&escape(value, self.json));
                }
                Part::HeartbeatSeq => {
                    let _ = write!(out, "{}", vars.heartbeat_seq);
                }
            }
        }
        Utf8Bytes::from(out)
    }
}

fn push_literal(parts: &mut Vec<Part>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(Part::Literal(prev)) = parts.last_mut() {
        prev.push_str(text);
    } else {
        parts.push(Part::Literal(text.to_owned()));
    }
}

/// Escapes a value for the inside of a JSON string (without the quotes).
fn escape(value: &str, json: bool) -> String {
    if !json {
        return value.to_owned();
    }
    let quoted = serde_json::to_string(value).expect("strings always serialise");
    quoted[1..quoted.len() - 1].to_owned()
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn fixed_message_is_shared() {
        let t = Template::compile(
            &json!({"type": "heartBeat", "msg": "this is heatbeat"}),
            &[],
            no_env,
        )
        .unwrap();
        assert_eq!(
            t.fixed().unwrap().as_str(),
            r#"{"type":"heartBeat","msg":"this is heatbeat"}"#
        );
    }

    #[test]
    fn placeholders_render_escaped() {
        let cols = vec!["cardId".to_string(), "name".to_string()];
        let t = Template::compile(
            &json!({"id": "s{{ session.id }}", "card": "{{card.cardId}}", "n": "{{ card.name }}", "k": "{{ env.KEY }}"}),
            &cols,
            |v| (v == "KEY").then(|| "se\"cret".to_string()),
        )
        .unwrap();
        assert!(t.fixed().is_none());
        let row = vec!["C-1".to_string(), "a\"b\\c".to_string()];
        let out = t.render(Vars {
            session_id: 7,
            card: Some(&row),
            heartbeat_seq: 0,
        });
        let v: serde_json::Value = serde_json::from_str(out.as_str()).unwrap();
        assert_eq!(
            v,
            json!({"id": "s7", "card": "C-1", "n": "a\"b\\c", "k": "se\"cret"})
        );
    }

    #[test]
    fn plain_string_is_sent_as_written() {
        let t = Template::compile(&json!("ping {{ session.id }}"), &[], no_env).unwrap();
        assert_eq!(
            t.render(Vars {
                session_id: 3,
                card: None,
                heartbeat_seq: 0,
            })
            .as_str(),
            "ping 3"
        );
    }

    #[test]
    fn heartbeat_seq_renders_as_a_number() {
        let t = Template::compile(
            &json!({"type": "heartBeat", "seq": "{{ heartbeat.seq }}"}),
            &[],
            no_env,
        )
        .unwrap();
        assert!(t.uses_heartbeat_seq());
        assert!(t.fixed().is_none());
        let vars = Vars {
            session_id: 1,
            card: None,
            heartbeat_seq: 42,
        };
        assert_eq!(
            t.render(vars).as_str(),
            r#"{"type":"heartBeat","seq":"42"}"#
        );
        let plain = Template::compile(&json!({"type": "heartBeat"}), &[], no_env).unwrap();
        assert!(!plain.uses_heartbeat_seq());
    }

    #[test]
    fn bad_placeholders_are_explained() {
        let e = Template::compile(&json!({"a": "{{ card.x }}"}), &[], no_env).unwrap_err();
        assert!(e.contains("needs card data"), "{e}");
        let e =
            Template::compile(&json!({"a": "{{ card.x }}"}), &["y".into()], no_env).unwrap_err();
        assert!(e.contains("no column `x`") && e.contains("y"), "{e}");
        let e = Template::compile(&json!({"a": "{{ nope }}"}), &[], no_env).unwrap_err();
        assert!(e.contains("unknown placeholder"), "{e}");
        let e = Template::compile(&json!({"a": "{{ env.NOPE }}"}), &[], no_env).unwrap_err();
        assert!(e.contains("NOPE is not set"), "{e}");
        let e = Template::compile(&json!({"a": "{{ session.id"}), &[], no_env).unwrap_err();
        assert!(e.contains("unclosed"), "{e}");
        assert!(Template::compile(&json!(3), &[], no_env).is_err());
    }
}
