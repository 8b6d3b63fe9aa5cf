//! The request/reply step runner: send a step's message, then wait for the reply it
//! expects, measured from the send, until the step's timeout.
//!
//! It owns one exchange on an open socket and how it ends (accepted, rejected, timed out,
//! the socket lost, a hook's request). The runner must not know which step it runs or
//! what comes next: all that tells steps apart comes in as data ([`StepNames`]), and the
//! lifecycle picks the steps, their order and the session's state.

use std::pin::pin;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::Message;

use super::page::{Outcome, Session};
use super::transport::{self, closed_cause, incoming, Incoming, Ws};
use crate::metrics::{Cause, Counter, ErrorKind, Metric};
use crate::scenario::Step;
use crate::script::Hook;

/// What tells one request/reply step from another, beside its scenario text: the latency
/// it is measured under, the hooks that build and judge it, and how its failures are
/// counted. Plain data, one value per step, so that an ordered list of steps could be run
/// by one loop.
#[derive(Debug, Clone, Copy)]
pub(super) struct StepNames {
    /// The latency recorded, from the send, when the reply is accepted.
    pub(super) metric: Metric,
    /// The hook that builds the message, when the script defines it.
    pub(super) build: Hook,
    /// The hook that judges replies, when the script defines it.
    pub(super) judge: Hook,
    /// Counted when no reply is accepted within the step's timeout.
    pub(super) timeout: ErrorKind,
    /// Counted when the reply is a rejection.
    pub(super) rejected: ErrorKind,
    /// The reconnect cause of a rejection.
    pub(super) cause: Cause,
}

impl StepNames {
    /// The `auth` step.
    pub(super) const AUTH: Self = Self {
        metric: Metric::Auth,
        build: Hook::Auth,
        judge: Hook::AuthReply,
        timeout: ErrorKind::AuthTimeout,
        rejected: ErrorKind::AuthRejected,
        cause: Cause::AuthRejected,
    };

    /// The `bind_card` step.
    pub(super) const BIND_CARD: Self = Self {
        metric: Metric::BindCard,
        build: Hook::BindCard,
        judge: Hook::BindCardReply,
        timeout: ErrorKind::BindCardTimeout,
        rejected: ErrorKind::BindCardRejected,
        cause: Cause::BindCardRejected,
    };
}

impl Session {
    /// Sends a step's message and waits for the reply it expects.
    pub(super) async fn exchange(
        &mut self,
        ws: &mut Ws,
        step: &Step,
        names: StepNames,
    ) -> Result<(), Outcome> {
        let StepNames {
            metric,
            build,
            judge,
            timeout: timeout_kind,
            rejected: reject_kind,
            cause: reject_cause,
        } = names;
        let ctx = self.ctx.clone();
        let message = match self.message(build, step.send.as_ref()) {
            Ok(message) => message,
            Err(action) => return Err(self.after_hook_error(ws, action).await),
        };
        if let Some(outcome) = self.requested(ws).await {
            return Err(outcome);
        }
        let sent_at = Instant::now();
        if ws.send(Message::Text(message)).await.is_err() {
            ctx.error(ErrorKind::SendFailed);
            return Err(Outcome::Reconnect(Cause::SocketError));
        }
        let scripted = self.has(judge);
        if step.expect.is_none() && !scripted {
            ctx.record(metric, sent_at.elapsed());
            return Ok(());
        }
        let deadline = pin!(sleep_until(sent_at + step.timeout));
        let mut deadline = deadline;
        loop {
            tokio::select! {
                _ = &mut deadline => {
                    ctx.error(timeout_kind);
                    return Err(Outcome::Reconnect(Cause::Timeout));
                }
                _ = ctx.stop.cancelled() => {
                    Box::pin(transport::close(&self.ctx, ws)).await;
                    return Err(Outcome::Stopped);
                }
                item = ws.next() => match incoming(&ctx, item) {
                    Incoming::Json(value) => {
                        let verdict = if scripted {
                            match self.judge(judge, &value) {
                                Ok(verdict) => verdict,
                                Err(action) => return Err(self.after_hook_error(ws, action).await),
                            }
                        } else if step.expect.as_ref().is_some_and(|e| e.matches(&value)) {
                            Some(true)
                        } else if step.reject.as_ref().is_some_and(|r| r.matches(&value)) {
                            Some(false)
                        } else {
                            None
                        };
                        if let Some(outcome) = self.requested(ws).await {
                            return Err(outcome);
                        }
                        match verdict {
                            Some(true) => {
                                ctx.record(metric, sent_at.elapsed());
                                return Ok(());
                            }
                            Some(false) => {
                                ctx.error(reject_kind);
                                return Err(Outcome::Reconnect(reject_cause));
                            }
                            None => {
                                if let Some(outcome) = self.unmatched(ws, &value).await {
                                    return Err(outcome);
                                }
                            }
                        }
                    }
                    Incoming::NotJson => ctx.count(Counter::MessagesUnmatched),
                    Incoming::Control => {}
                    Incoming::Closed(kind) => {
                        ctx.error(kind);
                        return Err(Outcome::Reconnect(closed_cause(kind)));
                    }
                }
            }
        }
    }
}
