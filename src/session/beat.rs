//! The heartbeat loop of a bound connection: sending on the timetable, matching acks,
//! counting failures, and ending the connection when they exceed the limit, the socket
//! goes away, the page leaves or the run stops.
//!
//! It owns the loop's alarm (on the shard's clock, see `alarm`) and its use of the
//! socket while bound. The rules of the
//! timetable and of matching acks to heartbeats live in [`crate::heartbeat`] and must stay
//! there, pure and tested on their own; this file must not grow rules of its own. Every
//! byte held across this loop's awaits is held by every idle session.

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use super::context::Context;
use super::page::{Outcome, Session};
use super::transport::{self, closed_cause, incoming_as, Incoming, Ws};
use crate::heartbeat::{Acks, Timetable, Verdict};
use crate::metrics::{Cause, Counter, ErrorKind, Metric};
use crate::scenario::{Matcher, Reading};
use crate::script::Hook;

impl Session {
    /// Heartbeats on the timetable until failures exceed the limit, the socket goes away,
    /// the page leaves, or the run stops. The rules of the timetable and of matching acks
    /// to heartbeats live in [`crate::heartbeat`]; this loop owns the alarm and socket.
    pub(super) async fn heartbeats(&mut self, ws: &mut Ws) -> Outcome {
        let ctx = self.ctx.clone();
        let hb = &ctx.plan.scenario.heartbeat;
        let scripted_message = self.has(Hook::HEARTBEAT);
        let scripted_ack = self.has(Hook::HEARTBEAT_REPLY);
        let expect: Option<&Matcher> = hb.expect.as_ref();
        let acked = expect.is_some() || scripted_ack;
        let mut timetable = Timetable::new(Instant::now(), self.id, hb.interval);
        let mut acks = Acks::default();
        let mut failures = 0u32;
        // One alarm for the next slot, ack deadline and leave, whichever is first: every
        // idle session holds it, so fewer is smaller. An alarm on the shard's clock, not
        // a tokio `Sleep` of its own: moving it costs no timer wheel work (see `alarm`).
        let mut alarm = ctx.alarms.alarm(timetable.wake());
        let outcome = loop {
            // While a heartbeat is in its window, the next one waits for its fate: the ack
            // window is always the full `timeout`.
            let mut wake = acks.deadline().unwrap_or_else(|| timetable.wake());
            if let Some(leave_at) = self.leave_at {
                wake = wake.min(leave_at);
            }
            alarm.set(wake);
            // Heartbeats whose fate was decided as failed in this turn.
            let mut failed = 0;
            tokio::select! {
                biased;
                () = stopping(&ctx) => {
                    Box::pin(transport::close(&self.ctx, ws)).await;
                    break Outcome::Stopped;
                }
                // Acks are read from the text, without building a `Value`, unless a hook
                // is to see the replies (`heartbeat_reply`, or `on_message` for those that
                // are not acks). Decided here, not kept: every idle session would keep it.
                item = ws.next() => match reply(
                    &ctx,
                    item,
                    expect.filter(|_| !scripted_ack && !self.has(Hook::ON_MESSAGE)),
                ) {
                    Incoming::Json(reply) => {
                        let (is_ack, seq) = match &reply {
                            Reply::Read(reading) => (reading.matches, reading.seq),
                            Reply::Parsed(value) => {
                                let is_ack = if scripted_ack {
                                    match self.judge(Hook::HEARTBEAT_REPLY, value) {
                                        Ok(verdict) => verdict == Some(true),
                                        Err(action) => break self.after_hook_error(ws, action).await,
                                    }
                                } else {
                                    expect.is_some_and(|e| e.matches(value))
                                };
                                (is_ack, expect.filter(|_| is_ack).and_then(|e| e.seq_of(value)))
                            }
                        };
                        if let Some(outcome) = self.requested(ws).await {
                            break outcome;
                        }
                        let settled = is_ack
                            && acks.ack(Instant::now(), seq, &mut |v| {
                                settle(&ctx, v, &mut failures)
                            });
                        if !settled {
                            match &reply {
                                Reply::Parsed(value) => {
                                    if let Some(outcome) = self.unmatched(ws, value).await {
                                        break outcome;
                                    }
                                }
                                // Read only when no `on_message` hook wants to see it.
                                Reply::Read(_) => ctx.count(Counter::MessagesUnmatched),
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
                _ = &mut alarm => {
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
                            match self.message(Hook::HEARTBEAT, hb.send.as_ref()) {
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

/// Ready once the shard has seen the run stop ([`Context::stopping`]). It registers no
/// waker: the shard rings every alarm when it stops ([`Context::stop_beats`]), and that
/// wakes the loop, which polls this before its socket and its alarm.
fn stopping(ctx: &Context) -> impl std::future::Future<Output = ()> + '_ {
    std::future::poll_fn(move |_| {
        if ctx.stopping() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
}

/// A reply as the heartbeat loop takes it.
enum Reply {
    /// Read by the ack matcher from the text: whether it is an ack, and its number.
    Read(Reading),
    /// Parsed, for the hooks (and the matcher) to look at.
    Parsed(serde_json::Value),
}

/// Classifies what the socket yielded: a data message is read by `read_acks` when given
/// (no `Value` is built), parsed otherwise.
fn reply(
    ctx: &Context,
    item: Option<Result<Message, tungstenite::Error>>,
    read_acks: Option<&Matcher>,
) -> Incoming<Reply> {
    match read_acks {
        Some(matcher) => incoming_as(ctx, item, |data| matcher.read(data).map(Reply::Read)),
        None => incoming_as(ctx, item, |data| {
            serde_json::from_slice(data).map(Reply::Parsed)
        }),
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

/// The heartbeat machine on tokio's paused clock, against an in-memory server whose every
/// reply time is known: latencies come out exact to the microsecond, so these tests pin
/// down the clock rules (core idea 3) rather than approximate them.
#[cfg(test)]
mod clock_tests {
    use super::*;
    use crate::metrics::Recorder;

    use crate::session::transport::{client_ws_config, Stream};
    use std::cell::RefCell;
    use std::rc::Rc;

    use std::time::Duration;
    use tokio::time::advance;

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
        /// When the heartbeat loop returned, from the start.
        ended: Duration,
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
    /// `drive` runs beside it and may jump the clock to make the tester late, or stop the
    /// shard.
    async fn heartbeat_for<F: std::future::Future<Output = ()>>(
        id: u32,
        extra: &str,
        reply: impl Fn(u64) -> Option<Duration> + 'static,
        leave_after: Duration,
        drive: impl FnOnce(Instant, Rc<Context>) -> F,
    ) -> Run {
        let yaml = format!("heartbeat:\n  interval: 100ms\n  timeout: 90ms\n{extra}");
        let ctx = Context::for_test(&yaml, Vec::new());
        let (client, server_end) = tokio::io::duplex(64 * 1024);
        let seen = Rc::new(RefCell::new(Vec::new()));
        let local = tokio::task::LocalSet::new();
        local.spawn_local(server(server_end, reply, seen.clone()));
        let t0 = Instant::now();
        let outcome = local
            .run_until(async {
                let mut ws = crate::session::ws::client(
                    "ws://127.0.0.1:1/",
                    Stream::Memory(client),
                    client_ws_config(),
                )
                .await
                .unwrap();
                assert_eq!(
                    Instant::now(),
                    t0,
                    "the handshake takes no time on this clock"
                );
                let mut session = Session::new(ctx.clone(), id, None);
                session.leave_at = Some(t0 + leave_after);
                // `biased`: the session's first slot is taken before the driver moves on.
                let beats = async {
                    let outcome = session.heartbeats(&mut ws).await;
                    (outcome, Instant::now() - t0)
                };
                let (ended, ()) = tokio::join!(beats, drive(t0, ctx.clone()));
                ended
            })
            .await;
        let (outcome, ended) = outcome;
        local.await;
        let recorder = ctx.recorder.borrow().clone();
        let seen = seen.borrow().iter().map(|at| *at - t0).collect();
        Run {
            recorder,
            outcome,
            seen,
            ended,
        }
    }

    const EXPECT: &str = "  send: {type: heartBeat}\n  expect: {msgType: heartBeat_ack}\n";

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    async fn idle(_: Instant, _: Rc<Context>) {}

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
    async fn the_shard_stopping_ends_the_loop_at_once_with_a_polite_close() {
        for (stop, sent, acked) in [(250, 3, 3), (205, 3, 2)] {
            let drive = |t0: Instant, ctx: Rc<Context>| async move {
                // A task of its own, as the shard's is: nothing but the stop may wake the
                // session. At 205 ms heartbeat 3 (slot 200 ms) is in its window, until
                // its ack at 207 ms; at 250 ms nothing is due until 299 ms.
                tokio::task::spawn_local(async move {
                    tokio::time::sleep_until(t0 + ms(stop)).await;
                    ctx.stop_beats();
                });
            };
            let run = heartbeat_for(0, EXPECT, |_| Some(ms(7)), ms(950), drive).await;
            assert!(matches!(run.outcome, Outcome::Stopped));
            if acked == sent {
                // Nothing in flight: the close handshake takes no time on this clock.
                assert_eq!(run.ended, ms(stop));
            }
            assert_eq!(run.count(Counter::HeartbeatsSent), sent);
            assert_eq!(run.count(Counter::HeartbeatsAcked), acked);
            assert_eq!(run.count(Counter::HeartbeatsFailed), 0);
            assert_eq!(run.count(Counter::SessionsClosed), 1);
            assert_eq!(run.seen, vec![ms(0), ms(99), ms(199)]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_tester_measures_from_the_schedule_and_sends_one_heartbeat_not_a_burst() {
        let drive = |t0: Instant, _| async move {
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
        let drive = |t0: Instant, _| async move {
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
