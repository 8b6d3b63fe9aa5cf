//! A shard: one OS thread with a current-thread runtime, running its share of the
//! sessions as local tasks and sending its measurements, every interval, as a numbered
//! [`Snapshot`].
//!
//! It owns spawning sessions by the load shape (which session ids and slots are this
//! shard's, when each starts, the open model's cap) and catching their panics. It must not
//! know where its Snapshots go: the aggregator of this process, or a worker's pipe to its
//! parent, is the caller's business.

use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use std::panic::AssertUnwindSafe;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::load::{Shape, Slice};
use crate::metrics::{Active, Counter, Recorder, Snapshot, State};
use crate::session::{self, ConnectFailure, Context, Plan};

/// Which shards of a run one process runs: the global shard numbers
/// `first..first + count` of `total`, within the run's shard `slice` (`--shard I/N`;
/// the whole run on one machine). Session ids, slots and arrivals are dealt by slice,
/// then by global number, so a session is the same (id, card row, heartbeat phase)
/// however many processes and machines the run is spread over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardSet {
    /// The first global shard number.
    pub first: usize,
    /// How many shards, from `first`.
    pub count: usize,
    /// Shards in the whole run (of this slice).
    pub total: usize,
    /// The run's shard these threads are part of.
    #[serde(default)]
    pub slice: Slice,
}

impl ShardSet {
    /// Every shard of a slice, in one process.
    pub fn whole(count: usize, slice: Slice) -> ShardSet {
        ShardSet {
            first: 0,
            count,
            total: count,
            slice,
        }
    }
}

/// The shards of this process, started.
pub(super) struct Shards {
    /// Their threads, to join.
    pub(super) threads: Vec<std::thread::JoinHandle<()>>,
    /// Their Snapshots, numbered by local shard (0..count).
    pub(super) rx: mpsc::Receiver<Snapshot>,
    /// Open sockets across them.
    pub(super) active: Arc<Active>,
}

/// What every shard of a process is given.
pub(super) struct Start {
    pub(super) plan: Arc<Plan>,
    pub(super) set: ShardSet,
    /// When the load shape starts: intervals (and due times, when fixed) count from it.
    pub(super) origin: super::Origin,
    pub(super) interval: Duration,
    pub(super) stop: CancellationToken,
    pub(super) go: CancellationToken,
    /// The open model's cap for this process's shards together.
    pub(super) cap: u32,
    /// For the shard with global number 0: the outcome of the run's first connect.
    pub(super) gate: Option<oneshot::Sender<Result<(), ConnectFailure>>>,
}

/// Starts a process's shards, each on a thread of its own. A thread that cannot be
/// created stops those already started.
pub(super) fn start(start: Start) -> std::io::Result<Shards> {
    let Start {
        plan,
        set,
        origin,
        interval,
        stop,
        go,
        cap,
        mut gate,
    } = start;
    let running = Arc::new(AtomicU32::new(0));
    let active = Arc::new(Active::default());
    let (tx, rx) = mpsc::channel::<Snapshot>(set.count.max(1) * 4);
    let mut threads = Vec::with_capacity(set.count);
    for shard in 0..set.count {
        let global = set.first + shard;
        let args = ShardArgs {
            shard,
            deal: set.slice.deal(global, set.total),
            slice: set.slice,
            plan: plan.clone(),
            origin: origin.instant,
            fixed: origin.fixed,
            interval,
            stop: stop.clone(),
            go: go.clone(),
            cap,
            running: running.clone(),
            active: active.clone(),
            tx: tx.clone(),
            gate: if global == 0 { gate.take() } else { None },
        };
        let spawned = std::thread::Builder::new()
            .name(format!("wsoak-shard-{global}"))
            .stack_size(crate::script::STACK_SIZE) // Rhai hooks recurse on this stack
            .spawn(move || run_shard(args));
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(e) => {
                stop.cancel();
                return Err(e);
            }
        }
    }
    Ok(Shards {
        threads,
        rx,
        active,
    })
}

