//! One simulated mini-program page: connect → auth → bindCard → heartbeats, reconnecting
//! when heartbeats fail or the socket goes away, until the run stops (`onUnload`).
//!
//! A session is a local task on its shard's current-thread runtime. It owns every await,
//! timer and socket of its page, and records into the shard's
//! [`Recorder`](crate::metrics::Recorder) without locks. It must never block: no file I/O,
//! no `std::thread::sleep`, no locks held across awaits.
//!
//! Heartbeats run on a fixed timetable with a per-session phase, and their latency is
//! measured from the *scheduled* send time, so a late tester or a slow server shows up in
//! the percentiles instead of vanishing (coordinated omission).
//!
//! This file owns the page's lifecycle: [`run`], the visits of churn, the reconnect
//! episodes of one visit, and one connection from connect through the scenario's steps,
//! in order, to its heartbeats.
//! It decides what happens next and in which state; the work itself is done below it,
//! one job per file, and none of them imports this one:
//!
//! - `step`: one request/reply step (auth, bindCard, any of `steps:`) on an open socket;
//! - `beat`: the heartbeat loop of a bound connection;
//! - `hooks`: calling the scenario's script hooks and doing what they ask;
//! - `transport`: the socket: connect, classify what it yields, close;
//! - `ws`: the WebSocket protocol on the socket, polled by the session's own task;
//! - `page`: the `Session`'s fields and the small rules on them;
//! - `alarm`: the shard's alarm clock, which the heartbeat loops wait on;
//! - `context`: what sessions share: the run's [`Plan`], the shard's [`Context`].

mod alarm;
mod beat;
mod context;
mod hooks;
mod page;
mod step;
mod transport;
mod ws;

pub use context::{Context, Plan};
pub use hooks::card_map;
pub use transport::{client_ws_config, ConnectFailure, Stream};

use std::rc::Rc;

use tokio::sync::oneshot;
use tokio::time::{timeout, Instant};

use crate::load::Shape;
use crate::metrics::{Cause, Counter, ErrorKind, Metric, State};
use crate::script::{Hook, SessionHandle};
use crate::source;
use page::{Outcome, Session, EVER_AUTHENTICATED, EVER_BOUND, EVER_CONNECTED};

/// Runs one session until the run stops, or until `until` when the load shape ends it
/// earlier. `gate`, for the run's first session, reports the outcome of its first connect.
/// The caller has counted the session in `ctx.running`; it is uncounted on return.
pub async fn run(
    ctx: Rc<Context>,
    id: u32,
    gate: Option<oneshot::Sender<Result<(), ConnectFailure>>>,
    until: Option<Instant>,
) {
    let mut session = Session::new(ctx, id, until);
    session.ctx.count(Counter::SessionsStarted);
    if session.ctx.plan.scenario.script.is_some() {
        session.script = Some(SessionHandle::new(
            id,
            card_map(&session.ctx.plan.scenario, id),
        ));
        session.lifecycle(Hook::ON_START);
    }
    if !session.leave_requested {
        session.visits(gate).await;
    }
    if session.script.is_some() {
        session.lifecycle(Hook::ON_END);
    }
    // Gauges and the running count are settled in `Drop`, even if the task panics.
}

impl Session {
    /// Visits: with churn, a page stays for a dwell time, leaves, and (when the scenario
    /// says so) comes back after an away time as the same user.
    async fn visits(&mut self, mut gate: Option<oneshot::Sender<Result<(), ConnectFailure>>>) {
        let ctx = self.ctx.clone();
        let scenario = &ctx.plan.scenario;
        loop {
            self.leave_at = self.visit_end();
            // A visit starts afresh: no reconnect is pending from an earlier one.
            self.failed_at = None;
            self.attempt = 0;
            if !self.live(&mut gate).await {
                return; // the run stopped
            }
            ctx.count(Counter::SessionsLeft);
            if self.leave_requested {
                return;
            }
            let Some(churn) = &scenario.churn else { return };
            let ended = self.until.is_some_and(|u| Instant::now() >= u);
            if ended {
                return;
            }
            match (&churn.away, &scenario.shape) {
                (Some(away), _) => {
                    self.set_state(Some(State::Away));
                    let back = Instant::now() + away.sample(fastrand::f64());
                    if self.until.is_some_and(|u| back >= u) {
                        return;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep_until(back) => {}
                        _ = ctx.stop.cancelled() => return,
                    }
                }
                // Closed model: the slot is a user; without an away time they return now.
                // Yield first: a visit that ended before it began must not spin the shard.
                (None, Shape::Closed { .. }) => tokio::task::yield_now().await,
                // Open model: new users arrive instead.
                (None, Shape::Open { .. }) => return,
            }
            ctx.count(Counter::SessionsReturned);
        }
    }

