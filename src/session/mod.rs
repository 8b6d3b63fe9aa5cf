//! One simulated mini-program page: connect → auth → bindCard → heartbeats, reconnecting
//! when heartbeats fail or the socket goes away, until the run stops (`onUnload`).
//!
//! A session is a local task on its shard's current-thread runtime. It owns every await,
//! timer and socket of its page, and records into the shard's [`Recorder`] without locks.
//! It must never block: no file I/O, no `std::thread::sleep`, no locks held across awaits.
//!
//! Heartbeats run on a fixed timetable with a per-session phase, and their latency is
//! measured from the *scheduled* send time, so a late tester or a slow server shows up in
//! the percentiles instead of vanishing (coordinated omission).

mod context;
mod hooks;
mod page;
mod step;
mod transport;

pub use context::{Context, Plan};
pub use hooks::card_map;
pub use transport::{client_ws_config, ConnectFailure, Stream};

use page::{Outcome, Session, EVER_AUTHENTICATED, EVER_BOUND, EVER_CONNECTED};
use step::StepNames;
use transport::{closed_cause, incoming, Incoming, Ws};

use std::pin::pin;
use std::rc::Rc;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::oneshot;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::heartbeat::{Acks, Timetable, Verdict};
use crate::load::Shape;
use crate::metrics::{Cause, Counter, ErrorKind, Metric, State};
use crate::scenario::Matcher;
use crate::script::{Hook, SessionHandle};
use crate::source;

