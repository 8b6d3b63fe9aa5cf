//! The shard's alarm clock: one driver on tokio's timer for every heartbeat loop on the
//! shard, instead of a tokio `Sleep` each.
//!
//! A bound session waits for one instant at a time: its next slot, its ack deadline or
//! its leave, whichever is first. With a tokio `Sleep` each, every heartbeat moves its
//! session's timer in tokio's timer wheel twice (to the ack deadline when it is sent, to
//! the next slot when its ack comes) and fires it once; at 15,000 sessions that wheel
//! work (`Wheel::poll` cascading 15,000 timers through its levels) is, after the kernel,
//! the largest single cost of a shard. Here a session holds an [`Alarm`], a key into its
//! shard's [`Alarms`]: a book that files waiting sessions by the millisecond they are due
//! in (a wheel of 1 ms slots, a `Vec` each), and one driver task that sleeps on tokio's
//! timer until the earliest of them and wakes every session due by then.
//!
//! Deadlines stay exact: an alarm rings when the clock reaches its instant, not its
//! millisecond. The driver sleeps until that instant (tokio rounds it up to its 1 ms
//! tick, as it would a session's own `Sleep`) and, once awake, rings every alarm due by
//! the clock's reading then, where tokio rings only those due by the tick it processes:
//! a session wakes no later than with a `Sleep` of its own, often sooner (at 15,000
//! sessions `schedule_lag` p99 fell from about 1.04 ms to about 0.6 ms). The session reads
//! the clock itself once awake, as before, so measurements are no coarser.
//!
//! Moving an alarm only marks its entry: the old filing goes stale (a generation number
//! tells) and is dropped when its slot comes round, or by a sweep once stale filings
//! outnumber the alarms four to one. Memory is one entry per alarm and a bounded number
//! of filings, however often alarms move.
//!
//! It owns when sessions wake; it must not know what they wake for. The shard is one
//! thread: the book is a `RefCell`, never borrowed across an await or a wake.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use tokio::time::{sleep_until, Instant, Sleep};

/// Milliseconds in the wheel, one slot each: about 4 s, more than a heartbeat interval
/// and its ack window at the usual settings. An alarm due further ahead waits in its slot
/// while the wheel comes round (looked at once per turn, and kept).
const SLOTS: u64 = 4096;

/// Filings (see [`Book::filed`]) beyond four per alarm that may wait for their slot
/// before the whole wheel is swept of stale ones.
const SLACK: usize = 1024;

/// A shard's alarm clock. Lives as long as the shard (in its `Context`).
pub struct Alarms {
    /// Millisecond 0 of the wheel: slot *m* holds alarms due in `[origin + m ms,
    /// origin + (m+1) ms)`, modulo the wheel's turn.
    origin: Instant,
    /// Everything else; borrowed only inside a call, never across an await or a wake.
    book: RefCell<Book>,
}

/// An alarm's place in a slot: which alarm, and which of its registrations (a filing
/// whose `generation` is not its alarm's current one is stale and is dropped when seen).
#[derive(Debug, Clone, Copy)]
struct Filing {
    key: u32,
    generation: u32,
}

/// Where an alarm stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not filed: set to a new deadline, or not yet polled (or its key is free).
    Idle,
    /// Filed in the wheel under its current generation, with the waker to call.
    Waiting,
    /// Its deadline has passed: it stays ready until it is set to a new one.
    Rung,
}

/// One alarm's entry in the book: one per session in a heartbeat loop, reused.
#[derive(Debug)]
struct Entry {
    /// When it rings.
    deadline: Instant,
    /// Bumped on every filing, so that the filings before it are stale.
    generation: u32,
    /// Where it stands.
    state: State,
    /// The session's waker while it waits.
    waker: Option<Waker>,
}

impl Entry {
    /// Whether `filing` is this alarm's current one (else it is stale).
    fn filed_as(&self, filing: &Filing) -> bool {
        self.state == State::Waiting && self.generation == filing.generation
    }

    /// Keeps the waker of the task that awaits the alarm.
    fn keep_waker(&mut self, cx: &TaskContext<'_>) {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            self.waker = Some(cx.waker().clone());
        }
    }
}