pub(super) struct ShardArgs {
    /// This process's number for the shard (its Snapshots carry it).
    pub(super) shard: usize,
    /// Its sessions: ids `first, first + step, …` ([`Slice::deal`]).
    pub(super) deal: (u64, u64),
    /// The run's shard it is part of.
    pub(super) slice: Slice,
    pub(super) plan: Arc<Plan>,
    pub(super) origin: Instant,
    /// Whether sessions are due from `origin` ([`super::Origin::fixed`]), or from when
    /// the first connect worked.
    pub(super) fixed: bool,
    pub(super) interval: Duration,
    pub(super) stop: CancellationToken,
    pub(super) go: CancellationToken,
    /// The open model's cap, for `running` (shared by this process's shards).
    pub(super) cap: u32,
    pub(super) running: Arc<AtomicU32>,
    pub(super) active: Arc<Active>,
    pub(super) tx: mpsc::Sender<Snapshot>,
    pub(super) gate: Option<oneshot::Sender<Result<(), ConnectFailure>>>,
}

pub(super) fn run_shard(args: ShardArgs) {
    let (shard, tx) = (args.shard, args.tx.clone());
    // The last snapshot of a shard that failed: counted as an internal error, numbered
    // as the next interval it owed, so that the aggregator stops waiting for it there.
    let failed = |seq: u64, message: String| {
        let mut recorder = Recorder::new();
        recorder.internal(format!("shard {shard}: {message}"));
        let _ = tx.blocking_send(Snapshot {
            shard,
            recorder,
            gauges: [0; State::COUNT],
            seq,
            last: true,
            peak_active: None,
            worker: None,
        });
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let message = format!("cannot start its runtime: {e}");
            if let Some(gate) = args.gate {
                // The run's first session lived here: the run cannot go ahead.
                let _ = gate.send(Err(ConnectFailure {
                    kind: crate::metrics::ErrorKind::Internal,
                    detail: format!("wsoak could not start shard {shard}: {e}"),
                }));
            }
            failed(0, message);
            return;
        }
    };
    // The next interval this shard owes, kept outside `shard_main` so that it survives
    // a panic there.
    let next_seq = Rc::new(std::cell::Cell::new(0));
    let local = tokio::task::LocalSet::new();
    let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
        local.block_on(&runtime, shard_main(args, next_seq.clone()));
    }));
    if let Err(payload) = ran {
        // The shard itself failed (its tasks' panics are caught in `spawn_contained`):
        // its sessions are gone. Say so, so that the run's report counts it.
        failed(next_seq.get(), panic_message(&*payload));
    }
}

/// Spawns a session (or the shard's spawner) so that a panic in it is caught and counted
/// as an internal error instead of vanishing with the task: a run whose sessions died
/// of a bug must not look like a healthy run.
fn spawn_contained(
    tracker: &TaskTracker,
    ctx: &Rc<Context>,
    task: impl std::future::Future<Output = ()> + 'static,
) {
    tracker.spawn_local(contained(ctx.clone(), task));
}

/// `task` with its panic caught and counted in `ctx`. Built from combinators, not an
/// `async move` block: such a block keeps the captured `task` in its unresumed state and
/// the `CatchUnwind` it awaits in its suspended state, side by side, so every idle
/// session's task would hold its future twice (about 2 KiB more per session).
fn contained(
    ctx: Rc<Context>,
    task: impl std::future::Future<Output = ()> + 'static,
) -> impl std::future::Future<Output = ()> + 'static {
    AssertUnwindSafe(task).catch_unwind().map(move |ran| {
        if let Err(payload) = ran {
            ctx.recorder.borrow_mut().internal(panic_message(&*payload));
        }
    })
}

/// What a panic said, as far as its payload tells.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// A start is late when it happens this long after it was due.
const LATE: Duration = Duration::from_millis(100);