/// Runs one session until the run stops, or until `until` when the load shape ends it
/// earlier. `gate`, for the run's first session, reports the outcome of its first connect.
/// The caller has counted the session in `ctx.running`; it is uncounted on return.
pub async fn run(
    ctx: Rc<Context>,
    id: u32,
    gate: Option<oneshot::Sender<Result<(), ConnectFailure>>>,
    until: Option<Instant>,
) {
    let mut session = Session {
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
    };
    session.ctx.count(Counter::SessionsStarted);
    if session.ctx.plan.scenario.script.is_some() {
        session.script = Some(SessionHandle::new(
            id,
            card_map(&session.ctx.plan.scenario, id),
        ));
        session.lifecycle(Hook::OnStart);
    }
    if !session.leave_requested {
        session.visits(gate).await;
    }
    if session.script.is_some() {
        session.lifecycle(Hook::OnEnd);
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
            let cause = match self.connection(gate).await {
                Outcome::Stopped => return false,
                Outcome::Left => return true,
                Outcome::Reconnect(cause) => cause,
            };
            // A reconnect is an episode: it begins when a session loses its connection
            // (or its first connect fails) and ends when it is bound again. Attempts that
            // fail inside it are counted under `connects`, not as more reconnects, so
            // the count reconciles with the connections the server saw drop.
            if self.failed_at.is_none() {
                ctx.recorder.borrow_mut().reconnect(cause);
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
        let mut ws = match failure {
            Ok(ws) => ws,
            Err(failure) => {
                ctx.error(failure.kind);
                return Outcome::Reconnect(Cause::ConnectError);
            }
        };
        ctx.record(Metric::Connect, started.elapsed());
        self.reach(EVER_CONNECTED, Counter::SessionsConnected);

        if let Some(step) = &scenario.auth {
            self.set_state(Some(State::Authenticating));
            // Boxed, like every step that is not the steady state (see `connection`).
            let exchange = Box::pin(self.exchange(&mut ws, step, StepNames::AUTH));
            if let Err(outcome) = exchange.await {
                return outcome;
            }
        }
        self.reach(EVER_AUTHENTICATED, Counter::SessionsAuthenticated);

        if let Some(step) = &scenario.bind_card {
            self.set_state(Some(State::Binding));
            let exchange = Box::pin(self.exchange(&mut ws, step, StepNames::BIND_CARD));
            if let Err(outcome) = exchange.await {
                return outcome;
            }
        }
        self.reach(EVER_BOUND, Counter::SessionsBound);
        self.set_state(Some(State::Bound));
        if let Some(failed_at) = self.failed_at.take() {
            ctx.record(Metric::Reconnect, failed_at.elapsed());
        }
        self.attempt = 0;
        self.heartbeats(&mut ws).await
    }

    /// Heartbeats on the timetable until failures exceed the limit, the socket goes away,
    /// the page leaves, or the run stops. The rules of the timetable and of matching acks
    /// to heartbeats live in [`crate::heartbeat`]; this loop owns the timer and socket.
    async fn heartbeats(&mut self, ws: &mut Ws) -> Outcome {
        let ctx = self.ctx.clone();
        let hb = &ctx.plan.scenario.heartbeat;
        let scripted_message = self.has(Hook::Heartbeat);
        let scripted_ack = self.has(Hook::HeartbeatReply);
        let expect: Option<&Matcher> = hb.expect.as_ref();
        let acked = expect.is_some() || scripted_ack;
        let mut timetable = Timetable::new(Instant::now(), self.id, hb.interval);
        let mut acks = Acks::default();
        let mut failures = 0u32;
        // One timer for the next slot, ack deadline and leave, whichever is first: every
        // idle session holds its timers, so fewer is smaller.
        let mut timer = pin!(sleep_until(timetable.wake()));
        let mut stopped = pin!(ctx.stop.cancelled());
        let outcome = loop {
            // While a heartbeat is in its window, the next one waits for its fate: the ack
            // window is always the full `timeout`.
            let mut wake = acks.deadline().unwrap_or_else(|| timetable.wake());
            if let Some(leave_at) = self.leave_at {
                wake = wake.min(leave_at);
            }
            if timer.deadline() != wake {
                timer.as_mut().reset(wake);
            }
            // Heartbeats whose fate was decided as failed in this turn.
            let mut failed = 0;
            tokio::select! {
                biased;
                _ = &mut stopped => {
                    Box::pin(transport::close(&self.ctx, ws)).await;
                    break Outcome::Stopped;
                }
                item = ws.next() => match incoming(&ctx, item) {
                    Incoming::Json(value) => {
                        let is_ack = if scripted_ack {
                            match self.judge(Hook::HeartbeatReply, &value) {
                                Ok(verdict) => verdict == Some(true),
                                Err(action) => break self.after_hook_error(ws, action).await,
                            }
                        } else {
                            expect.is_some_and(|e| e.matches(&value))
                        };
                        if let Some(outcome) = self.requested(ws).await {
                            break outcome;
                        }
                        let seq = expect.and_then(|e| e.seq_of(&value));
                        let settled = is_ack
                            && acks.ack(Instant::now(), seq, &mut |v| {
                                settle(&ctx, v, &mut failures)
                            });
                        if !settled {
                            if let Some(outcome) = self.unmatched(ws, &value).await {
                                break outcome;
                            }
                        }
                    }
                    Incoming::NotJson => ctx.count(Counter::MessagesUnmatched),
                    Incoming::Control => {}
                    Incoming::Closed(kind) => {
                        ctx.error(kind);
                        break Outcome::Reconnect(closed_cause(kind));
                    }
                },
                _ = &mut timer => {
                    let now = Instant::now();
                    if self.leave_at.is_some_and(|l| now >= l) {
                        if self.stays_hidden() {
                            continue;
                        }
                        Box::pin(transport::close(&self.ctx, ws)).await;
                        break Outcome::Left;
                    }
                    if acks.deadline().is_some_and(|until| now >= until)
                        && !acks.close_window(&mut |v| settle(&ctx, v, &mut failures))
                    {
                        ctx.error(ErrorKind::HeartbeatTimeout);
                        ctx.count(Counter::HeartbeatsFailed);
                        failed += 1;
                    }
                    let may_send = !acks.in_window() && failures + failed <= hb.max_failures;
                    // Only where latency is measured from lives across the awaits below:
                    // every byte held there is held by every idle session.
                    let from = may_send.then(|| timetable.take(now, hb.interval)).flatten().map(|slot| {
                        for _ in 0..slot.skipped {
                            ctx.count(Counter::HeartbeatsSkipped);
                        }
                        ctx.record(Metric::ScheduleLag, slot.lag);
                        slot.from
                    });
                    if let Some(from) = from {
                        self.heartbeat_seq = self.heartbeat_seq.wrapping_add(1);
                        let message = if scripted_message {
                            match self.message(Hook::Heartbeat, hb.send.as_ref()) {
                                Ok(built) => built,
                                Err(action) => break self.after_hook_error(ws, action).await,
                            }
                        } else {
                            self.heartbeat_message()
                        };
                        if let Some(outcome) = self.requested(ws).await {
                            break outcome;
                        }
                        if ws.send(Message::Text(message)).await.is_ok() {
                            ctx.count(Counter::HeartbeatsSent);
                            if acked {
                                let until = Instant::now() + hb.timeout;
                                acks.sent(u64::from(self.heartbeat_seq), from, until);
                            } else {
                                failures = 0; // the article's rule: a sent heartbeat is health
                            }
                        } else {
                            ctx.error(ErrorKind::SendFailed);
                            ctx.count(Counter::HeartbeatsFailed);
                            failed += 1;
                        }
                    }
                }
            }
            if std::mem::take(&mut self.fail_requested) {
                // A hook judged this connection unhealthy (`session.fail()`).
                ctx.count(Counter::HeartbeatsFailed);
                failed += 1;
            }
            if failed > 0 {
                failures += failed;
                if failures > hb.max_failures {
                    Box::pin(transport::abandon(ws)).await;
                    break Outcome::Reconnect(Cause::Heartbeat);
                }
            }
        };
        // Acks that arrived but still awaited attribution count; the connection's
        // failure streak ends with it.
        acks.finish(&mut |v| settle(&ctx, v, &mut 0));
        outcome
    }

    /// The heartbeat without a hook: the same every time, so built once and shared (not
    /// held in the heartbeat loop, whose every byte every idle session pays for). With
    /// `{{ heartbeat.seq }}` it is rendered for each heartbeat.
    fn heartbeat_message(&mut self) -> Utf8Bytes {
        let Some(template) = self.ctx.plan.scenario.heartbeat.send.as_ref() else {
            return Utf8Bytes::from_static("");
        };
        if let Some(fixed) = template.fixed() {
            return fixed.clone();
        }
        if template.uses_heartbeat_seq() {
            return template.render(self.vars());
        }
        if self.heartbeat.is_none() {
            self.heartbeat = Some(template.render(self.vars()));
        }
        self.heartbeat.clone().expect("rendered above")
    }
}

/// Records what the ack book settled: an acked heartbeat (the connection is healthy
/// again) or a late ack. Late acks are measured too, from their heartbeat's schedule, so
/// slow replies stay in the percentiles instead of vanishing with their timeouts.
fn settle(ctx: &Context, verdict: Verdict, failures: &mut u32) {
    match verdict {
        Verdict::Acked(latency) => {
            ctx.record(Metric::Heartbeat, latency);
            ctx.count(Counter::HeartbeatsAcked);
            *failures = 0;
        }
        Verdict::Late(latency) => {
            ctx.record(Metric::Heartbeat, latency);
            ctx.count(Counter::HeartbeatsLate);
        }
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;
    use crate::metrics::Recorder;
    use std::cell::{Cell, RefCell};
    use std::sync::atomic::AtomicU32;
    use std::sync::Arc;
    use tokio_tungstenite::tungstenite::ClientRequestBuilder;
    use tokio_util::sync::CancellationToken;

    /// Every idle session keeps its whole future in memory; connect, auth, bindCard and
    /// close are boxed so that only the heartbeat state is paid for by idle sessions.
    /// A regression here costs memory at 10k sessions (benches/memory.sh measures it).
    #[test]
    fn an_idle_session_stays_small() {
        let scenario = crate::scenario::parse(
            "heartbeat:\n  send: {type: heartBeat}\n",
            std::path::Path::new("t.yaml"),
            &Default::default(),
        )
        .unwrap();
        let plan = Arc::new(Plan {
            scenario: Arc::new(scenario),
            addr: ([127, 0, 0, 1], 1).into(),
            sources: vec![[127, 0, 0, 1].into(), [127, 0, 0, 2].into()],
            request: ClientRequestBuilder::new("ws://127.0.0.1:1/".parse().unwrap()),
            tls: None,
            ws_config: client_ws_config(),
        });
        let ctx = Rc::new(Context {
            plan,
            recorder: RefCell::new(Recorder::new()),
            gauges: Cell::new([0; State::COUNT]),
            stop: CancellationToken::new(),
            running: Arc::new(AtomicU32::new(1)),
            active: Arc::default(),
        });
        let future = run(ctx, 0, None, None);
        let size = std::mem::size_of_val(&future);
        assert!(size <= 2048, "session future is {size} bytes");
        assert!(
            std::mem::size_of::<Ws>() <= 512,
            "{}",
            std::mem::size_of::<Ws>()
        );
    }
}

/// The heartbeat machine on tokio's paused clock, against an in-memory server whose every
/// reply time is known: latencies come out exact to the microsecond, so these tests pin
/// down the clock rules (core idea 3) rather than approximate them.
#[cfg(test)]
mod clock_tests {
    use super::*;
    use crate::metrics::Recorder;
    use std::cell::{Cell, RefCell};
    use std::sync::atomic::AtomicU32;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::time::advance;
    use tokio_tungstenite::tungstenite::ClientRequestBuilder;
    use tokio_util::sync::CancellationToken;

    const MS: u64 = 1_000; // µs

    /// A server that answers heartbeat `n` (from 1) `reply(n)` after receiving it, or
    /// never (`None`). Replies leave in the order their heartbeats arrived (a slow reply
    /// holds back the ones after it), as on any server that answers one stream in order.
    /// It echoes a `seq` field when the heartbeat has one, and returns when the client
    /// closes.
    async fn server(
        stream: tokio::io::DuplexStream,
        reply: impl Fn(u64) -> Option<Duration>,
        seen: Rc<RefCell<Vec<Instant>>>,
    ) {
        let ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, String)>();
        let writer = tokio::task::spawn_local(async move {
            while let Some((due, ack)) = rx.recv().await {
                tokio::time::sleep_until(due).await;
                if sink.send(Message::Text(ack.into())).await.is_err() {
                    return;
                }
            }
        });
        let mut n = 0;
        while let Some(Ok(message)) = stream.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            n += 1;
            seen.borrow_mut().push(Instant::now());
            let Some(delay) = reply(n) else { continue };
            let heartbeat: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            let ack = match heartbeat.get("seq") {
                Some(seq) => format!(r#"{{"msgType":"heartBeat_ack","seq":{seq}}}"#),
                None => r#"{"msgType":"heartBeat_ack"}"#.to_string(),
            };
            let _ = tx.send((Instant::now() + delay, ack));
        }
        drop(tx);
        let _ = writer.await;
    }

    /// What one bound connection did.
    struct Run {
        recorder: Recorder,
        outcome: Outcome,
        /// When the server received each heartbeat, from the start.
        seen: Vec<Duration>,
    }

    impl Run {
        fn count(&self, counter: Counter) -> u64 {
            self.recorder.counter(counter)
        }
        /// A histogram's values in µs, one per sample, each at its bucket's low end.
        fn values(&self, metric: Metric) -> Vec<u64> {
            let h = self.recorder.histogram(metric);
            let mut out = Vec::new();
            for v in h.iter_recorded() {
                for _ in 0..v.count_at_value() {
                    out.push(h.lowest_equivalent(v.value_iterated_to()));
                }
            }
            out
        }
        /// Whether the recorded values are exactly these, to the histogram's resolution.
        fn assert_values(&self, metric: Metric, expected_ms: &[f64]) {
            let h = self.recorder.histogram(metric);
            let mut expected: Vec<u64> = expected_ms
                .iter()
                // The recorder counts anything under 1 µs as 1 µs.
                .map(|ms| h.lowest_equivalent(((ms * MS as f64) as u64).max(1)))
                .collect();
            expected.sort_unstable();
            assert_eq!(self.values(metric), expected, "{}", metric.name());
        }
    }

    /// Session `id` of a scenario with a 100 ms heartbeat, already bound to a server that
    /// answers as `reply` says, heartbeats on the paused clock until `leave_after`.
    /// `drive` runs beside it and may jump the clock to make the tester late.
    async fn heartbeat_for<F: std::future::Future<Output = ()>>(
        id: u32,
        extra: &str,
        reply: impl Fn(u64) -> Option<Duration> + 'static,
        leave_after: Duration,
        drive: impl FnOnce(Instant) -> F,
    ) -> Run {
        let yaml = format!("heartbeat:\n  interval: 100ms\n  timeout: 90ms\n{extra}");
        let scenario =
            crate::scenario::parse(&yaml, std::path::Path::new("t.yaml"), &Default::default())
                .unwrap();
        let plan = Arc::new(Plan {
            scenario: Arc::new(scenario),
            addr: ([127, 0, 0, 1], 1).into(),
            request: ClientRequestBuilder::new("ws://127.0.0.1:1/".parse().unwrap()),
            tls: None,
            ws_config: client_ws_config(),
            sources: Vec::new(),
        });
        let ctx = Rc::new(Context {
            plan,
            recorder: RefCell::new(Recorder::new()),
            gauges: Cell::new([0; State::COUNT]),
            stop: CancellationToken::new(),
            running: Arc::new(AtomicU32::new(1)),
            active: Arc::default(),
        });
        let (client, server_end) = tokio::io::duplex(64 * 1024);
        let seen = Rc::new(RefCell::new(Vec::new()));
        let local = tokio::task::LocalSet::new();
        local.spawn_local(server(server_end, reply, seen.clone()));
        let t0 = Instant::now();
        let outcome = local
            .run_until(async {
                let (mut ws, _) = tokio_tungstenite::client_async_with_config(
                    "ws://127.0.0.1:1/",
                    Stream::Memory(client),
                    Some(client_ws_config()),
                )
                .await
                .unwrap();
                assert_eq!(
                    Instant::now(),
                    t0,
                    "the handshake takes no time on this clock"
                );
                let mut session = Session {
                    ctx: ctx.clone(),
                    id,
                    state: None,
                    ever: 0,
                    attempt: 0,
                    failed_at: None,
                    heartbeat: None,
                    until: None,
                    leave_at: Some(t0 + leave_after),
                    script: None,
                    leave_requested: false,
                    fail_requested: false,
                    heartbeat_seq: 0,
                };
                // `biased`: the session's first slot is taken before the driver moves on.
                let beats = session.heartbeats(&mut ws);
                let (outcome, ()) = tokio::join!(beats, drive(t0));
                outcome
            })
            .await;
        local.await;
        let recorder = ctx.recorder.borrow().clone();
        let seen = seen.borrow().iter().map(|at| *at - t0).collect();
        Run {
            recorder,
            outcome,
            seen,
        }
    }

    const EXPECT: &str = "  send: {type: heartBeat}\n  expect: {msgType: heartBeat_ack}\n";

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    async fn idle(_: Instant) {}

    #[tokio::test(start_paused = true)]
    async fn on_time_heartbeats_measure_the_round_trip_exactly() {
        // Session 0's phase is 0: slots at 0, 100, ..., 900 ms; it wakes 1 ms early,
        // which the paused clock makes exact, and measures from its send.
        let run = heartbeat_for(0, EXPECT, |_| Some(ms(7)), ms(950), idle).await;
        assert!(matches!(run.outcome, Outcome::Left));
        assert_eq!(run.count(Counter::HeartbeatsSent), 10);
        assert_eq!(run.count(Counter::HeartbeatsAcked), 10);
        run.assert_values(Metric::Heartbeat, &[7.0; 10]);
        run.assert_values(Metric::ScheduleLag, &[0.0; 10]);
        // The first slot is due at once; the others wake 1 ms early.
        let expected: Vec<Duration> = (0..10).map(|n| ms((n * 100).max(1) - 1)).collect();
        assert_eq!(run.seen, expected);
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_tester_measures_from_the_schedule_and_sends_one_heartbeat_not_a_burst() {
        let drive = |t0: Instant| async move {
            // Heartbeat 2 is due at 100 ms: the tester is stuck from 50 ms to 130 ms.
            tokio::time::sleep_until(t0 + ms(50)).await;
            advance(ms(80)).await;
            // Heartbeat 3 is due at 200 ms: stuck from 150 ms to 450 ms, so the slots at
            // 300 and 400 ms are skipped and one heartbeat goes out at 450 ms.
            tokio::time::sleep_until(t0 + ms(150)).await;
            advance(ms(300)).await;
        };
        let run = heartbeat_for(0, EXPECT, |_| Some(ms(10)), ms(750), drive).await;
        // Slots 0, 100 (late), 200 (late), 500, 600, 700.
        assert_eq!(run.count(Counter::HeartbeatsSent), 6);
        assert_eq!(run.count(Counter::HeartbeatsSkipped), 2);
        assert_eq!(
            run.seen,
            vec![ms(0), ms(130), ms(450), ms(499), ms(599), ms(699)]
        );
        // Latency from the schedule: 30 ms of lag + 10 ms, and 250 ms of lag + 10 ms.
        run.assert_values(Metric::Heartbeat, &[10.0, 40.0, 260.0, 10.0, 10.0, 10.0]);
        run.assert_values(Metric::ScheduleLag, &[0.0, 30.0, 250.0, 0.0, 0.0, 0.0]);
        assert_eq!(run.count(Counter::HeartbeatsFailed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_ack_window_is_the_full_timeout_from_the_send() {
        let drive = |t0: Instant| async move {
            // Heartbeat 2, due at 100 ms, goes out 30 ms late (the tester is stuck from
            // 85 ms, after heartbeat 1's ack, to 130 ms).
            tokio::time::sleep_until(t0 + ms(85)).await;
            advance(ms(45)).await;
        };
        // Every reply takes 80 ms: heartbeat 2's arrives at 210 ms, 110 ms after its slot:
        // past a window counted from the schedule (90 ms), inside one counted from the
        // send. Heartbeat 3, due at 200 ms, waits for that fate and goes out at 210 ms.
        let run = heartbeat_for(0, EXPECT, |_| Some(ms(80)), ms(350), drive).await;
        assert_eq!(run.count(Counter::HeartbeatsFailed), 0);
        assert_eq!(run.count(Counter::HeartbeatsAcked), 3);
        assert_eq!(run.seen, vec![ms(0), ms(130), ms(210), ms(299)]);
        run.assert_values(Metric::Heartbeat, &[80.0, 110.0, 90.0]);
        run.assert_values(Metric::ScheduleLag, &[0.0, 30.0, 10.0, 0.0]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_ack_is_exactly_one_failure() {
        // Every 7th ack is dropped: over 70 heartbeats, 10 failures and nothing else.
        let run = heartbeat_for(
            0,
            EXPECT,
            |n| (n % 7 != 0).then_some(ms(3)),
            ms(7_050),
            idle,
        )
        .await;
        assert!(matches!(run.outcome, Outcome::Left));
        assert_eq!(run.count(Counter::HeartbeatsSent), 71);
        assert_eq!(run.count(Counter::HeartbeatsFailed), 10);
        assert_eq!(run.recorder.errors[ErrorKind::HeartbeatTimeout.index()], 10);
        assert_eq!(run.count(Counter::HeartbeatsLate), 0);
        assert_eq!(run.count(Counter::HeartbeatsAcked), 61);
        assert_eq!(run.count(Counter::MessagesUnmatched), 0);
        run.assert_values(Metric::Heartbeat, &[3.0; 61]);
    }

    #[tokio::test(start_paused = true)]
    async fn one_slow_reply_is_one_failure_and_one_late_ack() {
        let run = heartbeat_for(
            0,
            EXPECT,
            |n| Some(if n == 4 { ms(95) } else { ms(5) }),
            ms(950),
            idle,
        )
        .await;
        assert_eq!(run.count(Counter::HeartbeatsFailed), 1);
        assert_eq!(run.count(Counter::HeartbeatsLate), 1);
        assert_eq!(run.count(Counter::HeartbeatsAcked), 9);
        // The late ack at its true latency; the heartbeats after it at theirs.
        let mut expected = vec![5.0; 9];
        expected.push(95.0);
        run.assert_values(Metric::Heartbeat, &expected);
    }

    #[tokio::test(start_paused = true)]
    async fn every_reply_slower_than_the_timeout_reconnects_after_max_failures_plus_one() {
        let run = heartbeat_for(0, EXPECT, |_| Some(ms(95)), ms(5_000), idle).await;
        assert!(matches!(run.outcome, Outcome::Reconnect(Cause::Heartbeat)));
        assert_eq!(run.count(Counter::HeartbeatsSent), 3);
        assert_eq!(run.count(Counter::HeartbeatsFailed), 3);
        // The first two acks came late (the third's connection was given up first), and
        // no sample is below the server's delay.
        assert_eq!(run.count(Counter::HeartbeatsLate), 2);
        run.assert_values(Metric::Heartbeat, &[95.0, 95.0]);
    }

    #[tokio::test(start_paused = true)]
    async fn sequence_numbers_match_replies_slower_than_the_interval() {
        let seq = "  send: {type: heartBeat, seq: \"{{ heartbeat.seq }}\"}\n  \
                   expect: {msgType: heartBeat_ack, seq: \"{{ heartbeat.seq }}\"}\n  \
                   max_failures: 100\n";
        // Every reply takes 150 ms, longer than the interval: without ids this would read
        // as one dropped ack and quick replies. With them, every heartbeat fails and every
        // ack is late at its true latency.
        let run = heartbeat_for(0, seq, |_| Some(ms(150)), ms(1_000), idle).await;
        // Slots 0 to 1000 ms (the last one woken at 999 ms); the last is still in its
        // window at the leave.
        assert_eq!(run.count(Counter::HeartbeatsSent), 11);
        assert_eq!(run.count(Counter::HeartbeatsAcked), 0);
        assert_eq!(run.count(Counter::HeartbeatsFailed), 10);
        let late = run.count(Counter::HeartbeatsLate) as usize;
        assert!(late >= 4, "{late}");
        run.assert_values(Metric::Heartbeat, &vec![150.0; late]);
    }

    #[tokio::test(start_paused = true)]
    async fn phases_spread_sessions_over_the_interval() {
        let mut firsts = Vec::new();
        for id in 1..=10 {
            let run = heartbeat_for(id, EXPECT, |_| Some(ms(1)), ms(150), idle).await;
            firsts.push(run.seen[0]);
        }
        // Golden-ratio phases: ten sessions, ten different milliseconds of the interval,
        // no two within 4 ms of each other.
        firsts.sort();
        for pair in firsts.windows(2) {
            assert!(pair[1] - pair[0] >= ms(4), "{firsts:?}");
        }
        assert!(firsts[9] - firsts[0] >= ms(80), "{firsts:?}");
    }
}
