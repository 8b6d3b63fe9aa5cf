//! The script glue: calling the scenario's Rhai hooks for one session (`on_start`,
//! `on_end`, a step's message and reply hooks, `on_message`), turning a failed call into
//! the scenario's `on_error` action, and carrying out what the hooks asked for (custom
//! counts and latencies, `reconnect()`, `leave()`, `fail()`).
//!
//! It owns the line between the session and [`crate::script`]. It must not decide when a
//! hook runs (the lifecycle, the steps and the heartbeat loop do), and it holds no state
//! of its own: what a hook asks for becomes a flag on the [`Session`] or an [`Outcome`]
//! (the socket closed or abandoned first) for its caller to return.

use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::page::{Outcome, Session};
use super::transport::{self, Ws};
use crate::metrics::{Cause, Counter, ErrorKind, State};
use crate::scenario::{Scenario, Template};
use crate::script::{Effect, Hook, OnError};

/// A session's card row as a Rhai map, for `session.card`.
pub fn card_map(scenario: &Scenario, id: u32) -> rhai::Map {
    let Some(cards) = &scenario.cards else {
        return rhai::Map::new();
    };
    cards
        .columns
        .iter()
        .zip(cards.row(id))
        .map(|(k, v)| (k.as_str().into(), rhai::Dynamic::from(v.clone())))
        .collect()
}

impl Session {
    /// `on_start` / `on_end`: counts and latencies they ask for are kept; `leave()` in
    /// `on_start` ends the session before it connects.
    pub(super) fn lifecycle(&mut self, hook: Hook) {
        if !self.has(hook) {
            return;
        }
        if matches!(self.call(hook, None), Err(OnError::Leave)) {
            self.leave_requested = true;
        }
        if self.apply_effects() == Some(OnError::Leave) {
            self.leave_requested = true;
        }
    }

    /// Whether the scenario's script defines a hook.
    pub(super) fn has(&self, hook: Hook) -> bool {
        self.script.is_some()
            && self
                .ctx
                .plan
                .scenario
                .script
                .as_ref()
                .is_some_and(|s| s.has(hook))
    }

    /// Calls a hook for this session; a failure is counted and turned into the
    /// scenario's `on_error` action.
    pub(super) fn call(
        &mut self,
        hook: Hook,
        message: Option<&serde_json::Value>,
    ) -> Result<rhai::Dynamic, OnError> {
        let script = self
            .ctx
            .plan
            .scenario
            .script
            .as_ref()
            .expect("called only with a script");
        let handle = self
            .script
            .as_ref()
            .expect("scripted sessions have a handle");
        script.call(hook, handle, message).map_err(|e| {
            self.ctx
                .recorder
                .borrow_mut()
                .script_error(hook.name(), e.limit);
            script.on_error
        })
    }

    /// A message from its hook when the script has one, else from the template.
    pub(super) fn message(
        &mut self,
        hook: Hook,
        template: Option<&Template>,
    ) -> Result<Utf8Bytes, OnError> {
        if self.has(hook) {
            let built = self.call(hook, None).and_then(|value| {
                crate::script::message_text(&value).map_err(|_| {
                    self.ctx
                        .recorder
                        .borrow_mut()
                        .script_error(hook.name(), false);
                    self.ctx
                        .plan
                        .scenario
                        .script
                        .as_ref()
                        .map_or(OnError::Reconnect, |s| s.on_error)
                })
            });
            match built {
                Ok(text) => return Ok(Utf8Bytes::from(text)),
                // `ignore`: as if the hook were not there.
                Err(OnError::Ignore) if template.is_some() => {}
                Err(OnError::Ignore) => return Err(OnError::Reconnect),
                Err(action) => return Err(action),
            }
        }
        let template = template.expect("scenario validation: a step has `send` or its hook");
        Ok(template.render(self.vars()))
    }

    /// Asks a reply hook whether `value` is the reply: accepted, rejected, or not it.
    pub(super) fn judge(
        &mut self,
        hook: Hook,
        value: &serde_json::Value,
    ) -> Result<Option<bool>, OnError> {
        match self.call(hook, Some(value)) {
            Ok(result) => match crate::script::verdict(&result) {
                Ok(verdict) => Ok(verdict),
                Err(_) => {
                    self.ctx
                        .recorder
                        .borrow_mut()
                        .script_error(hook.name(), false);
                    match self
                        .ctx
                        .plan
                        .scenario
                        .script
                        .as_ref()
                        .map_or(OnError::Reconnect, |s| s.on_error)
                    {
                        OnError::Ignore => Ok(None),
                        action => Err(action),
                    }
                }
            },
            Err(OnError::Ignore) => Ok(None),
            Err(action) => Err(action),
        }
    }