#[derive(Debug)]
struct Book {
    /// Every alarm's entry, by key; free keys are in `free`.
    entries: Vec<Entry>,
    /// Keys of dropped alarms, reused before the entries grow.
    free: Vec<u32>,
    /// `SLOTS` slots of 1 ms; slot `m % SLOTS` holds the filings due in millisecond `m`.
    wheel: Vec<Vec<Filing>>,
    /// The first millisecond that may still hold a filing due: every one before it has
    /// been rung or dropped. Moves up to the millisecond of `now` at each ring.
    next: u64,
    /// Filings in the wheel, stale ones included. At most one per alarm is current;
    /// stale ones (the alarm moved, or rang first for another reason) are dropped when
    /// their slot comes round, and a sweep keeps them at most `4 × held + SLACK`.
    filed: usize,
    /// Alarms handed out and not dropped. The driver ends when none is left.
    held: usize,
    /// What the driver sleeps until: the earliest current filing it knows of.
    armed: Option<Instant>,
    /// When the driver last rang: every alarm filed for then or before has rung, so an
    /// alarm set for then or before is ready without being filed.
    rung: Instant,
    /// The driver's waker while it sleeps.
    driver: Option<Waker>,
    /// Whether the driver task is alive (it is started by the first filing).
    driving: bool,
    /// Set by [`Alarms::ring_all`]: every alarm is rung, now and whenever it is set.
    all_rung: bool,
}

impl Alarms {
    /// An alarm clock for a shard starting now.
    pub fn new() -> Alarms {
        let origin = Instant::now();
        Alarms {
            origin,
            book: RefCell::new(Book {
                entries: Vec::new(),
                free: Vec::new(),
                wheel: (0..SLOTS).map(|_| Vec::new()).collect(),
                next: 0,
                filed: 0,
                held: 0,
                armed: None,
                rung: origin,
                driver: None,
                driving: false,
                all_rung: false,
            }),
        }
    }

    /// An alarm that rings at `deadline`: awaiting it (`&mut alarm`) is ready once the
    /// clock has reached `deadline`, and stays ready until it is set to a new one. Must be
    /// awaited inside a `LocalSet`: the first alarm filed starts the shard's driver task.
    pub fn alarm(self: &Rc<Self>, deadline: Instant) -> Alarm<'_> {
        let mut book = self.book.borrow_mut();
        book.held += 1;
        let key = match book.free.pop() {
            Some(key) => {
                let entry = &mut book.entries[key as usize];
                entry.deadline = deadline;
                entry.state = State::Idle;
                key
            }
            None => {
                book.entries.push(Entry {
                    deadline,
                    generation: 0,
                    state: State::Idle,
                    waker: None,
                });
                u32::try_from(book.entries.len() - 1).expect("fewer than 2^32 alarms")
            }
        };
        Alarm { alarms: self, key }
    }

    /// Rings every alarm now, and from now on every alarm as soon as it is awaited,
    /// whatever its deadline: for a shard whose sessions are to stop, which they learn
    /// when their alarm wakes them.
    pub fn ring_all(&self) {
        let mut book = self.book.borrow_mut();
        book.all_rung = true;
        let mut due = Vec::new();
        for entry in &mut book.entries {
            if entry.state == State::Waiting {
                entry.state = State::Rung;
                due.extend(entry.waker.take());
            }
        }
        drop(book);
        // Woken outside the borrow: a waker is free to do anything.
        for waker in due {
            waker.wake();
        }
    }

    /// The millisecond of the wheel `at` falls in.
    fn millisecond(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_millis() as u64
    }

    /// Wakes, from now on, every session whose alarm is due, sleeping on tokio's timer
    /// in between (see [`Timers`]). Ends when no alarm is held any more (the next filing
    /// starts it again).
    async fn drive(self: Rc<Self>) {
        let alarms: &Alarms = &self;
        // However the driver ends (its LocalSet dropped, or a bug's panic), the next
        // filing starts another one.
        struct Driving<'a>(&'a Alarms);
        impl Drop for Driving<'_> {
            fn drop(&mut self) {
                if let Ok(mut book) = self.0.book.try_borrow_mut() {
                    book.driving = false;
                    book.driver = None;
                }
            }
        }
        let _driving = Driving(alarms);
        let mut timers = Timers::new(alarms.origin);
        let mut due: Vec<Waker> = Vec::new();
        poll_fn(|cx| loop {
            let mut book = alarms.book.borrow_mut();
            if book.held == 0 {
                book.rest();
                return Poll::Ready(());
            }
            // Which timer fired, first, so that one pass re-arms it.
            timers.poll(cx);
            let now = Instant::now();
            if book.armed.is_some_and(|at| at <= now) {
                book.ring(alarms, now, &mut due);
            }
            if let Some(first) = book.armed {
                timers.arrange(first, |after| book.earliest(alarms, Some(after)));
            }
            // Timers set just now are polled to register; one already due fires here.
            let fired = timers.poll(cx);
            if !fired {
                book.wait(cx);
            }
            drop(book);
            // Woken outside the borrow: a waker is free to do anything.
            for waker in due.drain(..) {
                waker.wake();
            }
            if !fired {
                return Poll::Pending;
            }
        })
        .await;
    }
}