async fn shard_main(args: ShardArgs, next_seq: Rc<std::cell::Cell<u64>>) {
    let ShardArgs {
        shard,
        deal,
        slice,
        cap,
        plan,
        origin,
        fixed,
        interval,
        stop,
        go,
        running,
        active,
        tx,
        gate,
    } = args;
    let ctx = Rc::new(Context::new(
        plan.clone(),
        stop.clone(),
        running.clone(),
        active,
    ));
    let tracker = TaskTracker::new();
    let scenario = &plan.scenario;
    let end = scenario.duration;
    // The slice's first slot (or arrival) connects first and alone: it decides whether
    // the run goes on. Slot 0 on one machine; slot I for shard I/N.
    let first = slice.index;
    let first_until = match &scenario.shape {
        Shape::Closed { .. } => scenario
            .shape
            .active_intervals(first, end)
            .first()
            .map(|i| i.1),
        Shape::Open { .. } => scenario
            .shape
            .arrival_due(u64::from(first), end)
            .map(|_| end),
    };
    if let Some(gate) = gate {
        match first_until {
            Some(until) => {
                running.fetch_add(1, Ordering::Relaxed);
                ctx.count(Counter::ArrivalsDue);
                let until = (until < end).then(|| origin + until);
                spawn_contained(
                    &tracker,
                    &ctx,
                    session::run(ctx.clone(), first, Some(gate), until),
                );
            }
            // A shard with no sessions at all (more shards than sessions): nothing to
            // try, and nothing to stop the others.
            None => {
                let _ = gate.send(Ok(()));
            }
        }
    }
    {
        let (ctx, spawner, stop) = (ctx.clone(), tracker.clone(), stop.clone());
        let spawning = ctx.clone();
        spawn_contained(&tracker, &spawning, async move {
            tokio::select! {
                _ = go.cancelled() => {}
                _ = stop.cancelled() => return,
            }
            // A start given to every shard holds whatever the first connect took; a run
            // started now is due from when its first connect worked.
            let origin = if fixed { origin } else { Instant::now() };
            spawn_sessions(
                &ctx,
                &spawner,
                Dealt {
                    deal,
                    first,
                    origin,
                },
                cap,
                &stop,
            )
            .await;
        });
    }
    let take = |seq: u64, last: bool| Snapshot {
        shard,
        recorder: {
            let mut recorder = ctx.recorder.borrow_mut();
            let fresh = recorder.fresh();
            std::mem::replace(&mut *recorder, fresh)
        },
        gauges: ctx.gauges.get(),
        seq,
        last,
        peak_active: None,
        worker: None,
    };
    // Interval `seq` ends at `origin + (seq + 1) · interval`, on every shard of every
    // process and machine, so that their intervals line up. A shard that falls behind
    // catches up with its missed ticks at once rather than shifting the later ones.
    let mut flush = tokio::time::interval_at(origin + interval, interval);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut seq = 0;
    let mut closing = false;
    loop {
        tokio::select! {
            _ = flush.tick() => {
                if tx.send(take(seq, false)).await.is_err() {
                    stop.cancel();
                }
                seq += 1;
                next_seq.set(seq);
            }
            _ = stop.cancelled(), if !closing => {
                closing = true;
                ctx.stop_beats();
                tracker.close();
            }
            _ = tracker.wait(), if closing => break,
        }
    }
    let _ = tx.send(take(seq, true)).await;
}

/// Which sessions a shard thread starts, and from when.
struct Dealt {
    /// Its ids, as (first, step).
    deal: (u64, u64),
    /// The id of the session that connected first (already running, if it is this
    /// thread's).
    first: u32,
    /// When the load shape starts.
    origin: Instant,
}