    /// A message no step was waiting for: counted, and given to `on_message` when the
    /// script has it (which may reply, or ask to reconnect or leave).
    pub(super) async fn unmatched(
        &mut self,
        ws: &mut Ws,
        value: &serde_json::Value,
    ) -> Option<Outcome> {
        self.ctx.count(Counter::MessagesUnmatched);
        if !self.has(Hook::ON_MESSAGE) {
            return None;
        }
        Box::pin(self.on_message(ws, value)).await
    }

    /// `on_message`: sends the reply it returns, if any, then does what it asked for.
    async fn on_message(&mut self, ws: &mut Ws, value: &serde_json::Value) -> Option<Outcome> {
        match self.call(Hook::ON_MESSAGE, Some(value)) {
            Ok(reply) if !reply.is_unit() => match crate::script::message_text(&reply) {
                Ok(text) => {
                    if ws.send(Message::Text(Utf8Bytes::from(text))).await.is_err() {
                        self.ctx.error(ErrorKind::SendFailed);
                        return Some(Outcome::Reconnect(Cause::SocketError));
                    }
                    self.ctx.count(Counter::MessagesReplied);
                }
                Err(_) => self
                    .ctx
                    .recorder
                    .borrow_mut()
                    .script_error(Hook::ON_MESSAGE.name(), false),
            },
            Ok(_) | Err(OnError::Ignore) => {}
            Err(action) => return Some(self.after_hook_error(ws, action).await),
        }
        self.requested(ws).await
    }

    /// Carries out what the last hook calls asked for: counts and latencies always;
    /// a reconnect or a leave as the outcome to return.
    pub(super) async fn requested(&mut self, ws: &mut Ws) -> Option<Outcome> {
        match self.apply_effects()? {
            OnError::Leave => {
                Box::pin(transport::close(&self.ctx, ws)).await;
                self.leave_requested = true;
                Some(Outcome::Left)
            }
            _ => {
                Box::pin(transport::abandon(ws)).await;
                Some(Outcome::Reconnect(Cause::Script))
            }
        }
    }

    /// Records the counts and latencies the last hook calls asked for; returns a
    /// reconnect or leave they asked for (a leave wins).
    pub(super) fn apply_effects(&mut self) -> Option<OnError> {
        let handle = self.script.as_ref()?;
        let mut wanted = None;
        for effect in handle.take_effects() {
            let mut recorder = self.ctx.recorder.borrow_mut();
            let kept = match effect {
                Effect::Count(name) => recorder.custom_count(&name),
                Effect::Record(name, ms) => {
                    // Any number a script makes up, NaN and infinity included, is safe.
                    let ms = if ms.is_finite() {
                        ms.clamp(0.0, 3.6e9)
                    } else {
                        3.6e9
                    };
                    recorder.custom_record(&name, Duration::from_secs_f64(ms / 1000.0))
                }
                Effect::Reconnect => {
                    wanted = wanted.or(Some(OnError::Reconnect));
                    true
                }
                Effect::Leave => {
                    wanted = Some(OnError::Leave);
                    true
                }
                Effect::Fail => {
                    recorder.script_error(crate::metrics::SCRIPT_FAIL, false);
                    if self.state == Some(State::Bound) {
                        self.fail_requested = true;
                    } else {
                        // A failed auth or bindCard step: start over.
                        wanted = wanted.or(Some(OnError::Reconnect));
                    }
                    true
                }
            };
            if !kept {
                recorder.script_error(crate::metrics::SCRIPT_METRICS, false);
            }
        }
        wanted
    }

    /// What a failed hook leads to.
    pub(super) async fn after_hook_error(&mut self, ws: &mut Ws, action: OnError) -> Outcome {
        // Counts and latencies asked for before the failure still count.
        let _ = self.apply_effects();
        match action {
            OnError::Leave => {
                Box::pin(transport::close(&self.ctx, ws)).await;
                self.leave_requested = true;
                Outcome::Left
            }
            _ => {
                Box::pin(transport::abandon(ws)).await;
                Outcome::Reconnect(Cause::ScriptError)
            }
        }
    }
}