/// The driver's two tokio timers, leapfrogging: one rings by the earliest alarm, the
/// other by the first alarm due in a later millisecond.
///
/// Why two: setting a tokio timer earlier than the earliest one left in tokio's wheel
/// wakes tokio's I/O driver (an eventfd write and a spare `epoll_wait`), even from a task
/// on the runtime's own thread (tokio #5207). With one timer, every re-arm after it fired
/// would pay that, about once a millisecond. With two, the one that fired is re-armed
/// behind the one still waiting, which tokio takes quietly. tokio rounds a deadline up to
/// its next 1 ms tick, so a timer set 1 ms after another rings in a later tick.
struct Timers {
    /// The two tokio timers.
    sleeps: [Pin<Box<Sleep>>; 2],
    /// What each is set for while it waits; `None` once it has fired.
    at: [Option<Instant>; 2],
    /// For each waiting timer: every alarm due from this instant on will have been rung
    /// in time when it rings. Its own deadline, or, for a timer set 1 ms after the other
    /// one, the first alarm after that one: once the other has rung (and with it every
    /// alarm due in its tick), whatever is left is due no earlier than this one's tick.
    covers: [Instant; 2],
}

impl Timers {
    fn new(origin: Instant) -> Timers {
        Timers {
            sleeps: [Box::pin(sleep_until(origin)), Box::pin(sleep_until(origin))],
            at: [None, None],
            covers: [origin, origin],
        }
    }

    /// Sets timer `i` for `at`, on behalf of alarms due from `covers` on.
    fn set(&mut self, i: usize, at: Instant, covers: Instant) {
        if self.at[i] != Some(at) {
            self.sleeps[i].as_mut().reset(at);
        }
        self.at[i] = Some(at);
        self.covers[i] = covers;
    }

    /// Makes sure a timer rings by `first`, the earliest alarm, and that the other one
    /// (when it is free) rings by the first alarm due after the first timer's tick:
    /// `after(t)` is the earliest alarm due after `t`.
    fn arrange(&mut self, first: Instant, after: impl FnOnce(Instant) -> Option<Instant>) {
        let waiting = (0..2)
            .filter(|&i| self.at[i].is_some())
            .min_by_key(|&i| self.covers[i]);
        let near = match waiting {
            Some(i) if self.covers[i] <= first => i,
            _ => {
                // Neither rings by `first` (an alarm came in earlier than they knew): one
                // that has fired takes it, else the later one is moved. The other one's
                // cover held only behind this one's old deadline: now it is its own.
                let i = (0..2).find(|&i| self.at[i].is_none()).unwrap_or(
                    if self.covers[0] > self.covers[1] {
                        0
                    } else {
                        1
                    },
                );
                self.set(i, first, first);
                if let Some(at) = self.at[1 - i] {
                    self.covers[1 - i] = at;
                }
                i
            }
        };
        let other = 1 - near;
        if self.at[other].is_none() {
            let at = self.at[near].expect("set above");
            if let Some(next) = after(at) {
                self.set(other, next.max(at + Duration::from_millis(1)), next);
            }
        }
    }