/// Starts this shard's share of the load shape's sessions, each at its due time.
async fn spawn_sessions(
    ctx: &Rc<Context>,
    tracker: &TaskTracker,
    dealt: Dealt,
    cap: u32,
    stop: &CancellationToken,
) {
    let scenario = &ctx.plan.scenario;
    let end = scenario.duration;
    let Dealt {
        deal: (first_id, step),
        first,
        origin: start,
    } = dealt;
    // Waits until `due` (from the start); false when the run stopped first.
    let wait = |due: Duration| async move {
        let at = start + due;
        if at > Instant::now() {
            tokio::select! {
                _ = tokio::time::sleep_until(at) => {}
                _ = stop.cancelled() => return false,
            }
        }
        if Instant::now() > at + LATE {
            ctx.count(Counter::ArrivalsLate);
        }
        !stop.is_cancelled()
    };
    match &scenario.shape {
        Shape::Closed { .. } => {
            // (start, slot, end) for every time one of this shard's slots becomes active.
            let ids = (first_id..u64::from(scenario.sessions)).step_by(step as usize);
            let mut starts: Vec<(Duration, u32, Duration)> = ids
                .flat_map(|slot| {
                    let slot = slot as u32; // below `sessions`, a u32
                    let intervals = scenario.shape.active_intervals(slot, end);
                    // The first slot's first interval is the gate session's, running.
                    let skip = usize::from(slot == first);
                    intervals
                        .into_iter()
                        .skip(skip)
                        .map(move |(a, b)| (a, slot, b))
                })
                .collect();
            starts.sort_by_key(|s| s.0);
            for (n, (due, slot, until)) in starts.into_iter().enumerate() {
                if !wait(due).await {
                    return;
                }
                ctx.count(Counter::ArrivalsDue);
                ctx.running.fetch_add(1, Ordering::Relaxed);
                let until = (until < end).then(|| start + until);
                spawn_contained(tracker, ctx, session::run(ctx.clone(), slot, None, until));
                if n % 256 == 255 {
                    // Let sessions already spawned make progress during a big burst.
                    tokio::task::yield_now().await;
                }
            }
        }
        Shape::Open { .. } => {
            let mut index = first_id;
            while let Some(due) = scenario.shape.arrival_due(index, end) {
                let this = index;
                index += step;
                if this == u64::from(first) {
                    continue; // the gate session
                }
                if !wait(due).await {
                    return;
                }
                ctx.count(Counter::ArrivalsDue);
                // One atomic step, so shards admitting at once cannot overshoot the cap.
                let admitted = ctx
                    .running
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        (n < cap).then_some(n + 1)
                    })
                    .is_ok();
                if !admitted {
                    ctx.count(Counter::ArrivalsDropped);
                    continue;
                }
                let id = u32::try_from(this).unwrap_or(u32::MAX);
                spawn_contained(tracker, ctx, session::run(ctx.clone(), id, None, None));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Rc<Context> {
        Context::for_test("heartbeat:\n  send: {type: heartBeat}\n", Vec::new())
    }

    #[test]
    fn a_panicking_task_is_counted_not_lost() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        let ctx = context();
        let tracker = TaskTracker::new();
        local.block_on(&runtime, async {
            for i in 0..3 {
                spawn_contained(&tracker, &ctx, async move {
                    if i > 0 {
                        panic!("session {i} broke");
                    }
                });
            }
            tracker.close();
            tracker.wait().await;
        });
        let recorder = ctx.recorder.borrow();
        assert_eq!(
            recorder.errors[crate::metrics::ErrorKind::Internal.index()],
            2
        );
        assert_eq!(
            recorder.internal,
            vec!["session 1 broke", "session 2 broke"]
        );
    }

    /// Catching a session's panic costs an idle session a pointer, not a second copy of
    /// its future (benches/memory.sh measures the difference: about 2 KiB per session).
    #[test]
    fn containing_a_session_does_not_double_its_future() {
        let ctx = context();
        let session = std::mem::size_of_val(&session::run(ctx.clone(), 0, None, None));
        let contained = std::mem::size_of_val(&contained(
            ctx.clone(),
            session::run(ctx.clone(), 0, None, None),
        ));
        assert!(
            contained <= session + 32,
            "a contained session is {contained} bytes, its future {session}"
        );
    }

    #[test]
    fn a_panicking_shard_sends_its_last_snapshot() {
        let (tx, mut rx) = mpsc::channel(4);
        let args = ShardArgs {
            shard: 3,
            deal: Slice::WHOLE.deal(3, 4),
            slice: Slice::WHOLE,
            cap: 10,
            plan: context().plan.clone(),
            origin: Instant::now(),
            fixed: false,
            interval: Duration::from_secs(1),
            stop: CancellationToken::new(),
            go: CancellationToken::new(),
            running: Arc::new(AtomicU32::new(0)),
            active: Arc::default(),
            tx,
            gate: None,
        };
        // A shard whose own loop panics: its interval of zero makes `tokio::time::interval_at`
        // panic, the way a bug in the shard would.
        let args = ShardArgs {
            interval: Duration::ZERO,
            ..args
        };
        std::thread::spawn(move || run_shard(args)).join().unwrap();
        let last = rx.try_recv().expect("a last snapshot");
        assert!(last.last);
        assert_eq!(last.shard, 3);
        // Numbered as the interval it owed (it had sent none), so the aggregator neither
        // waits for it nor opens an interval that was already written.
        assert_eq!(last.seq, 0);
        assert_eq!(
            last.recorder.errors[crate::metrics::ErrorKind::Internal.index()],
            1
        );
        assert!(
            last.recorder.internal[0].starts_with("shard 3: "),
            "{:?}",
            last.recorder.internal
        );
    }
}
