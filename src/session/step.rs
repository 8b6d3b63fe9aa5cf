//! The request/reply step runner: send a step's message, then wait for the reply it
//! expects, measured from the send, until the step's timeout.
//!
//! It owns one exchange on an open socket, how it ends (accepted, rejected, timed out,
//! the socket lost, a hook's request) and what it records in the step's record. The
//! runner must not know which step it runs or what comes next: all that tells steps apart
//! is the scenario's [`Step`] (its name, hooks, message and matchers) and its place in the
//! list, and the lifecycle runs the list in order.

use std::pin::pin;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::Message;

use super::page::{Outcome, Session};
use super::transport::{self, closed_cause, incoming, Incoming, Ws};
use crate::metrics::{Cause, Counter, ErrorKind, StepIndex};
use crate::scenario::Step;

impl Session {
    /// Sends the message of step `index` (`step`) and waits for the reply it expects.
    pub(super) async fn exchange(
        &mut self,
        ws: &mut Ws,
        index: StepIndex,
        step: &Step,
    ) -> Result<(), Outcome> {
        let (build, judge) = (step.build, step.judge);
        let ctx = self.ctx.clone();
        let message = match self.message(build, step.send.as_ref()) {
            Ok(message) => message,
            Err(action) => return Err(self.after_hook_error(ws, action).await),
        };
        if let Some(outcome) = self.requested(ws).await {
            return Err(outcome);
        }
        let sent_at = Instant::now();
        ctx.recorder.borrow_mut().step(index).reached += 1;
        if ws.send(Message::Text(message)).await.is_err() {
            ctx.error(ErrorKind::SendFailed);
            return Err(Outcome::Reconnect(Cause::SocketError));
        }
        let scripted = self.has(judge);
        if step.expect.is_none() && !scripted {
            ctx.recorder
                .borrow_mut()
                .step_accepted(index, sent_at.elapsed());
            return Ok(());
        }
        let deadline = pin!(sleep_until(sent_at + step.timeout));
        let mut deadline = deadline;
        loop {
            tokio::select! {
                _ = &mut deadline => {
                    ctx.recorder.borrow_mut().step(index).timed_out += 1;
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
                                ctx.recorder
                                    .borrow_mut()
                                    .step_accepted(index, sent_at.elapsed());
                                return Ok(());
                            }
                            Some(false) => {
                                ctx.recorder.borrow_mut().step(index).rejected += 1;
                                // At most MAX_STEPS (16) steps: the index fits.
                                return Err(Outcome::Rejected(index as u8));
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