    /// Polls the timers set and not yet polled since (to register them), and the
    /// others after a wake (to see which fired); true when one has fired.
    fn poll(&mut self, cx: &mut TaskContext<'_>) -> bool {
        let mut fired = false;
        for i in 0..2 {
            if self.at[i].is_some() && self.sleeps[i].as_mut().poll(cx).is_ready() {
                self.at[i] = None;
                fired = true;
            }
        }
        fired
    }
}

impl Default for Alarms {
    fn default() -> Alarms {
        Alarms::new()
    }
}

impl Book {
    /// Files alarm `key` (already marked waiting under `generation`) for `deadline`.
    fn file(&mut self, alarms: &Alarms, key: u32, generation: u32, deadline: Instant) {
        // Never behind `next`: a slot already passed would be looked at again only a
        // turn later.
        let m = alarms.millisecond(deadline).max(self.next);
        self.wheel[(m % SLOTS) as usize].push(Filing { key, generation });
        self.filed += 1;
        if self.filed > 4 * self.held + SLACK {
            self.sweep();
        }
    }

    /// Rings every alarm due at `now` (their wakers go to `due`), drops the stale filings
    /// on the way, and arms the driver for the earliest one left.
    fn ring(&mut self, alarms: &Alarms, now: Instant, due: &mut Vec<Waker>) {
        let last = alarms.millisecond(now);
        let Book {
            entries,
            wheel,
            filed,
            ..
        } = self;
        // What is left in `last` and due in it (not a turn later) is the earliest.
        let end = alarms.origin + Duration::from_millis(last + 1);
        let mut earliest: Option<Instant> = None;
        // Each slot once, even when the clock jumped more than a turn.
        let turn = (last.saturating_sub(self.next) + 1).min(SLOTS);
        for m in self.next..self.next + turn {
            wheel[(m % SLOTS) as usize].retain(|f| {
                let entry = &mut entries[f.key as usize];
                if !entry.filed_as(f) {
                    *filed -= 1;
                    return false;
                }
                if entry.deadline > now {
                    // Later in this millisecond, or a later turn.
                    if entry.deadline < end {
                        earliest = Some(earliest.map_or(entry.deadline, |e| e.min(entry.deadline)));
                    }
                    return true;
                }
                entry.state = State::Rung;
                due.extend(entry.waker.take());
                *filed -= 1;
                false
            });
        }
        self.next = last;
        self.rung = now;
        self.armed = earliest.or_else(|| self.earliest(alarms, Some(now)));
    }

    /// The earliest deadline of a current filing (after `after`, if given), dropping the
    /// stale filings on the way.
    fn earliest(&mut self, alarms: &Alarms, after: Option<Instant>) -> Option<Instant> {
        let from = after.map_or(self.next, |a| alarms.millisecond(a).max(self.next));
        let Book {
            entries,
            wheel,
            filed,
            ..
        } = self;
        // The earliest of the filings due in a later turn, should no slot hold one due in
        // this one.
        let mut later: Option<Instant> = None;
        for m in from..from + SLOTS {
            let slot = &mut wheel[(m % SLOTS) as usize];
            if slot.is_empty() {
                continue;
            }
            let mut here: Option<Instant> = None;
            let end = alarms.origin + Duration::from_millis(m + 1);
            slot.retain(|f| {
                let entry = &entries[f.key as usize];
                if !entry.filed_as(f) {
                    *filed -= 1;
                    return false;
                }
                if after.is_some_and(|a| entry.deadline <= a) {
                    return true;
                }
                let best = if entry.deadline < end {
                    &mut here
                } else {
                    &mut later
                };
                *best = Some(best.map_or(entry.deadline, |b| b.min(entry.deadline)));
                true
            });
            if here.is_some() {
                return here;
            }
        }
        later
    }

