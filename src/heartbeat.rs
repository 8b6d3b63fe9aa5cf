//! The heartbeat's two small machines, kept pure so their rules can be tested exactly:
//! the [`Timetable`] (when each heartbeat is due, and how late the tester was) and the
//! [`Acks`] book (which heartbeat an incoming ack belongs to).
//!
//! Neither awaits, sleeps or touches a socket: the session owns the timers and the I/O
//! and tells these types what happened and when. They take `now` as an argument, so a
//! test can replay any interleaving of sends, acks and deadlines to the microsecond.
//!
//! # Which heartbeat an ack belongs to
//! The article's acks carry no id. At most one heartbeat is in its ack window at a time
//! (the next one waits for its fate, and `timeout` is at most the interval), and the
//! server answers in order on one TCP stream. A heartbeat that timed out is *owed* an ack
//! that may still come late, or may never come (the server dropped it). Without ids:
//! - An ack while no heartbeat is in its window is the late ack of the oldest owed one,
//!   measured from that heartbeat's schedule. With nothing owed, it is unmatched.
//! - An ack while a heartbeat is in its window and nothing is owed is that heartbeat's.
//! - An ack while a heartbeat is in its window *and* heartbeats are owed is ambiguous: a
//!   late ack, or the current heartbeat's ack after the owed ones were dropped. The book
//!   waits. Once more acks have arrived than heartbeats are owed, the order decides: the
//!   first are the owed heartbeats' late acks, oldest first, and the next is the current
//!   one's. If the window closes first, the newest explanation wins: the last ack was the
//!   current heartbeat's, the earlier ones were late acks, and the rest were dropped.
//!   A server that drops one ack now and then thus costs one failed heartbeat per drop,
//!   never a chain of them.
//! - An owed heartbeat stops being owed when a newer heartbeat is acked: in order, its ack
//!   would have come first.
//!
//! The limit: a server whose every reply takes longer than the interval looks exactly
//! like one that dropped the first ack and answers the rest quickly. Without ids, that
//! case reads as healthy heartbeats with a latency one interval too short. Scenarios for
//! such servers should put `{{ heartbeat.seq }}` in the heartbeat and match it in
//! `expect`: then every ack is matched by its sequence number, late ones included.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Most owed heartbeats remembered; beyond it the oldest is forgotten (its ack, if it
/// ever came, would count as unmatched). Reached only with a very large `max_failures`.
const MAX_OWED: usize = 64;

/// When to wake for a heartbeat due at `due`. tokio's timer has 1 ms resolution and
/// rounds deadlines up, which would make every heartbeat up to 1 ms late and put that
/// lag into the latency. Waking up to 1 ms early keeps the timetable at millisecond
/// resolution without a systematic delay.
pub fn wake_for(due: Instant) -> Instant {
    due.checked_sub(Duration::from_millis(1)).unwrap_or(due)
}

/// Spreads heartbeat phases evenly over the interval (golden-ratio sequence), so 10k
/// sessions bound in the same millisecond do not heartbeat in the same millisecond.
pub fn phase(id: u32, interval: Duration) -> Duration {
    const GOLDEN: f64 = 0.618_033_988_749_895;
    let fraction = (f64::from(id) * GOLDEN).fract();
    interval.mul_f64(fraction)
}

/// One connection's heartbeat timetable: slot *n* is due at `start + phase + n·interval`.
/// The interval is passed in rather than kept: every idle session holds a timetable.
#[derive(Debug, Clone, Copy)]
pub struct Timetable {
    /// When the next heartbeat is due.
    next: Instant,
}

/// A heartbeat the timetable released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// When it was due.
    pub scheduled: Instant,
    /// Where its latency is measured from: the schedule when the tester is late, the
    /// actual send when it woke early (by less than the timer's 1 ms), so the round trip
    /// is never understated.
    pub from: Instant,
    /// How late the tester is against the schedule (zero when early).
    pub lag: Duration,
    /// Slots passed over because the tester woke more than an interval late: like a
    /// page's timer, it sends one late heartbeat, not a burst.
    pub skipped: u64,
}

impl Timetable {
    /// The timetable of a connection bound at `start`, for session `id`.
    pub fn new(start: Instant, id: u32, interval: Duration) -> Timetable {
        Timetable {
            next: start + phase(id, interval),
        }
    }

    /// When the session should wake for the next heartbeat.
    pub fn wake(&self) -> Instant {
        wake_for(self.next)
    }

