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
    let step = |name: &str, step: &Option<scenario::Step>, build: Hook, judge: Hook| match step {
        Some(st) => {
            let what = if has(build) {
                format!("what `fn {}` builds", build.name())
            } else {
                "the `send` message".to_string()
            };
            let then = if has(judge) {
                format!(
                    "wait up to {} for a reply `fn {}` accepts",
                    units::format_duration(st.timeout),
                    judge.name()
                )
            } else if st.expect.is_some() {
                format!(
                    "wait up to {} for a reply `expect` matches",
                    units::format_duration(st.timeout)
                )
            } else {
                "go on once sent".to_string()
            };
            say!("  {name}: send {what}, then {then}");
        }
        None => say!("  {name}: (none)"),
    };
    step("auth", &s.auth, Hook::Auth, Hook::AuthReply);
    step(
        "bind_card",
        &s.bind_card,
        Hook::BindCard,
        Hook::BindCardReply,
    );
    say!(
        "  heartbeat: every {}, {}; reconnect after {} consecutive failures",
        units::format_duration(hb.interval),
        if hb.expect.as_ref().is_some_and(scenario::Matcher::has_seq) {
            format!(
                "healthy when acked within {} (acks matched by {{{{ heartbeat.seq }}}})",
                units::format_duration(hb.timeout)
            )
        } else if hb.expect.is_some() || has(Hook::HeartbeatReply) {
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
    let samples: [(Hook, Option<serde_json::Value>); 9] = [
        (Hook::OnStart, None),
        (Hook::Auth, None),
        (
            Hook::AuthReply,
            Some(json!({"msgType": "auth_ack", "code": "200", "success": true})),
        ),
        (Hook::BindCard, None),
        (
            Hook::BindCardReply,
            Some(json!({"msgType": "bindCard_ack", "code": "200", "success": true})),
        ),
        (Hook::Heartbeat, None),
        (
            Hook::HeartbeatReply,
            Some(json!({"msgType": "heartBeat_ack"})),
        ),
        (
            Hook::OnMessage,
            Some(json!({"msgType": "order_push", "orderId": "o-1", "ts": now_ms})),
        ),
        (Hook::OnEnd, None),
    ];
    say!("  hooks, run once for session 0:");
    let mut failed = Vec::new();
    for (hook, message) in samples {
        if !script.has(hook) {
            continue;
        }
        let shown = match script.call(hook, &session, message.as_ref()) {
            Ok(value) => {
                let checked = match hook {
                    Hook::Auth | Hook::BindCard | Hook::Heartbeat => script::message_text(&value),
                    Hook::AuthReply | Hook::BindCardReply | Hook::HeartbeatReply => {
                        script::verdict(&value).map(|v| format!("{v:?}"))
                    }
                    Hook::OnMessage if value.is_unit() => Ok("() (no reply)".into()),
                    Hook::OnMessage => script::message_text(&value).map(|t| format!("reply {t}")),
                    Hook::OnStart | Hook::OnEnd => Ok("ok".into()),
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