    /// Drops every stale filing, so that alarms that move often cannot grow the wheel.
    fn sweep(&mut self) {
        let Book { entries, wheel, .. } = self;
        let mut filed = 0;
        for slot in wheel.iter_mut() {
            slot.retain(|f| {
                let entry = &entries[f.key as usize];
                entry.filed_as(f)
            });
            filed += slot.len();
        }
        self.filed = filed;
    }

    /// Keeps the driver's waker, to be woken for an earlier deadline or the last drop.
    fn wait(&mut self, cx: &TaskContext<'_>) {
        match &self.driver {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => self.driver = Some(cx.waker().clone()),
        }
    }

    /// The driver ends: no alarm is held, so every filing is stale.
    fn rest(&mut self) {
        for slot in &mut self.wheel {
            slot.clear();
        }
        self.filed = 0;
        self.armed = None;
        self.driver = None;
        self.driving = false;
    }
}

/// One session's alarm on its shard's clock: one deadline at a time, moved with
/// [`Alarm::set`]. Dropping it frees its entry.
pub struct Alarm<'a> {
    /// The shard's clock.
    alarms: &'a Rc<Alarms>,
    /// Its entry in the book.
    key: u32,
}

impl Alarm<'_> {
    /// Rings at `deadline` instead (nothing changes when it is the same).
    pub fn set(&mut self, deadline: Instant) {
        let mut book = self.alarms.book.borrow_mut();
        let entry = &mut book.entries[self.key as usize];
        if entry.deadline != deadline {
            // A filing in the wheel is stale from here on: the state is no longer
            // `Waiting`, and the next filing has a new generation.
            entry.deadline = deadline;
            entry.state = State::Idle;
        }
    }
}

impl Future for Alarm<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let (alarms, key) = (self.alarms, self.key);
        let mut book = alarms.book.borrow_mut();
        if book.all_rung {
            return Poll::Ready(());
        }
        let entry = &mut book.entries[key as usize];
        match entry.state {
            State::Rung => return Poll::Ready(()),
            State::Waiting => {
                // Polled again before it rang (another branch woke the session): only
                // the waker may need replacing, the filing stands.
                entry.keep_waker(cx);
                return Poll::Pending;
            }
            State::Idle => {}
        }
        let deadline = entry.deadline;
        // Against the driver's last ring rather than the clock: no clock read per filing.
        // An alarm already due but after that is filed and rung at once (it is earlier
        // than anything the driver waits for, so the driver is woken).
        if deadline <= book.rung {
            book.entries[key as usize].state = State::Rung;
            return Poll::Ready(());
        }
        let entry = &mut book.entries[key as usize];
        entry.keep_waker(cx);
        entry.generation = entry.generation.wrapping_add(1);
        entry.state = State::Waiting;
        let generation = entry.generation;
        book.file(alarms, key, generation, deadline);
        let earlier = book.armed.is_none_or(|at| deadline < at);
        if earlier {
            book.armed = Some(deadline);
        }
        let start = !book.driving;
        book.driving = true;
        let driver = if earlier { book.driver.take() } else { None };
        drop(book);
        if start {
            tokio::task::spawn_local(alarms.clone().drive());
        } else if let Some(driver) = driver {
            driver.wake();
        }
        Poll::Pending
    }
}