    /// The heartbeat due at `now`, if one is, and the timetable moves on past `now`.
    pub fn take(&mut self, now: Instant, interval: Duration) -> Option<Slot> {
        if now < self.wake() {
            return None;
        }
        let scheduled = self.next;
        self.next += interval;
        let mut skipped = 0;
        while self.next <= now {
            self.next += interval;
            skipped += 1;
        }
        Some(Slot {
            scheduled,
            from: scheduled.min(now),
            lag: now.saturating_duration_since(scheduled),
            skipped,
        })
    }
}

/// What the book decided about an ack or a closed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The heartbeat in its window was acked, with this latency.
    Acked(Duration),
    /// An owed heartbeat's ack arrived late, with this latency.
    Late(Duration),
}

/// A heartbeat sent and in its ack window.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// Its sequence number.
    seq: u64,
    /// Where its latency is measured from.
    from: Instant,
    /// When its window closes.
    until: Instant,
}

/// What the book keeps only once something went wrong: boxed, so that a healthy idle
/// session pays one pointer for it.
#[derive(Debug, Default)]
struct Trouble {
    /// Heartbeats that timed out and may still be acked: (seq, measured from), oldest
    /// first.
    owed: VecDeque<(u64, Instant)>,
    /// Acks that arrived during the current window while heartbeats were owed, not yet
    /// attributed (acks without ids only).
    waiting: Vec<Instant>,
}

/// The heartbeats of one connection that are waiting for their acks.
#[derive(Debug, Default)]
pub struct Acks {
    /// The heartbeat in its ack window, if any.
    window: Option<Window>,
    /// Owed heartbeats and undecided acks; `None` while all is well.
    trouble: Option<Box<Trouble>>,
}

impl Acks {
    /// A heartbeat was sent and its window opened.
    pub fn sent(&mut self, seq: u64, from: Instant, until: Instant) {
        debug_assert!(
            self.window.is_none(),
            "one heartbeat in its window at a time"
        );
        self.window = Some(Window { seq, from, until });
    }

    /// Whether a heartbeat is in its ack window (the next one waits for its fate).
    pub fn in_window(&self) -> bool {
        self.window.is_some()
    }

    /// When the current window closes.
    pub fn deadline(&self) -> Option<Instant> {
        self.window.map(|w| w.until)
    }

    /// How many timed-out heartbeats may still be acked.
    pub fn owed(&self) -> usize {
        self.trouble.as_ref().map_or(0, |t| t.owed.len())
    }

    /// An ack arrived at `now`. `seq` is its sequence number when the scenario echoes
    /// one. Gives `out` what it settled (`Late` and `Acked` verdicts, in order; none
    /// while the ack waits to be attributed). False when the ack belongs to no heartbeat
    /// the book knows: it is unmatched.
    pub fn ack(&mut self, now: Instant, seq: Option<u64>, out: &mut impl FnMut(Verdict)) -> bool {
        match seq {
            Some(seq) => self.ack_by_seq(now, seq, out),
            None => self.ack_in_order(now, out),
        }
    }

    fn ack_by_seq(&mut self, now: Instant, seq: u64, out: &mut impl FnMut(Verdict)) -> bool {
        if let Some(w) = self.window.filter(|w| w.seq == seq) {
            out(Verdict::Acked(now - w.from));
            self.window = None;
            self.forget_older_than(seq);
            return true;
        }
        let Some(trouble) = self.trouble.as_mut() else {
            return false;
        };
        let Some(i) = trouble.owed.iter().position(|(s, _)| *s == seq) else {
            return false;
        };
        let (_, from) = trouble.owed.remove(i).expect("found above");
        out(Verdict::Late(now - from));
        self.tidy();
        true
    }

    fn ack_in_order(&mut self, now: Instant, out: &mut impl FnMut(Verdict)) -> bool {
        let owed = self.owed();
        match (self.window, owed) {
            (None, 0) => false,
            (None, _) => {
                let trouble = self.trouble.as_mut().expect("owed > 0");
                let (_, from) = trouble.owed.pop_front().expect("owed > 0");
                out(Verdict::Late(now - from));
                self.tidy();
                true
            }
            (Some(w), 0) => {
                out(Verdict::Acked(now - w.from));
                self.window = None;
                true
            }
            (Some(w), owed) => {
                let trouble = self.trouble.as_mut().expect("owed > 0");
                trouble.waiting.push(now);
                if trouble.waiting.len() > owed {
                    // More acks than owed heartbeats: in order, the owed ones came first
                    // and this one is the current heartbeat's.
                    for ((_, from), at) in trouble.owed.iter().zip(&trouble.waiting) {
                        out(Verdict::Late(*at - *from));
                    }
                    out(Verdict::Acked(now - w.from));
                    self.window = None;
                    self.trouble = None;
                }
                true
            }
        }
    }