    /// One visit: connections and reconnects until the page leaves (true) or the run
    /// stops (false).
    async fn live(
        &mut self,
        gate: &mut Option<oneshot::Sender<Result<(), ConnectFailure>>>,
    ) -> bool {
        let ctx = self.ctx.clone();
        loop {
            let lost = self.connection(gate).await;
            match lost {
                Outcome::Stopped => return false,
                Outcome::Left => return true,
                Outcome::Reconnect(_) | Outcome::Rejected(_) => {}
            }
            // A reconnect is an episode: it begins when a session loses its connection
            // (or its first connect fails) and ends when it is bound again. Attempts that
            // fail inside it are counted under `connects`, not as more reconnects, so
            // the count reconciles with the connections the server saw drop.
            if self.failed_at.is_none() {
                lost.begins_episode(&mut ctx.recorder.borrow_mut());
                self.failed_at = Some(Instant::now());
            }
            self.attempt += 1;
            self.set_state(Some(State::Reconnecting));
            let delay = ctx
                .plan
                .scenario
                .reconnect
                .delay_for(self.attempt, fastrand::f64());
            let resume = Instant::now() + delay;
            if self.leave_at.is_some_and(|l| l <= resume) {
                // The user leaves before the retry: nothing to close, the socket is gone.
                if let Some(leave_at) = self.leave_at {
                    tokio::select! {
                        _ = tokio::time::sleep_until(leave_at) => return true,
                        _ = ctx.stop.cancelled() => return false,
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep_until(resume) => {}
                _ = ctx.stop.cancelled() => return false,
            }
        }
    }

    /// One connection, from connect to its end.
    async fn connection(
        &mut self,
        gate: &mut Option<oneshot::Sender<Result<(), ConnectFailure>>>,
    ) -> Outcome {
        let ctx = self.ctx.clone();
        let scenario = &ctx.plan.scenario;
        if self.leave_at.is_some_and(|l| Instant::now() >= l) {
            return Outcome::Left;
        }
        self.set_state(Some(State::Connecting));
        ctx.count(Counter::ConnectsAttempted);
        if let Some(handle) = &self.script {
            handle.with(|d| d.connects += 1);
        }
        let from = source::pick(&ctx.plan.sources, self.id);
        let started = Instant::now();
        // In a block of its own, so that what connecting leaves behind (the results the
        // socket passes through) is not kept beside it while the connection lives.
        let mut ws = {
            // Boxed: the handshake future is large and lives only while connecting, so it
            // should not sit inside every idle session's state machine.
            let connecting = Box::pin(timeout(
                scenario.connect.timeout,
                transport::connect(&ctx.plan, from),
            ));
            let result = tokio::select! {
                r = connecting => r,
                _ = ctx.stop.cancelled() => return Outcome::Stopped,
            };
            let failure = match result {
                Ok(Ok(ws)) => Ok(ws),
                Ok(Err(failure)) => Err(failure),
                Err(_) => Err(ConnectFailure {
                    kind: ErrorKind::ConnectTimeout,
                    detail: format!(
                        "no WebSocket connection within {} (connect.timeout)",
                        crate::units::format_duration(scenario.connect.timeout)
                    ),
                }),
            };
            if let Some(gate) = gate.take() {
                let _ = gate.send(failure.as_ref().map(|_| ()).map_err(Clone::clone));
            }
            match failure {
                Ok(ws) => ws,
                Err(failure) => {
                    ctx.error(failure.kind);
                    return Outcome::Reconnect(Cause::ConnectError);
                }
            }
        };
        ctx.record(Metric::Connect, started.elapsed());
        self.reach(EVER_CONNECTED, Counter::SessionsConnected);

        // Boxed, like every part of a connection that is not the steady state: an idle
        // session keeps only the heartbeat loop's state.
        if let Err(outcome) = Box::pin(self.steps(&mut ws)).await {
            return outcome;
        }
        self.reach(EVER_BOUND, Counter::SessionsBound);
        self.set_state(Some(State::Bound));
        if let Some(failed_at) = self.failed_at.take() {
            ctx.record(Metric::Reconnect, failed_at.elapsed());
        }
        self.attempt = 0;
        self.heartbeats(&mut ws).await
    }
}

impl Session {
    /// The scenario's steps, in order, on a new connection.
    async fn steps(&mut self, ws: &mut transport::Ws) -> Result<(), Outcome> {
        let ctx = self.ctx.clone();
        let steps = &ctx.plan.scenario.steps;
        if steps.is_empty() {
            self.reach(EVER_AUTHENTICATED, Counter::SessionsAuthenticated);
            return Ok(());
        }
        self.set_state(Some(State::Steps));
        for (index, step) in steps.iter().enumerate() {
            self.exchange(ws, index, step).await?;
            self.passed(index);
            if index == 0 {
                self.reach(EVER_AUTHENTICATED, Counter::SessionsAuthenticated);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod size_tests {
    use super::transport::Ws;
    use super::*;

    /// Every idle session keeps its whole future in memory; connect, auth, bindCard and
    /// close are boxed so that only the heartbeat state is paid for by idle sessions, and
    /// the socket is held once (the results it passes through while connecting are
    /// scoped to a block: before, they kept two more copies of it, 640 bytes).
    /// A regression here costs memory at 10k sessions (benches/memory.sh measures it).
    #[test]
    fn an_idle_session_stays_small() {
        let ctx = Context::for_test(
            "heartbeat:\n  send: {type: heartBeat}\n",
            vec![[127, 0, 0, 1].into(), [127, 0, 0, 2].into()],
        );
        let future = run(ctx, 0, None, None);
        let size = std::mem::size_of_val(&future);
        assert!(size <= 1408, "session future is {size} bytes");
        assert!(
            std::mem::size_of::<Ws>() <= 512,
            "{}",
            std::mem::size_of::<Ws>()
        );
    }
}
