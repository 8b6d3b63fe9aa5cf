//! One simulated page's state: the [`Session`] with every field the page keeps between
//! awaits, the milestones it has reached, the gauge state it is in, and the clock of its
//! visit (when it leaves, whether it only hides).
//!
//! It owns the small synchronous rules on that state, shared by the lifecycle, the steps
//! and the heartbeat loop. It must not await: no sockets, no timers, no hooks. Every field
//! here is held by every idle session, so a new one must earn its bytes (see the
//! idle-session size test in `mod.rs`).

use std::rc::Rc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::context::Context;
use crate::metrics::{Cause, Counter, Recorder, State, StepIndex};
use crate::scenario::Vars;
use crate::script::SessionHandle;

/// What ended one connection's life.
pub(super) enum Outcome {
    /// Drop the socket and run the flow again.
    Reconnect(Cause),
    /// The reply to a step (by its place in the list) was a rejection: drop the socket
    /// and run the flow again. Apart from `Reconnect` because its cause is the step's.
    /// A byte, not a `StepIndex`: outcomes live in every session's future, and a
    /// scenario has at most [`MAX_STEPS`](crate::metrics::MAX_STEPS) steps.
    Rejected(u8),
    /// The page left (`onUnload`): the socket is closed.
    Left,
    /// The run is over.
    Stopped,
}

impl Outcome {
    /// Counts the reconnect episode this outcome begins, by its cause.
    pub(super) fn begins_episode(&self, recorder: &mut Recorder) {
        match *self {
            Outcome::Reconnect(cause) => recorder.reconnect(cause),
            Outcome::Rejected(step) => recorder.step(step.into()).rejected_reconnects += 1,
            Outcome::Left | Outcome::Stopped => {}
        }
    }
}

/// Session milestones, recorded once per session ("sessions that ever …").
pub(super) const EVER_CONNECTED: u8 = 1;
pub(super) const EVER_AUTHENTICATED: u8 = 2;
pub(super) const EVER_BOUND: u8 = 4;
/// Where `ever` keeps the number of steps passed: the bits above the milestones.
const STEPS_SHIFT: u32 = 3;

/// One simulated page.
pub(super) struct Session {
    /// The shard's shared context.
    pub(super) ctx: Rc<Context>,
    /// Session id, from 0; picks the card row and the heartbeat phase.
    pub(super) id: u32,
    /// Current state, mirrored in the shard's gauges.
    pub(super) state: Option<State>,
    /// Milestones reached at least once (`EVER_*` bits), and above them
    /// ([`STEPS_SHIFT`]) the most steps passed on any connection: how many steps'
    /// `sessions` counts this session is in. One byte holds both (at most 16 steps), so
    /// that the step list costs an idle session nothing.
    pub(super) ever: u8,
    /// Reconnect attempts since the session was last bound.
    pub(super) attempt: u32,
    /// When the current reconnect episode began (the connection was lost), until the
    /// session is bound again; `None` outside an episode.
    pub(super) failed_at: Option<Instant>,
    /// The heartbeat message, rendered once when it has per-session placeholders.
    pub(super) heartbeat: Option<Utf8Bytes>,
    /// When the load shape ends this session (a ramp down); `None`: at the run's end.
    pub(super) until: Option<Instant>,
    /// When the current visit ends (churn's dwell, or `until`).
    pub(super) leave_at: Option<Instant>,
    /// What the script's hooks see as `session`, when the scenario has a script.
    pub(super) script: Option<SessionHandle>,
    /// A hook asked the page to leave for good.
    pub(super) leave_requested: bool,
    /// A hook declared the current heartbeat failed (`session.fail()` while bound).
    pub(super) fail_requested: bool,
    /// Heartbeats this session has sent, over all its connections: the last one's
    /// `{{ heartbeat.seq }}`. 32 bits fit beside the other small fields, and last 136
    /// years at one heartbeat a second.
    pub(super) heartbeat_seq: u32,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.ctx.shift(self.state.take(), None);
        self.ctx.running.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Session {
    /// A session that has not started: no state, no milestones, no script handle yet.
    /// `until` is when the load shape ends it, and its first visit's end.
    pub(super) fn new(ctx: Rc<Context>, id: u32, until: Option<Instant>) -> Session {
        Session {
            ctx,
            id,
            state: None,
            ever: 0,
            attempt: 0,
            failed_at: None,
            heartbeat: None,
            until,
            leave_at: until,
            script: None,
            leave_requested: false,
            fail_requested: false,
            heartbeat_seq: 0,
        }
    }

    /// Moves the session to `state`, in the shard's gauges too.
    pub(super) fn set_state(&mut self, state: Option<State>) {
        self.ctx.shift(self.state, state);
        self.state = state;
    }

    /// Counts a milestone (`EVER_*`) the first time the session reaches it.
    pub(super) fn reach(&mut self, milestone: u8, counter: Counter) {
        if self.ever & milestone == 0 {
            self.ever |= milestone;
            self.ctx.count(counter);
        }
    }

    /// Counts the session in step `index`'s `sessions` the first time it passes it.
    pub(super) fn passed(&mut self, index: StepIndex) {
        let passed = usize::from(self.ever >> STEPS_SHIFT);
        if passed <= index {
            // Steps pass in order, so every earlier one is counted already. At most
            // MAX_STEPS (16) steps: 16 << 3 still fits in the byte.
            let milestones = self.ever & ((1 << STEPS_SHIFT) - 1);
            self.ever = milestones | (((index + 1) as u8) << STEPS_SHIFT);
            self.ctx.recorder.borrow_mut().step(index).sessions += 1;
        }
    }

    /// What the scenario's templates see of this session.
    pub(super) fn vars(&self) -> Vars<'_> {
        Vars {
            session_id: self.id,
            card: self
                .ctx
                .plan
                .scenario
                .cards
                .as_ref()
                .map(|c| c.row(self.id)),
            heartbeat_seq: u64::from(self.heartbeat_seq),
        }
    }

    /// When the visit starting now ends: after a dwell time, or when the shape ends it.
    pub(super) fn visit_end(&self) -> Option<Instant> {
        let dwell = self
            .ctx
            .plan
            .scenario
            .churn
            .as_ref()
            .map(|c| Instant::now() + c.dwell.sample(fastrand::f64()));
        match (dwell, self.until) {
            (Some(d), Some(u)) => Some(d.min(u)),
            (d, u) => d.or(u),
        }
    }

    /// At a dwell's end: with the scenario's `hidden` share, the user only opened a
    /// web-view (`onHide`), so the socket stays and a new dwell begins. Never when the
    /// load shape itself ends the session.
    pub(super) fn stays_hidden(&mut self) -> bool {
        let shape_ends = self.until.is_some_and(|u| Instant::now() >= u);
        let hidden = self
            .ctx
            .plan
            .scenario
            .churn
            .as_ref()
            .map_or(0.0, |c| c.hidden);
        if shape_ends || fastrand::f64() >= hidden {
            return false;
        }
        self.ctx.count(Counter::SessionsHidden);
        self.leave_at = self.visit_end();
        true
    }
}