    /// The current window has closed at `now` (call at or after [`Acks::deadline`]).
    /// Gives `out` its verdicts, and returns false when the heartbeat failed (it is now
    /// owed an ack that may still come late).
    pub fn close_window(&mut self, out: &mut impl FnMut(Verdict)) -> bool {
        let Some(w) = self.window.take() else {
            return true;
        };
        let waiting = self
            .trouble
            .as_mut()
            .map(|t| std::mem::take(&mut t.waiting));
        match waiting {
            Some(waiting) if !waiting.is_empty() => {
                // Fewer acks than owed heartbeats arrived: the newest explanation wins.
                // The last ack was this heartbeat's; the ones before it were late acks of
                // the oldest owed heartbeats; the rest of the owed acks were dropped.
                let trouble = self.trouble.take().expect("waiting acks live in trouble");
                let (last, earlier) = waiting.split_last().expect("not empty");
                for ((_, from), at) in trouble.owed.iter().zip(earlier) {
                    out(Verdict::Late(*at - *from));
                }
                out(Verdict::Acked(*last - w.from));
                true
            }
            _ => {
                let trouble = self.trouble.get_or_insert_with(Box::default);
                if trouble.owed.len() == MAX_OWED {
                    trouble.owed.pop_front();
                }
                trouble.owed.push_back((w.seq, w.from));
                false
            }
        }
    }

    /// The connection ends (leave, stop or reconnect). Acks that arrived but were still
    /// waiting for attribution are settled as [`Acks::close_window`] would; a heartbeat
    /// with no ack yet stays in flight: neither acked nor failed.
    pub fn finish(&mut self, out: &mut impl FnMut(Verdict)) {
        let waiting = self.trouble.as_ref().is_some_and(|t| !t.waiting.is_empty());
        if self.window.is_some() && waiting {
            self.close_window(out);
        }
    }

    /// An exact ack of `seq`: heartbeats older than it will not be acked any more.
    fn forget_older_than(&mut self, seq: u64) {
        if let Some(trouble) = self.trouble.as_mut() {
            trouble.owed.retain(|(s, _)| *s > seq);
        }
        self.tidy();
    }