impl Drop for Alarm<'_> {
    fn drop(&mut self) {
        let mut book = self.alarms.book.borrow_mut();
        let entry = &mut book.entries[self.key as usize];
        entry.state = State::Idle;
        entry.waker = None;
        book.free.push(self.key);
        book.held -= 1;
        let driver = if book.held == 0 {
            book.driver.take() // so that it ends
        } else {
            None
        };
        drop(book);
        if let Some(driver) = driver {
            driver.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use tokio::task::LocalSet;
    use tokio::time::advance;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// How the book stands: (filings in the wheel, alarms held, driver alive).
    fn standing(alarms: &Alarms) -> (usize, usize, bool) {
        let book = alarms.book.borrow();
        (book.filed, book.held, book.driving)
    }

    #[tokio::test(start_paused = true)]
    async fn alarms_ring_at_their_exact_instant_and_the_driver_ends_with_the_last() {
        let alarms = Rc::new(Alarms::new());
        let t0 = Instant::now();
        let local = LocalSet::new();
        let rang = Rc::new(RefCell::new(Vec::new()));
        // Deadlines inside one millisecond, across several, a turn of the wheel away,
        // and already past.
        let offsets = [
            Duration::from_micros(1_500),
            Duration::from_micros(1_700),
            ms(3),
            ms(SLOTS + 250),
            ms(3 * SLOTS + 7),
            Duration::ZERO,
        ];
        for offset in offsets {
            let (alarms, rang) = (alarms.clone(), rang.clone());
            local.spawn_local(async move {
                let mut alarm = alarms.alarm(t0 + offset);
                (&mut alarm).await;
                rang.borrow_mut().push(Instant::now() - t0);
                // Ready again until set anew, like a `Sleep` past its deadline.
                (&mut alarm).await;
            });
        }
        local.await;
        // The paused clock moves to the driver's timer, which tokio rounds up to its
        // 1 ms tick: the two alarms in the second millisecond ring together at 2 ms.
        assert_eq!(
            *rang.borrow(),
            vec![
                Duration::ZERO,
                ms(2),
                ms(2),
                ms(3),
                ms(SLOTS + 250),
                ms(3 * SLOTS + 7)
            ]
        );
        // Every task ended, the driver too (else `local` would still be waiting).
        assert_eq!(standing(&alarms), (0, 0, false));
    }

    #[tokio::test(start_paused = true)]
    async fn dense_and_sparse_alarms_each_ring_in_their_own_tick() {
        // Every 130 µs for 60 ms, then every 7 ms, with alarms set later for earlier
        // deadlines: whichever of the driver's two timers rings, each alarm rings in the
        // tick tokio would ring its own `Sleep` in (its deadline rounded up to the ms).
        let alarms = Rc::new(Alarms::new());
        let t0 = Instant::now();
        let local = LocalSet::new();
        let late = Rc::new(RefCell::new(Vec::new()));
        let mut offsets: Vec<Duration> = (1..460).map(|n| Duration::from_micros(n * 130)).collect();
        offsets.extend((9..30).map(|n| ms(n * 7) + Duration::from_micros(300)));
        for (n, offset) in offsets.into_iter().enumerate() {
            let (alarms, late) = (alarms.clone(), late.clone());
            local.spawn_local(async move {
                if n % 5 == 0 {
                    // Set while the driver already waits for later ones.
                    tokio::time::sleep_until(t0 + offset / 2).await;
                }
                let mut alarm = alarms.alarm(t0 + offset);
                (&mut alarm).await;
                let tick = ms(offset.as_micros().div_ceil(1_000) as u64);
                if Instant::now() - t0 != tick {
                    late.borrow_mut().push((offset, Instant::now() - t0));
                }
            });
        }
        local.await;
        assert_eq!(*late.borrow(), vec![]);
        assert_eq!(standing(&alarms), (0, 0, false));
    }

    #[tokio::test(start_paused = true)]
    async fn a_moved_alarm_rings_at_its_new_deadline_only() {
        let alarms = Rc::new(Alarms::new());
        let t0 = Instant::now();
        let local = LocalSet::new();
        let polls = Rc::new(Cell::new(0u32));
        let rang = Rc::new(Cell::new(None));
        // A task of its own, as a session is, so that it is polled only when woken.
        local.spawn_local({
            let (alarms, polls, rang) = (alarms.clone(), polls.clone(), rang.clone());
            async move {
                let mut alarm = alarms.alarm(t0 + ms(10));
                // Filed for 10 ms, then moved later before it rings.
                let waited = poll_fn(|cx| {
                    polls.set(polls.get() + 1);
                    Poll::Ready(Pin::new(&mut alarm).poll(cx))
                })
                .await;
                assert!(waited.is_pending());
                alarm.set(t0 + ms(30));
                poll_fn(|cx| {
                    polls.set(polls.get() + 1);
                    Pin::new(&mut alarm).poll(cx)
                })
                .await;
                let moved = Instant::now() - t0;
                // Moved earlier than the deadline the driver sleeps until: it re-arms.
                alarm.set(Instant::now() + ms(500));
                let filed = poll_fn(|cx| Poll::Ready(Pin::new(&mut alarm).poll(cx))).await;
                assert!(filed.is_pending());
                tokio::task::yield_now().await; // the driver sleeps until 530 ms
                alarm.set(Instant::now() + ms(5));
                (&mut alarm).await;
                rang.set(Some((moved, Instant::now() - t0)));
            }
        });
        local.await;
        // The stale filing at 10 ms woke nobody: the second wait was polled once when
        // filed and once when it rang.
        assert_eq!(rang.get(), Some((ms(30), ms(35))));
        assert_eq!(polls.get(), 3);
        assert_eq!(standing(&alarms), (0, 0, false));
    }

    #[tokio::test(start_paused = true)]
    async fn alarms_that_keep_moving_do_not_grow_the_wheel() {
        let alarms = Rc::new(Alarms::new());
        let t0 = Instant::now();
        let local = LocalSet::new();
        local
            .run_until(async {
                let mut alarm = alarms.alarm(t0 + ms(1));
                let _other = alarms.alarm(t0);
                // A hundred thousand moves, each filed: stale filings are swept, not kept.
                for n in 0..100_000u64 {
                    alarm.set(t0 + ms(1 + n % 3_000) + Duration::from_nanos(n));
                    let filed = poll_fn(|cx| Poll::Ready(Pin::new(&mut alarm).poll(cx))).await;
                    assert!(filed.is_pending());
                    assert!(standing(&alarms).0 <= 4 * 2 + SLACK + 1);
                }
                advance(ms(3_001)).await;
                (&mut alarm).await;
            })
            .await;
        // Rung and dropped: nothing filed, nothing held.
        local.await;
        assert_eq!(standing(&alarms), (0, 0, false));
    }

    #[tokio::test(start_paused = true)]
    async fn a_thousand_alarms_in_one_millisecond_wake_each_session_once() {
        let alarms = Rc::new(Alarms::new());
        let t0 = Instant::now();
        let local = LocalSet::new();
        let polls = Rc::new(Cell::new(0u32));
        for n in 0..1_000u64 {
            let (alarms, polls) = (alarms.clone(), polls.clone());
            local.spawn_local(async move {
                let mut alarm = alarms.alarm(t0 + ms(7) + Duration::from_nanos((n + 1) * 997));
                poll_fn(|cx| {
                    polls.set(polls.get() + 1);
                    Pin::new(&mut alarm).poll(cx)
                })
                .await;
                assert_eq!(Instant::now(), t0 + ms(8));
            });
        }
        local.await;
        // Each polled when filed and when rung: no spurious wake-ups.
        assert_eq!(polls.get(), 2_000);
        assert_eq!(standing(&alarms), (0, 0, false));
    }

    #[tokio::test(start_paused = true)]
    async fn ring_all_rings_every_alarm_now_and_every_later_one_at_once() {
        let alarms = Rc::new(Alarms::new());
        let t0 = Instant::now();
        let local = LocalSet::new();
        let rang = Rc::new(RefCell::new(Vec::new()));
        for n in 0..5u64 {
            let (alarms, rang) = (alarms.clone(), rang.clone());
            local.spawn_local(async move {
                let mut alarm = alarms.alarm(t0 + ms(100 + n * 900));
                (&mut alarm).await;
                rang.borrow_mut().push(Instant::now() - t0);
                // Set anew after everything rang: ready at once, hours early.
                alarm.set(Instant::now() + ms(3_600_000));
                (&mut alarm).await;
                rang.borrow_mut().push(Instant::now() - t0);
            });
        }
        local
            .run_until(async {
                tokio::time::sleep_until(t0 + ms(50)).await;
                alarms.ring_all();
            })
            .await;
        local.await;
        assert_eq!(*rang.borrow(), vec![ms(50); 10]);
        assert_eq!(standing(&alarms).1, 0);
    }
}
