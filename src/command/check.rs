//! `wsoak check`: validates a scenario without running it, says what each step would do,
//! and runs every script hook once against session 0 and sample replies.

use anyhow::{bail, Context as _};

use super::EXIT_OK;
use crate::cli::CheckArgs;
use crate::scenario::{self, Overrides, Scenario};
use crate::script::{self, Hook};
use crate::session;
use crate::units;

/// `wsoak check`: validates a scenario and describes what it would do.
pub(crate) fn check(args: &CheckArgs) -> anyhow::Result<u8> {
    let s = scenario::load(&args.scenario, &Overrides::default())?;
    let hb = &s.heartbeat;
    say!(
        "{}: ok — {} sessions for {} against {}",
        args.scenario.display(),
        s.sessions,
        units::format_duration(s.duration),
        s.target
    );
    let has = |hook: Hook| s.script.as_ref().is_some_and(|sc| sc.has(hook));
    if s.steps.is_empty() {
        say!("  steps: (none: heartbeats begin right after connect)");
    }
    for st in &s.steps {
        let what = if has(st.build) {
            format!("what `fn {}` builds", st.build.name())
        } else {
            "the `send` message".to_string()
        };
        let then = if has(st.judge) {
            format!(
                "wait up to {} for a reply `fn {}` accepts",
                units::format_duration(st.timeout),
                st.judge.name()
            )
        } else if st.expect.is_some() {
            format!(
                "wait up to {} for a reply `expect` matches",
                units::format_duration(st.timeout)
            )
        } else {
            "go on once sent".to_string()
        };
        say!("  {}: send {what}, then {then}", st.name);
    }
    say!(
        "  heartbeat: every {}, {}; reconnect after {} consecutive failures",
        units::format_duration(hb.interval),
        if hb.expect.as_ref().is_some_and(scenario::Matcher::has_seq) {
            format!(
                "healthy when acked within {} (acks matched by {{{{ heartbeat.seq }}}})",
                units::format_duration(hb.timeout)
            )
        } else if hb.expect.is_some() || has(Hook::HEARTBEAT_REPLY) {
            format!(
                "healthy when acked within {} (acks carry no id: matched by time and order)",
                units::format_duration(hb.timeout)
            )
        } else {
            "healthy when sent".to_string()
        },
        hb.max_failures + 1
    );
    if let Some(cards) = &s.cards {
        say!(
            "  cards: {} rows ({})",
            cards.rows.len(),
            cards.columns.join(", ")
        );
    }
    if !s.thresholds.is_empty() {
        let checks: Vec<&str> = s.thresholds.iter().map(|t| t.check.as_str()).collect();
        say!("  thresholds: {}", checks.join("; "));
    }
    if !s.connect.headers.is_empty() {
        say!("  headers: {}", s.connect.shown_headers().join("; "));
    }
    if let Some(script) = &s.script {
        // Hooks may recurse as deep as the limits allow: give them the shards' stack.
        script::on_script_stack(|| check_hooks(&s, script))
            .context("cannot start a thread for the hooks")??;
    }
    Ok(EXIT_OK)
}

/// Runs every hook the script defines once, against session 0 and the reference
/// server's replies, and shows what each returned.
fn check_hooks(s: &Scenario, script: &script::Script) -> anyhow::Result<()> {
    use serde_json::json;
    let session = script::SessionHandle::new(0, session::card_map(s, 0));
    session.with(|d| d.connects = 1);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    // Each step's reply hook is shown the reference server's answer to what the step
    // sends: `{"msgType": "<type>_ack", …}`.
    let vars = scenario::Vars {
        session_id: 0,
        card: s.cards.as_ref().map(|c| c.row(0)),
        heartbeat_seq: 0,
    };
    let mut samples: Vec<(Hook, Option<serde_json::Value>)> = vec![(Hook::ON_START, None)];
    for st in &s.steps {
        let sent = st.send.as_ref().map(|t| t.render(vars).to_string());
        let kind = sent
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|v| v["type"].as_str().map(str::to_owned))
            .unwrap_or_else(|| st.name.to_string());
        samples.push((st.build, None));
        samples.push((
            st.judge,
            Some(json!({"msgType": format!("{kind}_ack"), "code": "200", "success": true})),
        ));
    }
    samples.extend([
        (Hook::HEARTBEAT, None),
        (
            Hook::HEARTBEAT_REPLY,
            Some(json!({"msgType": "heartBeat_ack"})),
        ),
        (
            Hook::ON_MESSAGE,
            Some(json!({"msgType": "order_push", "orderId": "o-1", "ts": now_ms})),
        ),
        (Hook::ON_END, None),
    ]);
    say!("  hooks, run once for session 0:");
    let mut failed = Vec::new();
    for (hook, message) in samples {
        if !script.has(hook) {
            continue;
        }
        let shown = match script.call(hook, &session, message.as_ref()) {
            Ok(value) => {
                let checked = if hook == Hook::ON_MESSAGE {
                    if value.is_unit() {
                        Ok("() (no reply)".into())
                    } else {
                        script::message_text(&value).map(|t| format!("reply {t}"))
                    }
                } else if hook == Hook::ON_START || hook == Hook::ON_END {
                    Ok("ok".into())
                } else if message.is_some() {
                    // A reply hook: a step's, or the heartbeat's.
                    script::verdict(&value).map(|v| format!("{v:?}"))
                } else {
                    script::message_text(&value)
                };
                match checked {
                    Ok(text) => text,
                    Err(e) => {
                        failed.push(format!("{}: {e}", hook.name()));
                        format!("error: {e}")
                    }
                }
            }
            Err(e) => {
                failed.push(format!("{}: {}", hook.name(), e.message));
                format!("error: {}", e.message)
            }
        };
        let effects = session.take_effects();
        let effects = if effects.is_empty() {
            String::new()
        } else {
            format!("  (asks: {effects:?})")
        };
        say!("    {}: {shown}{effects}", hook.name());
    }
    if !failed.is_empty() {
        bail!(
            "{}: {} hook(s) failed: {}",
            s.source.display(),
            failed.len(),
            failed.join("; ")
        );
    }
    Ok(())
}