    /// Drops the trouble box once nothing is owed or waiting.
    fn tidy(&mut self) {
        if self
            .trouble
            .as_ref()
            .is_some_and(|t| t.owed.is_empty() && t.waiting.is_empty())
        {
            self.trouble = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Replays one connection's heartbeats against the book: every `interval` a heartbeat
    /// is sent (when none is in its window), with a `timeout` window, and `acks` arrive at
    /// the given offsets from the start. Returns (verdicts, failures, unmatched).
    struct Replay {
        t0: Instant,
        book: Acks,
        verdicts: Vec<Verdict>,
        failed: u32,
        unmatched: u32,
        seq: u64,
    }

    impl Replay {
        fn new() -> Replay {
            Replay {
                t0: Instant::now(),
                book: Acks::default(),
                verdicts: Vec::new(),
                failed: 0,
                unmatched: 0,
                seq: 0,
            }
        }
        fn at(&self, offset: Duration) -> Instant {
            self.t0 + offset
        }
        fn send(&mut self, at: Duration, timeout: Duration) {
            self.seq += 1;
            self.book.sent(self.seq, self.at(at), self.at(at + timeout));
        }
        fn ack(&mut self, at: Duration, seq: Option<u64>) {
            let now = self.at(at);
            let verdicts = &mut self.verdicts;
            if !self.book.ack(now, seq, &mut |v| verdicts.push(v)) {
                self.unmatched += 1;
            }
        }
        fn close(&mut self) {
            let verdicts = &mut self.verdicts;
            if !self.book.close_window(&mut |v| verdicts.push(v)) {
                self.failed += 1;
            }
        }
        fn acked(&self) -> Vec<Duration> {
            self.verdicts
                .iter()
                .filter_map(|v| match v {
                    Verdict::Acked(d) => Some(*d),
                    Verdict::Late(_) => None,
                })
                .collect()
        }
        fn late(&self) -> Vec<Duration> {
            self.verdicts
                .iter()
                .filter_map(|v| match v {
                    Verdict::Late(d) => Some(*d),
                    Verdict::Acked(_) => None,
                })
                .collect()
        }
    }

    /// Heartbeats every 100 ms with a 50 ms window; the server answers heartbeat `n`
    /// after `reply(n)` (None: never). Acks are delivered in order, as on one TCP stream.
    fn simulate(count: u64, reply: impl Fn(u64) -> Option<u64>, by_seq: bool) -> Replay {
        let mut r = Replay::new();
        let mut events: Vec<(u64, u8, u64)> = Vec::new(); // (time ms, kind, seq)
                                                          // The server holds each reply; a later reply never overtakes an earlier one.
        let mut server_free = 0;
        for n in 1..=count {
            let sent = n * 100;
            events.push((sent, 1, n));
            events.push((sent + 50, 0, n)); // window closes (before a send at the same time)
            if let Some(delay) = reply(n) {
                let at = (sent + delay).max(server_free);
                server_free = at;
                events.push((at, 2, n));
            }
        }
        // At equal times: close the window (0), then send (1), then deliver acks (2).
        events.sort_by_key(|&(t, kind, _)| (t, kind));
        for (t, kind, n) in events {
            match kind {
                0 => {
                    if r.book.deadline() == Some(r.at(ms(t))) {
                        r.close();
                    }
                }
                1 => r.send(ms(t), ms(50)),
                _ => r.ack(ms(t), by_seq.then_some(n)),
            }
        }
        if r.book.in_window() {
            r.close();
        }
        r
    }

    #[test]
    fn a_dropped_ack_is_one_failure_and_no_late_ack() {
        // Every 7th ack dropped, the others after 2 ms.
        let r = simulate(70, |n| (n % 7 != 0).then_some(2), false);
        assert_eq!(r.failed, 10);
        assert!(r.late().is_empty(), "{:?}", r.late());
        assert_eq!(r.unmatched, 0);
        assert_eq!(r.acked().len(), 60);
        // The ack after a dropped one is measured at its true latency.
        assert!(r.acked().iter().all(|d| *d == ms(2)), "{:?}", r.acked());
    }

    #[test]
    fn one_slow_reply_is_one_failure_and_one_late_ack() {
        // Heartbeat 5's reply takes 80 ms: past its 50 ms window, before the next send.
        let r = simulate(10, |n| Some(if n == 5 { 80 } else { 2 }), false);
        assert_eq!(r.failed, 1);
        assert_eq!(r.late(), vec![ms(80)]);
        assert_eq!(r.acked(), vec![ms(2); 9]);
        assert_eq!(r.unmatched, 0);
    }

    #[test]
    fn a_reply_slower_than_the_interval_is_still_late_in_order() {
        // Heartbeat 5's reply takes 130 ms, so it arrives in heartbeat 6's window; the
        // server answers in order, so heartbeat 6's ack follows right after.
        let r = simulate(10, |n| Some(if n == 5 { 130 } else { 2 }), false);
        assert_eq!(r.failed, 1);
        assert_eq!(r.late(), vec![ms(130)]);
        // Heartbeat 6 waited behind 5 at the server: 30 ms, its true latency.
        assert_eq!(r.acked().len(), 9);
        assert_eq!(r.acked()[4], ms(30));
        assert_eq!(r.unmatched, 0);
    }

    #[test]
    fn every_reply_slower_than_the_timeout_fails_every_heartbeat() {
        let r = simulate(6, |_| Some(70), false);
        assert_eq!(r.failed, 6);
        assert!(r.acked().is_empty());
        // Each late ack is measured at the server's delay, never below it.
        assert_eq!(r.late(), vec![ms(70); 6]);
    }

    #[test]
    fn without_ids_a_reply_slower_than_the_interval_reads_as_one_drop() {
        // The documented limit: replies 120 ms late look like a dropped first ack
        // followed by 20 ms replies.
        let r = simulate(6, |_| Some(120), false);
        assert_eq!(r.failed, 1);
        assert_eq!(r.acked(), vec![ms(20); 5]);
        // With sequence numbers the same traffic is read exactly.
        let r = simulate(6, |_| Some(120), true);
        assert_eq!(r.failed, 6);
        assert!(r.acked().is_empty());
        // The last heartbeat's ack comes after its own window closed: late too.
        assert_eq!(r.late(), vec![ms(120); 6]);
    }

    #[test]
    fn a_stalled_server_that_flushes_its_backlog_settles_in_order() {
        let mut r = Replay::new();
        r.send(ms(0), ms(50));
        r.close(); // heartbeat 1 failed
        r.send(ms(100), ms(50));
        r.close(); // heartbeat 2 failed
        r.send(ms(200), ms(50));
        // The server wakes and answers all three at 210 ms.
        for _ in 0..3 {
            r.ack(ms(210), None);
        }
        assert_eq!(r.late(), vec![ms(210), ms(110)]);
        assert_eq!(r.acked(), vec![ms(10)]);
        assert_eq!(r.failed, 2);
        assert_eq!(r.book.owed(), 0);
    }

    #[test]
    fn acks_with_ids_are_matched_exactly() {
        let mut r = Replay::new();
        r.send(ms(0), ms(50));
        r.close();
        r.send(ms(100), ms(50));
        // An unknown sequence number is unmatched; the owed one is late.
        r.ack(ms(101), Some(99));
        r.ack(ms(102), Some(1));
        r.ack(ms(103), Some(2));
        assert_eq!(r.unmatched, 1);
        assert_eq!(r.late(), vec![ms(102)]);
        assert_eq!(r.acked(), vec![ms(3)]);
        // An ack of a newer heartbeat retires older owed ones.
        r.send(ms(200), ms(50));
        r.close();
        r.send(ms(300), ms(50));
        r.ack(ms(301), Some(4));
        assert_eq!(r.book.owed(), 0);
        r.ack(ms(302), Some(3));
        assert_eq!(r.unmatched, 2);
    }

    #[test]
    fn acks_waiting_at_the_end_are_settled_and_an_unanswered_heartbeat_is_in_flight() {
        let mut r = Replay::new();
        r.send(ms(0), ms(50));
        r.close();
        r.send(ms(100), ms(50));
        r.ack(ms(103), None); // waits: late ack of 1, or 2's ack after 1's was dropped
        let verdicts = &mut r.verdicts;
        r.book.finish(&mut |v| verdicts.push(v));
        assert_eq!(r.acked(), vec![ms(3)]);
        let mut r = Replay::new();
        r.send(ms(0), ms(50));
        let verdicts = &mut r.verdicts;
        r.book.finish(&mut |v| verdicts.push(v));
        // No ack yet: neither acked nor failed, still in its window.
        assert!(r.verdicts.is_empty());
        assert!(r.book.in_window());
        assert_eq!(r.book.owed(), 0);
    }

    #[test]
    fn an_ack_with_nothing_outstanding_is_unmatched() {
        let mut r = Replay::new();
        r.ack(ms(5), None);
        r.send(ms(10), ms(50));
        r.ack(ms(12), None);
        r.ack(ms(13), None);
        assert_eq!(r.unmatched, 2);
        assert_eq!(r.acked(), vec![ms(2)]);
    }

    #[test]
    fn owed_heartbeats_are_bounded() {
        let mut r = Replay::new();
        for i in 0..(MAX_OWED as u64 + 10) {
            r.send(ms(i * 100), ms(50));
            r.close();
        }
        assert_eq!(r.book.owed(), MAX_OWED);
    }

    #[test]
    fn the_timetable_measures_from_the_schedule_and_skips_missed_slots() {
        let t0 = Instant::now();
        let interval = ms(100);
        // Session 0 has phase 0: slots at 0, 100, 200, ...
        let mut t = Timetable::new(t0, 0, interval);
        // Woken 1 ms early, as the session does: measured from the send, no lag.
        let early = t.wake();
        assert_eq!(early + MS, t0);
        let slot = t.take(early, interval).unwrap();
        assert_eq!(slot.scheduled, t0);
        assert_eq!(
            (slot.from, slot.lag, slot.skipped),
            (early, Duration::ZERO, 0)
        );
        // Not yet due.
        assert_eq!(t.take(t0 + ms(50), interval), None);
        // 30 ms late: measured from the schedule, the lag recorded.
        let slot = t.take(t0 + ms(130), interval).unwrap();
        assert_eq!(slot.scheduled, t0 + ms(100));
        assert_eq!(slot.from, t0 + ms(100));
        assert_eq!((slot.lag, slot.skipped), (ms(30), 0));
        // 250 ms late: one heartbeat, slots 300 and 400 skipped, next due at 500.
        let slot = t.take(t0 + ms(450), interval).unwrap();
        assert_eq!(slot.scheduled, t0 + ms(200));
        assert_eq!((slot.lag, slot.skipped), (ms(250), 2));
        assert_eq!(t.wake(), t0 + ms(499));
    }

    #[test]
    fn phases_spread_over_the_interval() {
        let interval = Duration::from_secs(1);
        let mut buckets = [0u32; 10];
        for id in 0..10_000 {
            let p = phase(id, interval);
            assert!(p < interval);
            buckets[(p.as_millis() / 100) as usize] += 1;
        }
        // Each tenth of the interval gets close to a tenth of the sessions.
        for b in buckets {
            assert!((950..=1050).contains(&b), "{buckets:?}");
        }
    }
}
